// Learning merges. Distinct pre-tokens ("words") are counted once; pair counts
// are then kept up to date incrementally: merging a pair only revisits the
// words that contain it, found through a per-pair list of word indices, and a
// max-heap with lazy deletion picks the next pair.
#include "tokenizer/bpe_train.h"

#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/jsonl.h"
#include "tokenizer/hashmap.h"
#include "tokenizer/text.h"

#define CORPUS_FILE_MAX_BYTES ((size_t)1 << 31)

struct BpeTrainer {
    BpeTrainConfig cfg;
    StrMap words;          // distinct pre-tokens
    int64_t *word_counts;  // per entry of words
    size_t counts_cap;
    size_t n_pretokens;
};

int bpe_trainer_new(BpeTrainer **out, const BpeTrainConfig *cfg, Error *err) {
    *out = NULL;
    if (cfg->vocab_size < TOK_FIRST_MERGE)
        return error_set(err, "vocabulary size %d is smaller than the 256 byte tokens plus %d "
                         "special tokens (at least %d)", cfg->vocab_size, TOK_NUM_SPECIAL,
                         TOK_FIRST_MERGE);
    if (cfg->vocab_size > TOK_MAX_VOCAB)
        return error_set(err, "vocabulary size %d is above the limit of %d", cfg->vocab_size,
                         TOK_MAX_VOCAB);
    if (cfg->min_frequency < 1)
        return error_set(err, "minimum pair frequency %d must be at least 1", cfg->min_frequency);
    BpeTrainer *t = calloc(1, sizeof *t);
    if (!t || strmap_init(&t->words, 1 << 14) != 0) {
        free(t);
        return error_set(err, "out of memory");
    }
    t->cfg = *cfg;
    *out = t;
    return 0;
}

void bpe_trainer_free(BpeTrainer *t) {
    if (!t) return;
    strmap_free(&t->words);
    free(t->word_counts);
    free(t);
}

size_t bpe_trainer_pretokens(const BpeTrainer *t) { return t->n_pretokens; }
size_t bpe_trainer_distinct(const BpeTrainer *t) { return t->words.count; }

static int count_pretoken(BpeTrainer *t, const uint8_t *s, size_t n) {
    int added;
    long e = strmap_intern(&t->words, s, n, &added);
    if (e < 0) return -1;
    if ((size_t)e >= t->counts_cap) {
        size_t cap = t->counts_cap ? t->counts_cap * 2 : 1 << 14;
        int64_t *p = realloc(t->word_counts, cap * sizeof *p);
        if (!p) return -1;
        t->word_counts = p;
        t->counts_cap = cap;
    }
    if (added) t->word_counts[e] = 0;
    t->word_counts[e]++;
    t->n_pretokens++;
    return 0;
}

int bpe_trainer_add_text(BpeTrainer *t, const char *text, size_t len, const char *source,
                         Error *err) {
    NfcText nfc;
    Error inner;
    if (nfc_text_make(&nfc, text, len, t->cfg.lossy, &inner) != 0)
        return error_set(err, "%s: %s", source, inner.msg);
    int rc = 0;
    for (size_t pos = 0, end; rc == 0 && pos < nfc.len; pos = end) {
        end = pretoken_end(nfc.data, nfc.len, pos);
        rc = count_pretoken(t, nfc.data + pos, end - pos);
    }
    nfc_text_free(&nfc);
    return rc ? error_set(err, "%s: out of memory counting pre-tokens", source) : 0;
}

static int add_jsonl_file(BpeTrainer *t, const char *path, const char *field, Error *err) {
    JsonlReader reader;
    if (jsonl_open(&reader, path, err) != 0) return -1;
    cJSON *obj = NULL;
    int rc;
    while ((rc = jsonl_next(&reader, &obj, err)) == 1) {
        const char *text = jsonl_string(&reader, obj, field, err);
        char source[4200];
        snprintf(source, sizeof source, "%s:%ld: field \"%s\"", path, reader.line, field);
        rc = text ? bpe_trainer_add_text(t, text, strlen(text), source, err) : -1;
        cJSON_Delete(obj);
        if (rc != 0) break;
    }
    jsonl_close(&reader);
    return rc < 0 ? -1 : 0;
}

