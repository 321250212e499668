// Tokenizer construction, the file format, encoding and decoding.
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "common/bytes.h"
#include "common/fileio.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/hashmap.h"
#include "tokenizer/text.h"

#define FILE_MAGIC "MRLHFBPE"
#define FILE_VERSION 1u
#define SPECIAL_NAME_MAX 31
// Largest tokenizer file read from disk: far above any real vocabulary.
#define FILE_MAX_BYTES ((size_t)64 << 20)
// magic, version, vocab size, special count, merge count ... crc32
#define FILE_HEADER_BYTES 24
#define FILE_MIN_BYTES (FILE_HEADER_BYTES + 4)

static const char *const default_special_names[TOK_NUM_SPECIAL] = {
    "<|endoftext|>", "<|user|>", "<|assistant|>", "<|pad|>"};

struct Tokenizer {
    int n_merges;
    uint32_t *merges;         // 2 per merge: left id, right id
    uint32_t *token_offset;   // vocab_size + 1 offsets into token_bytes
    uint8_t *token_bytes;     // what each id decodes to, back to back
    char special_names[TOK_NUM_SPECIAL][SPECIAL_NAME_MAX + 1];
    U64Map merge_ids;         // (left << 32 | right) -> merged id
    uint32_t fingerprint;
};

static uint64_t pair_key(uint32_t left, uint32_t right) {
    return (uint64_t)left << 32 | right;
}

int tokenizer_vocab_size(const Tokenizer *tok) { return TOK_FIRST_MERGE + tok->n_merges; }
uint32_t tokenizer_fingerprint(const Tokenizer *tok) { return tok->fingerprint; }
int tokenizer_num_merges(const Tokenizer *tok) { return tok->n_merges; }

int tokenizer_special(const Tokenizer *tok, TokSpecial which) {
    (void)tok;
    return (unsigned)which < TOK_NUM_SPECIAL ? TOK_FIRST_SPECIAL + (int)which : -1;
}

const char *tokenizer_special_name(const Tokenizer *tok, TokSpecial which) {
    return (unsigned)which < TOK_NUM_SPECIAL ? tok->special_names[which] : NULL;
}

void tokenizer_merge(const Tokenizer *tok, int i, uint32_t *left, uint32_t *right) {
    *left = tok->merges[2 * i];
    *right = tok->merges[2 * i + 1];
}

const uint8_t *tokenizer_token_bytes(const Tokenizer *tok, int id, size_t *len) {
    if (id < 0 || id >= tokenizer_vocab_size(tok)) return NULL;
    *len = tok->token_offset[id + 1] - tok->token_offset[id];
    return tok->token_bytes + tok->token_offset[id];
}

void tokenizer_free(Tokenizer *tok) {
    if (!tok) return;
    free(tok->merges);
    free(tok->token_offset);
    free(tok->token_bytes);
    u64map_free(&tok->merge_ids);
    free(tok);
}

// Checks each merge (ids defined before it, no specials, no repeated pair, no
// token longer than a pre-token can be) and fills in the pair map and the
// byte strings. The caller has set n_merges and merges.
static int tokenizer_index(Tokenizer *tok, const char *name, Error *err) {
    int vocab = tokenizer_vocab_size(tok);
    tok->token_offset = malloc(((size_t)vocab + 1) * sizeof *tok->token_offset);
    if (!tok->token_offset || u64map_init(&tok->merge_ids, (size_t)tok->n_merges))
        return error_set(err, "%s: out of memory", name);
    uint32_t *offset = tok->token_offset, used = 0;
    for (int id = 0; id < TOK_FIRST_MERGE; id++) {
        offset[id] = used;
        used += id < 256;
    }
    for (int i = 0; i < tok->n_merges; i++) {
        uint32_t id = (uint32_t)(TOK_FIRST_MERGE + i);
        uint32_t left = tok->merges[2 * i], right = tok->merges[2 * i + 1];
        for (int side = 0; side < 2; side++) {
            uint32_t part = side ? right : left;
            if (part >= id)
                return error_set(err, "%s: merge %d uses id %u, which is not defined before it",
                                 name, i, part);
            if (part >= TOK_FIRST_SPECIAL && part < TOK_FIRST_MERGE)
                return error_set(err, "%s: merge %d uses special token %u", name, i, part);
        }
        // offset[id] is set for every id below this one, offset[id] not yet.
        uint32_t left_len = (left + 1 < id ? offset[left + 1] : used) - offset[left];
        uint32_t right_len = (right + 1 < id ? offset[right + 1] : used) - offset[right];
        if (left_len + right_len > PRETOKEN_MAX_BYTES)
            return error_set(err, "%s: merge %d makes a token of %u bytes (limit %d)", name, i,
                             left_len + right_len, PRETOKEN_MAX_BYTES);
        uint32_t existing;
        int added = u64map_get_or_add(&tok->merge_ids, pair_key(left, right), id, &existing);
        if (added < 0) return error_set(err, "%s: out of memory", name);
        if (!added)
            return error_set(err, "%s: merge %d repeats the pair (%u, %u) of id %u", name, i, left,
                             right, existing);
        offset[id] = used;
        used += left_len + right_len;
    }
    offset[vocab] = used;
    tok->token_bytes = malloc(used ? used : 1);
    if (!tok->token_bytes) return error_set(err, "%s: out of memory", name);
    for (int id = 0; id < 256; id++) tok->token_bytes[id] = (uint8_t)id;
    for (int i = 0; i < tok->n_merges; i++) {
        uint32_t id = (uint32_t)(TOK_FIRST_MERGE + i);
        uint32_t left = tok->merges[2 * i], right = tok->merges[2 * i + 1];
        uint32_t left_len = offset[left + 1] - offset[left];
        memcpy(tok->token_bytes + offset[id], tok->token_bytes + offset[left], left_len);
        memcpy(tok->token_bytes + offset[id] + left_len, tok->token_bytes + offset[right],
               offset[right + 1] - offset[right]);
    }
    return 0;
}

