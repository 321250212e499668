#include "tokenizer/hashmap.h"

#include <stdlib.h>
#include <string.h>

#define EMPTY_KEY UINT64_MAX

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static size_t capacity_for(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    return cap;
}

static int u64map_alloc(U64Map *m, size_t cap) {
    m->keys = malloc(cap * sizeof *m->keys);
    m->values = malloc(cap * sizeof *m->values);
    if (!m->keys || !m->values) {
        free(m->keys);
        free(m->values);
        m->keys = NULL;
        m->values = NULL;
        return -1;
    }
    memset(m->keys, 0xff, cap * sizeof *m->keys);
    m->cap = cap;
    m->count = 0;
    return 0;
}

int u64map_init(U64Map *m, size_t expected) {
    memset(m, 0, sizeof *m);
    return u64map_alloc(m, capacity_for(expected));
}

void u64map_free(U64Map *m) {
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof *m);
}

const uint32_t *u64map_get(const U64Map *m, uint64_t key) {
    size_t mask = m->cap - 1;
    for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) return &m->values[i];
        if (m->keys[i] == EMPTY_KEY) return NULL;
    }
}

static void u64map_place(U64Map *m, uint64_t key, uint32_t value) {
    size_t mask = m->cap - 1, i = mix64(key) & mask;
    while (m->keys[i] != EMPTY_KEY) i = (i + 1) & mask;
    m->keys[i] = key;
    m->values[i] = value;
    m->count++;
}

static int u64map_grow(U64Map *m) {
    U64Map bigger;
    if (u64map_alloc(&bigger, m->cap * 2) != 0) return -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != EMPTY_KEY) u64map_place(&bigger, m->keys[i], m->values[i]);
    u64map_free(m);
    *m = bigger;
    return 0;
}

int u64map_get_or_add(U64Map *m, uint64_t key, uint32_t value, uint32_t *value_out) {
    const uint32_t *found = u64map_get(m, key);
    if (found) {
        *value_out = *found;
        return 0;
    }
    if ((m->count + 1) * 2 > m->cap && u64map_grow(m) != 0) return -1;
    u64map_place(m, key, value);
    *value_out = value;
    return 1;
}

// Eight bytes at a time. The value depends on the host's byte order, which is
// harmless: nothing built from a map depends on where its keys land.
static uint32_t hash_bytes(const uint8_t *s, size_t n) {
    uint64_t h = (uint64_t)n * 0x9e3779b97f4a7c15ULL, w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
    }
    if (n) {
        w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
    }
    return (uint32_t)mix64(h);
}

int strmap_init(StrMap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    m->cap = capacity_for(expected);
    m->slots = calloc(m->cap, sizeof *m->slots);
    return m->slots ? 0 : -1;
}

void strmap_free(StrMap *m) {
    free(m->slots);
    free(m->hashes);
    free(m->key_offset);
    free(m->key_len);
    free(m->arena);
    memset(m, 0, sizeof *m);
}

// A slot keeps the key's hash beside the entry index, so a probe only touches
// the entry's key when the hashes agree.
static uint64_t slot_value(uint32_t hash, size_t entry) {
    return (uint64_t)hash << 32 | (uint32_t)(entry + 1);
}

static size_t strmap_slot(const StrMap *m, const uint8_t *key, size_t len, uint32_t h) {
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint64_t slot = m->slots[i];
        if (slot == 0) return i;
        if ((uint32_t)(slot >> 32) != h) continue;
        size_t e = (uint32_t)slot - 1;
        if (m->key_len[e] == len && memcmp(m->arena + m->key_offset[e], key, len) == 0) return i;
    }
}

long strmap_find(const StrMap *m, const uint8_t *key, size_t len) {
    size_t i = strmap_slot(m, key, len, hash_bytes(key, len));
    return m->slots[i] ? (long)(uint32_t)m->slots[i] - 1 : -1;
}

static int strmap_grow_slots(StrMap *m) {
    size_t cap = m->cap * 2, mask = cap - 1;
    uint64_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t e = 0; e < m->count; e++) {
        size_t i = m->hashes[e] & mask;
        while (slots[i]) i = (i + 1) & mask;
        slots[i] = slot_value(m->hashes[e], e);
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

static int grow_array(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int strmap_reserve_entry(StrMap *m, size_t key_len) {
    size_t cap = m->entries_cap;
    if (m->count + 1 > cap) {
        size_t c1 = cap, c2 = cap, c3 = cap;
        if (grow_array((void **)&m->hashes, &c1, m->count + 1, sizeof *m->hashes) ||
            grow_array((void **)&m->key_offset, &c2, m->count + 1, sizeof *m->key_offset) ||
            grow_array((void **)&m->key_len, &c3, m->count + 1, sizeof *m->key_len))
            return -1;
        m->entries_cap = c1;
    }
    return grow_array((void **)&m->arena, &m->arena_cap, m->arena_len + key_len, 1);
}

long strmap_intern(StrMap *m, const uint8_t *key, size_t len, int *added) {
    uint32_t h = hash_bytes(key, len);
    size_t i = strmap_slot(m, key, len, h);
    *added = 0;
    if (m->slots[i]) return (long)(uint32_t)m->slots[i] - 1;
    if (m->count >= UINT32_MAX - 1 || m->arena_len + len > UINT32_MAX) return -1;
    if (strmap_reserve_entry(m, len) != 0) return -1;
    size_t e = m->count++;
    m->hashes[e] = h;
    m->key_offset[e] = (uint32_t)m->arena_len;
    m->key_len[e] = (uint32_t)len;
    if (len) memcpy(m->arena + m->arena_len, key, len);
    m->arena_len += len;
    m->slots[i] = slot_value(h, e);
    *added = 1;
    if (m->count * 2 > m->cap && strmap_grow_slots(m) != 0) {
        m->count--; // keep the map consistent: the entry was never reachable
        m->arena_len -= len;
        m->slots[i] = 0;
        return -1;
    }
    return (long)e;
}