int bpe_trainer_add_file(BpeTrainer *t, const char *path, const char *jsonl_field, Error *err) {
    if (jsonl_field) return add_jsonl_file(t, path, jsonl_field, err);
    unsigned char *data = NULL;
    size_t len = 0;
    if (read_file(path, CORPUS_FILE_MAX_BYTES, &data, &len, err) != 0) return -1;
    int rc = bpe_trainer_add_text(t, (const char *)data, len, path, err);
    free(data);
    return rc;
}

// --- The merge loop -----------------------------------------------------------

typedef struct {
    uint32_t left, right;
    int64_t count;
    int64_t pushed;     // count of the newest heap entry for this pair
    uint32_t *words;    // words that contain (or once contained) the pair
    uint32_t n_words, cap_words;
    uint32_t touched;   // merge step that last changed the count, plus 1
} PairStat;

typedef struct {
    int64_t count;
    uint32_t left, right, pair;
} HeapEntry;

typedef struct {
    uint32_t *symbols;                 // all words, back to back
    uint32_t *word_start, *word_len;   // word_len shrinks as merges apply
    int64_t *word_count;
    uint32_t *word_seen;               // merge step that last visited the word, plus 1
    size_t n_words;
    PairStat *pairs;
    size_t n_pairs, cap_pairs;
    U64Map pair_index;
    HeapEntry *heap;
    size_t heap_len, heap_cap;
    uint32_t *touched;                 // pairs changed in the current step
    size_t n_touched, cap_touched;
    uint32_t step;
} MergeState;

// Heap order: more frequent first, then lower left id, then lower right id.
static int heap_before(const HeapEntry *a, const HeapEntry *b) {
    if (a->count != b->count) return a->count > b->count;
    if (a->left != b->left) return a->left < b->left;
    return a->right < b->right;
}

static int heap_push(MergeState *st, uint32_t pair) {
    if (st->heap_len == st->heap_cap) {
        size_t cap = st->heap_cap ? st->heap_cap * 2 : 1024;
        HeapEntry *p = realloc(st->heap, cap * sizeof *p);
        if (!p) return -1;
        st->heap = p;
        st->heap_cap = cap;
    }
    PairStat *ps = &st->pairs[pair];
    HeapEntry e = {ps->count, ps->left, ps->right, pair};
    ps->pushed = ps->count;
    size_t i = st->heap_len++;
    while (i > 0 && heap_before(&e, &st->heap[(i - 1) / 2])) {
        st->heap[i] = st->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    st->heap[i] = e;
    return 0;
}

static HeapEntry heap_pop(MergeState *st) {
    HeapEntry top = st->heap[0], last = st->heap[--st->heap_len];
    size_t i = 0, n = st->heap_len;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && heap_before(&st->heap[child + 1], &st->heap[child])) child++;
        if (!heap_before(&st->heap[child], &last)) break;
        st->heap[i] = st->heap[child];
        i = child;
    }
    if (n) st->heap[i] = last;
    return top;
}