static Tokenizer *tokenizer_alloc(int n_merges) {
    Tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return NULL;
    tok->n_merges = n_merges;
    tok->merges = malloc(2 * ((size_t)n_merges + 1) * sizeof *tok->merges);
    if (!tok->merges) {
        free(tok);
        return NULL;
    }
    return tok;
}

int tokenizer_from_merges(Tokenizer **out, const uint32_t *merges, int n_merges, Error *err) {
    *out = NULL;
    if (n_merges < 0 || n_merges > TOK_MAX_VOCAB - TOK_FIRST_MERGE)
        return error_set(err, "%d merges is out of range [0, %d]", n_merges,
                         TOK_MAX_VOCAB - TOK_FIRST_MERGE);
    Tokenizer *tok = tokenizer_alloc(n_merges);
    if (!tok) return error_set(err, "out of memory");
    if (n_merges) memcpy(tok->merges, merges, 2 * (size_t)n_merges * sizeof *merges);
    for (int s = 0; s < TOK_NUM_SPECIAL; s++)
        snprintf(tok->special_names[s], sizeof tok->special_names[s], "%s",
                 default_special_names[s]);
    uint8_t *image = NULL;
    size_t image_len = 0;
    if (tokenizer_index(tok, "merges", err) != 0 ||
        tokenizer_serialize(tok, &image, &image_len, err) != 0) {
        tokenizer_free(tok);
        return -1;
    }
    tok->fingerprint = get_u32(image + image_len - 4);
    free(image);
    *out = tok;
    return 0;
}

// The file layout is described in docs/tokenizer.md.
int tokenizer_serialize(const Tokenizer *tok, uint8_t **buf, size_t *len, Error *err) {
    size_t n = FILE_HEADER_BYTES + 8 * (size_t)tok->n_merges + 4;
    for (int s = 0; s < TOK_NUM_SPECIAL; s++) n += 8 + strlen(tok->special_names[s]);
    uint8_t *p = malloc(n);
    if (!p) return error_set(err, "out of memory");
    size_t o = 0;
    memcpy(p, FILE_MAGIC, 8);
    put_u32(p + 8, FILE_VERSION);
    put_u32(p + 12, (uint32_t)tokenizer_vocab_size(tok));
    put_u32(p + 16, TOK_NUM_SPECIAL);
    put_u32(p + 20, (uint32_t)tok->n_merges);
    o = FILE_HEADER_BYTES;
    for (int s = 0; s < TOK_NUM_SPECIAL; s++) {
        size_t name_len = strlen(tok->special_names[s]);
        put_u32(p + o, (uint32_t)(TOK_FIRST_SPECIAL + s));
        put_u32(p + o + 4, (uint32_t)name_len);
        memcpy(p + o + 8, tok->special_names[s], name_len);
        o += 8 + name_len;
    }
    for (int i = 0; i < 2 * tok->n_merges; i++, o += 4) put_u32(p + o, tok->merges[i]);
    put_u32(p + o, (uint32_t)crc32(0L, p, (uInt)o));
    *buf = p;
    *len = n;
    return 0;
}

