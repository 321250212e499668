// Open-addressing hash maps for training and encoding. Hashing has no random
// seed, so everything built by walking a map is the same on every run.
#ifndef TOKENIZER_HASHMAP_H
#define TOKENIZER_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

// uint64 key -> uint32 value. UINT64_MAX is reserved as the empty-slot marker.
typedef struct {
    uint64_t *keys;
    uint32_t *values;
    size_t cap, count; // cap is a power of two, kept at most half full
} U64Map;

int u64map_init(U64Map *m, size_t expected);
void u64map_free(U64Map *m);
// Pointer to the value stored under key, or NULL. Valid until the next insert.
const uint32_t *u64map_get(const U64Map *m, uint64_t key);
// Inserts key with value unless present; *value_out receives the stored
// value either way. Returns 1 if added, 0 if already present, -1 out of memory.
int u64map_get_or_add(U64Map *m, uint64_t key, uint32_t value, uint32_t *value_out);

// Byte string -> dense entry index 0, 1, 2, ... in insertion order; callers
// keep per-entry data in their own arrays indexed by it.
typedef struct {
    uint64_t *slots; // hash << 32 | (entry index + 1); 0 for empty
    size_t cap;
    uint32_t *hashes, *key_offset, *key_len;
    size_t count, entries_cap;
    uint8_t *arena; // all keys, back to back
    size_t arena_len, arena_cap;
} StrMap;

int strmap_init(StrMap *m, size_t expected);
void strmap_free(StrMap *m);
// Entry index of key, or -1 if absent.
long strmap_find(const StrMap *m, const uint8_t *key, size_t len);
// Entry index of key, adding it if absent (*added tells which); -1 out of memory.
long strmap_intern(StrMap *m, const uint8_t *key, size_t len, int *added);
static inline const uint8_t *strmap_key(const StrMap *m, size_t entry, size_t *len) {
    *len = m->key_len[entry];
    return m->arena + m->key_offset[entry];
}

#endif