static int append_u32(uint32_t **arr, uint32_t *n, uint32_t *cap, uint32_t v) {
    if (*n == *cap) {
        uint32_t c = *cap ? *cap * 2 : 4;
        uint32_t *p = realloc(*arr, (size_t)c * sizeof *p);
        if (!p) return -1;
        *arr = p;
        *cap = c;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

// Adds delta occurrences of (left, right); with record_word set, notes that
// word `word` contains the pair.
static int pair_change(MergeState *st, uint32_t left, uint32_t right, int64_t delta,
                       uint32_t word, int record_word) {
    uint32_t index;
    int added = u64map_get_or_add(&st->pair_index, (uint64_t)left << 32 | right,
                                  (uint32_t)st->n_pairs, &index);
    if (added < 0) return -1;
    if (added) {
        if (st->n_pairs == st->cap_pairs) {
            size_t cap = st->cap_pairs ? st->cap_pairs * 2 : 4096;
            PairStat *p = realloc(st->pairs, cap * sizeof *p);
            if (!p) return -1;
            st->pairs = p;
            st->cap_pairs = cap;
        }
        memset(&st->pairs[index], 0, sizeof st->pairs[index]);
        st->pairs[index].left = left;
        st->pairs[index].right = right;
        st->n_pairs++;
    }
    PairStat *ps = &st->pairs[index];
    ps->count += delta;
    if (record_word && (ps->n_words == 0 || ps->words[ps->n_words - 1] != word) &&
        append_u32(&ps->words, &ps->n_words, &ps->cap_words, word) != 0)
        return -1;
    if (ps->touched != st->step + 1) {
        ps->touched = st->step + 1;
        if (st->n_touched == st->cap_touched) {
            size_t cap = st->cap_touched ? st->cap_touched * 2 : 1024;
            uint32_t *p = realloc(st->touched, cap * sizeof *p);
            if (!p) return -1;
            st->touched = p;
            st->cap_touched = cap;
        }
        st->touched[st->n_touched++] = index;
    }
    return 0;
}

static void merge_state_free(MergeState *st) {
    for (size_t i = 0; i < st->n_pairs; i++) free(st->pairs[i].words);
    free(st->pairs);
    u64map_free(&st->pair_index);
    free(st->heap);
    free(st->touched);
    free(st->symbols);
    free(st->word_start);
    free(st->word_len);
    free(st->word_count);
    free(st->word_seen);
}

// Lays the distinct pre-tokens out as byte-id sequences and counts every pair.
static int merge_state_init(MergeState *st, const BpeTrainer *t) {
    memset(st, 0, sizeof *st);
    st->step = UINT32_MAX - 1; // marks made now never look like a merge step's
    size_t n = t->words.count;
    st->n_words = n;
    st->symbols = malloc((t->words.arena_len + 1) * sizeof *st->symbols);
    st->word_start = malloc((n + 1) * sizeof *st->word_start);
    st->word_len = malloc((n + 1) * sizeof *st->word_len);
    st->word_count = malloc((n + 1) * sizeof *st->word_count);
    st->word_seen = calloc(n + 1, sizeof *st->word_seen);
    if (!st->symbols || !st->word_start || !st->word_len || !st->word_count || !st->word_seen ||
        u64map_init(&st->pair_index, 1 << 16) != 0)
        return -1;
    uint32_t pos = 0;
    for (size_t w = 0; w < n; w++) {
        size_t len;
        const uint8_t *key = strmap_key(&t->words, w, &len);
        st->word_start[w] = pos;
        st->word_len[w] = (uint32_t)len;
        st->word_count[w] = t->word_counts[w];
        for (size_t i = 0; i < len; i++) st->symbols[pos + i] = key[i];
        for (size_t i = 0; i + 1 < len; i++)
            if (pair_change(st, key[i], key[i + 1], t->word_counts[w], (uint32_t)w, 1) != 0)
                return -1;
        pos += (uint32_t)len;
    }
    for (size_t p = 0; p < st->n_pairs; p++)
        if (heap_push(st, (uint32_t)p) != 0) return -1;
    st->n_touched = 0;
    return 0;
}

// The most frequent pair (ties to the lowest ids), or -1 if none is left.
// Entries whose count went down since they were pushed are re-pushed with
// the current count; every pair always has an entry at or above its count.
static long next_best_pair(MergeState *st) {
    while (st->heap_len > 0) {
        HeapEntry e = heap_pop(st);
        PairStat *ps = &st->pairs[e.pair];
        if (ps->count <= 0) continue;
        if (e.count == ps->count) return e.pair;
        if (e.count > ps->count && heap_push(st, e.pair) != 0) return -2;
    }
    return -1;
}

// Replaces every (left, right) in word w by id, updating pair counts.
static int merge_in_word(MergeState *st, uint32_t w, uint32_t left, uint32_t right, uint32_t id) {
    uint32_t *sym = st->symbols + st->word_start[w];
    uint32_t n = st->word_len[w];
    int64_t count = st->word_count[w];
    int found = 0;
    for (uint32_t i = 0; i + 1 < n && !found; i++) found = sym[i] == left && sym[i + 1] == right;
    if (!found) return 0; // a stale entry in the pair's word list
    for (uint32_t i = 0; i + 1 < n; i++)
        if (pair_change(st, sym[i], sym[i + 1], -count, w, 0) != 0) return -1;
    uint32_t out = 0;
    for (uint32_t i = 0; i < n; out++) {
        if (i + 1 < n && sym[i] == left && sym[i + 1] == right) {
            sym[out] = id;
            i += 2;
        } else {
            sym[out] = sym[i++];
        }
    }
    st->word_len[w] = n = out;
    for (uint32_t i = 0; i + 1 < n; i++)
        if (pair_change(st, sym[i], sym[i + 1], count, w, sym[i] == id || sym[i + 1] == id) != 0)
            return -1;
    return 0;
}

static int apply_merge(MergeState *st, uint32_t pair, uint32_t id) {
    uint32_t left = st->pairs[pair].left, right = st->pairs[pair].right;
    // The pair can never occur again (its parts only disappear from here on),
    // so its word list is taken over and freed.
    uint32_t *words = st->pairs[pair].words, n_words = st->pairs[pair].n_words;
    st->pairs[pair].words = NULL;
    st->pairs[pair].n_words = st->pairs[pair].cap_words = 0;
    int rc = 0;
    for (uint32_t k = 0; rc == 0 && k < n_words; k++) {
        uint32_t w = words[k];
        if (st->word_seen[w] == st->step + 1) continue;
        st->word_seen[w] = st->step + 1;
        rc = merge_in_word(st, w, left, right, id);
    }
    free(words);
    for (size_t k = 0; rc == 0 && k < st->n_touched; k++) {
        PairStat *ps = &st->pairs[st->touched[k]];
        if (ps->count > ps->pushed) rc = heap_push(st, st->touched[k]);
    }
    st->n_touched = 0;
    return rc;
}

int bpe_trainer_train(BpeTrainer *t, Tokenizer **tok, Error *err) {
    *tok = NULL;
    if (t->n_pretokens == 0) return error_set(err, "empty corpus: there is no text to train on");
    int wanted = t->cfg.vocab_size - TOK_FIRST_MERGE;
    uint32_t *merges = malloc(2 * ((size_t)wanted + 1) * sizeof *merges);
    MergeState st;
    int rc = merges && merge_state_init(&st, t) == 0 ? 0 : -1;
    int n_merges = 0;
    while (rc == 0 && n_merges < wanted) {
        st.step = (uint32_t)n_merges;
        long best = next_best_pair(&st);
        if (best == -2) rc = -1;
        if (best < 0 || st.pairs[best].count < t->cfg.min_frequency) break;
        merges[2 * n_merges] = st.pairs[best].left;
        merges[2 * n_merges + 1] = st.pairs[best].right;
        rc = apply_merge(&st, (uint32_t)best, (uint32_t)(TOK_FIRST_MERGE + n_merges));
        n_merges++;
    }
    if (merges) merge_state_free(&st);
    if (rc == 0) rc = tokenizer_from_merges(tok, merges, n_merges, err);
    else error_set(err, "out of memory while training");
    free(merges);
    return rc;
}