static int parse_special_names(Tokenizer *tok, ByteReader *br, const char *name, Error *err) {
    for (int s = 0; s < TOK_NUM_SPECIAL; s++) {
        uint32_t id = br_u32(br), name_len = br_u32(br);
        if (!br->ok) break;
        if (id != (uint32_t)(TOK_FIRST_SPECIAL + s))
            return error_set(err, "%s: special token %d has id %u, expected %d", name, s, id,
                             TOK_FIRST_SPECIAL + s);
        if (name_len == 0 || name_len > SPECIAL_NAME_MAX)
            return error_set(err, "%s: special token %d has a name of %u bytes (1..%d allowed)",
                             name, s, name_len, SPECIAL_NAME_MAX);
        const uint8_t *chars = br_bytes(br, name_len);
        if (!chars) break;
        for (uint32_t k = 0; k < name_len; k++)
            if (chars[k] <= ' ' || chars[k] >= 0x7f)
                return error_set(err, "%s: special token %d has a name that is not printable ASCII",
                                 name, s);
        memcpy(tok->special_names[s], chars, name_len);
        tok->special_names[s][name_len] = '\0';
    }
    if (!br->ok) return error_set(err, "%s: truncated in the special tokens", name);
    return 0;
}

// Header fields, checked against the file's size before anything is allocated.
static int parse_header(const uint8_t *buf, size_t len, const char *name, uint32_t *n_merges,
                        Error *err) {
    if (len < FILE_MIN_BYTES)
        return error_set(err, "%s: too short to be a tokenizer file (%zu bytes)", name, len);
    if (memcmp(buf, FILE_MAGIC, 8) != 0)
        return error_set(err, "%s: not a minirlhf tokenizer file (bad magic)", name);
    uint32_t version = get_u32(buf + 8);
    if (version != FILE_VERSION)
        return error_set(err, "%s: unsupported tokenizer file version %u (this build reads %u)",
                         name, version, FILE_VERSION);
    uint32_t stored_crc = get_u32(buf + len - 4);
    uint32_t actual_crc = (uint32_t)crc32(0L, buf, (uInt)(len - 4));
    if (stored_crc != actual_crc)
        return error_set(err, "%s: checksum mismatch (stored %08x, computed %08x): the file is "
                         "corrupt or truncated", name, stored_crc, actual_crc);
    uint32_t vocab = get_u32(buf + 12), n_special = get_u32(buf + 16);
    *n_merges = get_u32(buf + 20);
    if (n_special != TOK_NUM_SPECIAL)
        return error_set(err, "%s: %u special tokens, expected %d", name, n_special,
                         TOK_NUM_SPECIAL);
    if (*n_merges > (uint32_t)(TOK_MAX_VOCAB - TOK_FIRST_MERGE))
        return error_set(err, "%s: %u merges is more than the limit of %d", name, *n_merges,
                         TOK_MAX_VOCAB - TOK_FIRST_MERGE);
    if (*n_merges > (len - FILE_MIN_BYTES) / 8)
        return error_set(err, "%s: %u merges do not fit in a file of %zu bytes", name, *n_merges,
                         len);
    if (vocab != TOK_FIRST_MERGE + *n_merges)
        return error_set(err, "%s: vocabulary size %u does not match %u merges (expected %u)",
                         name, vocab, *n_merges, TOK_FIRST_MERGE + *n_merges);
    return 0;
}

int tokenizer_parse(Tokenizer **out, const uint8_t *buf, size_t len, const char *name,
                    Error *err) {
    *out = NULL;
    if (len > FILE_MAX_BYTES)
        return error_set(err, "%s: too large to be a tokenizer file (%zu bytes)", name, len);
    uint32_t n_merges = 0;
    if (parse_header(buf, len, name, &n_merges, err) != 0) return -1;
    Tokenizer *tok = tokenizer_alloc((int)n_merges);
    if (!tok) return error_set(err, "%s: out of memory", name);
    ByteReader br;
    br_init(&br, buf, len - 4);
    br_bytes(&br, FILE_HEADER_BYTES);
    int rc = parse_special_names(tok, &br, name, err);
    for (uint32_t i = 0; rc == 0 && i < 2 * n_merges; i++) tok->merges[i] = br_u32(&br);
    if (rc == 0 && !br.ok) rc = error_set(err, "%s: truncated in the merges", name);
    if (rc == 0 && br.pos != br.len)
        rc = error_set(err, "%s: %zu unexpected bytes after the merges", name, br.len - br.pos);
    if (rc == 0) rc = tokenizer_index(tok, name, err);
    if (rc != 0) {
        tokenizer_free(tok);
        return -1;
    }
    tok->fingerprint = get_u32(buf + len - 4);
    *out = tok;
    return 0;
}

int tokenizer_load(Tokenizer **tok, const char *path, Error *err) {
    *tok = NULL;
    unsigned char *buf = NULL;
    size_t len = 0;
    if (read_file(path, FILE_MAX_BYTES, &buf, &len, err) != 0) return -1;
    int rc = tokenizer_parse(tok, buf, len, path, err);
    free(buf);
    return rc;
}

int tokenizer_save(const Tokenizer *tok, const char *path, Error *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    if (tokenizer_serialize(tok, &buf, &len, err) != 0) return -1;
    int rc = write_file_atomic(path, buf, len, err);
    free(buf);
    return rc;
}

int tokenizer_decode(const Tokenizer *tok, const int *ids, size_t n_ids, char **text,
                     size_t *len, Error *err) {
    *text = NULL;
    *len = 0;
    int vocab = tokenizer_vocab_size(tok);
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= vocab)
            return error_set(err, "token id %d at position %zu is out of range [0, %d)", ids[i], i,
                             vocab);
        total += tok->token_offset[ids[i] + 1] - tok->token_offset[ids[i]];
    }
    char *out = malloc(total + 1);
    if (!out) return error_set(err, "out of memory decoding %zu tokens", n_ids);
    size_t o = 0;
    for (size_t i = 0; i < n_ids; i++) {
        uint32_t start = tok->token_offset[ids[i]], n = tok->token_offset[ids[i] + 1] - start;
        memcpy(out + o, tok->token_bytes + start, n);
        o += n;
    }
    out[o] = '\0';
    *text = out;
    *len = o;
    return 0;
}

int tokenizer_decode_text(const Tokenizer *tok, const int *ids, size_t n_ids, char **text, Error *err) {
    char *bytes;
    size_t len;
    if (tokenizer_decode(tok, ids, n_ids, &bytes, &len, err)) return -1;
    for (size_t i = 0; i < len; i++)
        if (bytes[i] == '\0') bytes[i] = (char)0xFF; // never valid UTF-8: replaced below
    *text = (char *)utf8_replace_invalid((const uint8_t *)bytes, len, &len);
    free(bytes);
    return *text ? 0 : error_set(err, "out of memory decoding %zu tokens", n_ids);
}

// --- Encoding -----------------------------------------------------------------

typedef struct {
    int *ids;
    size_t len, cap;
} IdBuffer;

static int id_buffer_reserve(IdBuffer *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra) cap *= 2;
    int *p = realloc(b->ids, cap * sizeof *p);
    if (!p) return -1;
    b->ids = p;
    b->cap = cap;
    return 0;
}

// Applies merges to one pre-token the way GPT-2 does: repeatedly merge every
// occurrence of the adjacent pair with the lowest rank (= lowest merged id).
// Writes the ids to sym and returns how many there are.
static size_t bpe_pretoken(const Tokenizer *tok, const uint8_t *s, size_t n, uint32_t *sym) {
    for (size_t i = 0; i < n; i++) sym[i] = s[i];
    // rank[i]: id that merging sym[i] and sym[i+1] would make, UINT32_MAX if none.
    uint32_t rank[PRETOKEN_MAX_BYTES];
    for (size_t i = 0; i + 1 < n; i++) {
        const uint32_t *v = u64map_get(&tok->merge_ids, pair_key(sym[i], sym[i + 1]));
        rank[i] = v ? *v : UINT32_MAX;
    }
    while (n > 1) {
        uint32_t best = UINT32_MAX;
        for (size_t i = 0; i + 1 < n; i++)
            if (rank[i] < best) best = rank[i];
        if (best == UINT32_MAX) break;
        uint32_t left = tok->merges[2 * (best - TOK_FIRST_MERGE)];
        uint32_t right = tok->merges[2 * (best - TOK_FIRST_MERGE) + 1];
        size_t out = 0;
        for (size_t i = 0; i < n; out++) {
            if (i + 1 < n && rank[i] == best && sym[i] == left && sym[i + 1] == right) {
                sym[out] = best;
                i += 2;
            } else {
                sym[out] = sym[i];
                rank[out] = rank[i];
                i++;
            }
        }
        n = out;
        // Only pairs that include the new id changed (nothing had that id before).
        for (size_t i = 0; i + 1 < n; i++) {
            if (sym[i] != best && sym[i + 1] != best) continue;
            const uint32_t *v = u64map_get(&tok->merge_ids, pair_key(sym[i], sym[i + 1]));
            rank[i] = v ? *v : UINT32_MAX;
        }
    }
    return n;
}

// Pre-tokens repeat a lot in real text, so a long input remembers the ids of
// each distinct pre-token for the length of one encode call.
typedef struct {
    StrMap pretokens;
    uint32_t *first, *count; // per entry: where its ids start in ids, how many
    size_t entries_cap;
    uint32_t *ids;
    size_t ids_len, ids_cap;
} EncodeCache;

#define CACHE_MIN_TEXT 2048
#define CACHE_MAX_ENTRIES (1u << 18)

static void encode_cache_free(EncodeCache *c) {
    strmap_free(&c->pretokens);
    free(c->first);
    free(c->count);
    free(c->ids);
}

// Remembers ids for entry e; a failed allocation just means no caching.
static void encode_cache_store(EncodeCache *c, long e, const uint32_t *ids, size_t n) {
    while ((size_t)e >= c->entries_cap) {
        size_t cap = c->entries_cap ? c->entries_cap * 2 : 1024;
        uint32_t *first = realloc(c->first, cap * sizeof *first);
        if (first) c->first = first;
        uint32_t *count = realloc(c->count, cap * sizeof *count);
        if (count) c->count = count;
        if (!first || !count) return;
        // Entries whose store failed earlier must read as "not cached".
        memset(c->count + c->entries_cap, 0, (cap - c->entries_cap) * sizeof *count);
        c->entries_cap = cap;
    }
    if (c->ids_len + n > c->ids_cap) {
        size_t cap = c->ids_cap ? c->ids_cap * 2 : 4096;
        while (cap < c->ids_len + n) cap *= 2;
        uint32_t *p = realloc(c->ids, cap * sizeof *p);
        if (!p) return;
        c->ids = p;
        c->ids_cap = cap;
    }
    memcpy(c->ids + c->ids_len, ids, n * sizeof *ids);
    c->first[e] = (uint32_t)c->ids_len;
    c->count[e] = (uint32_t)n;
    c->ids_len += n;
}

static int append_ids(IdBuffer *out, const uint32_t *ids, size_t n) {
    if (id_buffer_reserve(out, n) != 0) return -1;
    for (size_t i = 0; i < n; i++) out->ids[out->len++] = (int)ids[i];
    return 0;
}

static int encode_pretoken(const Tokenizer *tok, const uint8_t *s, size_t n, EncodeCache *cache,
                           IdBuffer *out) {
    if (n == 1) {
        uint32_t id = s[0];
        return append_ids(out, &id, 1);
    }
    long e = -1;
    int added = 0;
    if (cache && cache->pretokens.count < CACHE_MAX_ENTRIES) {
        e = strmap_intern(&cache->pretokens, s, n, &added);
        if (e >= 0 && !added && (size_t)e < cache->entries_cap && cache->count[e])
            return append_ids(out, cache->ids + cache->first[e], cache->count[e]);
    } else if (cache) {
        e = strmap_find(&cache->pretokens, s, n);
        if (e >= 0 && (size_t)e < cache->entries_cap && cache->count[e])
            return append_ids(out, cache->ids + cache->first[e], cache->count[e]);
        e = -1;
    }
    uint32_t sym[PRETOKEN_MAX_BYTES];
    size_t m = bpe_pretoken(tok, s, n, sym);
    if (e >= 0 && added) encode_cache_store(cache, e, sym, m);
    return append_ids(out, sym, m);
}

int tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int lossy, int **ids,
                     size_t *n_ids, Error *err) {
    *ids = NULL;
    *n_ids = 0;
    NfcText nfc;
    if (nfc_text_make(&nfc, len ? text : "", len, lossy, err) != 0) return -1;
    EncodeCache cache;
    memset(&cache, 0, sizeof cache);
    int use_cache = nfc.len >= CACHE_MIN_TEXT && strmap_init(&cache.pretokens, 4096) == 0;
    IdBuffer out = {0};
    int rc = id_buffer_reserve(&out, nfc.len / 3 + 1);
    for (size_t pos = 0, end; rc == 0 && pos < nfc.len; pos = end) {
        end = pretoken_end(nfc.data, nfc.len, pos);
        rc = encode_pretoken(tok, nfc.data + pos, end - pos, use_cache ? &cache : NULL, &out);
    }
    encode_cache_free(&cache);
    nfc_text_free(&nfc);
    if (rc != 0) {
        free(out.ids);
        return error_set(err, "out of memory encoding %zu bytes", len);
    }
    *ids = out.ids;
    *n_ids = out.len;
    return 0;
}
