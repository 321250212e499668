#include "data/fluency.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonl.h"

// Token ids of the n-gram model: the start and end of a text, the shared id
// of rare and unseen words, then the words seen FLUENCY_MIN_COUNT times or more.
enum { TOK_START, TOK_END, TOK_RARE, TOK_FIRST_WORD };
// Ids are packed three to a 64-bit key, 21 bits each.
#define ID_BITS 21
#define MAX_IDS ((size_t)1 << ID_BITS)

// Open-addressing map from packed n-gram keys to a slot index, with two
// counters per slot whose meaning depends on the table.
typedef struct {
    uint64_t *keys; // key + 1 (0: empty slot)
    double *a, *b;  // the counters
    size_t n, cap;  // cap a power of two, never more than half full
} NgramTable;

struct FluencyModel {
    WordTable words;       // every training word, in order of first sight
    size_t *word_count;    // occurrences of word i
    uint32_t *word_id;     // n-gram id of word i (TOK_RARE for rare words)
    size_t n_ids;          // ids in use, TOK_START included
    NgramTable trigram;    // (u,v,w) -> a: count
    NgramTable history2;   // (u,v) -> a: count of (u,v,*), b: distinct w after (u,v)
    NgramTable bigram;     // (v,w) -> a: distinct u before (v,w) (continuation count)
    NgramTable history1;   // v -> a: sum over w of continuation counts of (v,w), b: distinct w
    double *continuation;  // per id: distinct v before w (its unigram continuation count)
    double bigram_types;   // sum of continuation[]
    double *unigram;       // per id: occurrences as a predicted token (end included)
    double n_predicted;    // sum of unigram[]
    double d3, d2;         // absolute discounts of the trigram and bigram levels
};

static uint64_t pack(uint32_t u, uint32_t v, uint32_t w) {
    return ((uint64_t)u << (2 * ID_BITS)) | ((uint64_t)v << ID_BITS) | w;
}

static size_t slot_of(const NgramTable *t, uint64_t key) {
    uint64_t h = (key + 1) * 0x9E3779B97F4A7C15ull;
    size_t mask = t->cap - 1, i = (size_t)(h >> 17) & mask;
    while (t->keys[i] && t->keys[i] != key + 1) i = (i + 1) & mask;
    return i;
}

// Slot of key, or (size_t)-1 if absent.
static size_t table_find(const NgramTable *t, uint64_t key) {
    if (!t->cap) return (size_t)-1;
    size_t i = slot_of(t, key);
    return t->keys[i] ? i : (size_t)-1;
}

static int table_grow(NgramTable *t) {
    size_t cap = t->cap ? 2 * t->cap : 1024;
    uint64_t *keys = calloc(cap, sizeof *keys);
    double *a = calloc(cap, sizeof *a), *b = calloc(cap, sizeof *b);
    if (!keys || !a || !b) {
        free(keys), free(a), free(b);
        return -1;
    }
    NgramTable grown = {keys, a, b, t->n, cap};
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->keys[i]) continue;
        size_t j = slot_of(&grown, t->keys[i] - 1);
        grown.keys[j] = t->keys[i], grown.a[j] = t->a[i], grown.b[j] = t->b[i];
    }
    free(t->keys), free(t->a), free(t->b);
    *t = grown;
    return 0;
}

// Slot of key, inserted with zero counters when absent; (size_t)-1 when out of memory.
static size_t table_add(NgramTable *t, uint64_t key, int *added) {
    *added = 0;
    if (2 * (t->n + 1) > t->cap && table_grow(t)) return (size_t)-1;
    size_t i = slot_of(t, key);
    if (!t->keys[i]) {
        t->keys[i] = key + 1;
        t->n++;
        *added = 1;
    }
    return i;
}

static void table_free(NgramTable *t) {
    free(t->keys), free(t->a), free(t->b);
    memset(t, 0, sizeof *t);
}

void fluency_model_free(FluencyModel *m) {
    if (!m) return;
    word_table_free(&m->words);
    free(m->word_count), free(m->word_id), free(m->continuation), free(m->unigram);
    table_free(&m->trigram), table_free(&m->history2), table_free(&m->bigram);
    table_free(&m->history1);
    free(m);
}

// ---------------------------------------------------------------- training

// Counts every word of every text, then gives ids to the frequent ones.
static int assign_ids(FluencyModel *m, const char *const *texts, size_t n) {
    size_t cap = 0;
    for (size_t t = 0; t < n; t++) {
        WordList w;
        if (words_split(texts[t], &w)) return -1;
        for (size_t i = 0; i < w.n; i++) {
            long id = word_table_add(&m->words, w.words[i], NULL);
            if (id >= 0 && (size_t)id >= cap) {
                size_t grown_cap = cap ? 2 * cap : 4096;
                size_t *grown = realloc(m->word_count, grown_cap * sizeof *grown);
                if (grown) {
                    memset(grown + cap, 0, (grown_cap - cap) * sizeof *grown);
                    m->word_count = grown, cap = grown_cap;
                }
            }
            if (id < 0 || (size_t)id >= cap) {
                words_free(&w);
                return -1;
            }
            m->word_count[id]++;
        }
        words_free(&w);
    }
    m->word_id = malloc((m->words.n + 1) * sizeof *m->word_id);
    if (!m->word_id) return -1;
    m->n_ids = TOK_FIRST_WORD;
    for (size_t i = 0; i < m->words.n; i++)
        m->word_id[i] = m->word_count[i] >= FLUENCY_MIN_COUNT && m->n_ids < MAX_IDS
                            ? (uint32_t)m->n_ids++
                            : TOK_RARE;
    return 0;
}

// The id of a word for the n-gram model.
static uint32_t id_of(const FluencyModel *m, const char *word, int *seen) {
    long i = word_table_find(&m->words, word);
    if (seen) *seen = i >= 0;
    return i >= 0 ? m->word_id[i] : TOK_RARE;
}

// A text as ids: start, start, words..., end. *ids malloc'ed, *n its length.
static int text_ids(const FluencyModel *m, const WordList *w, uint32_t **ids, size_t *n,
                    size_t *n_unseen) {
    *n = w->n + 3;
    *ids = malloc(*n * sizeof **ids);
    if (!*ids) return -1;
    (*ids)[0] = (*ids)[1] = TOK_START;
    size_t unseen = 0;
    for (size_t i = 0; i < w->n; i++) {
        int seen;
        (*ids)[i + 2] = id_of(m, w->words[i], &seen);
        unseen += !seen;
    }
    (*ids)[*n - 1] = TOK_END;
    if (n_unseen) *n_unseen = unseen;
    return 0;
}

static int count_trigrams(FluencyModel *m, const char *const *texts, size_t n) {
    for (size_t t = 0; t < n; t++) {
        WordList w;
        uint32_t *ids;
        size_t n_ids;
        if (words_split(texts[t], &w)) return -1;
        int rc = text_ids(m, &w, &ids, &n_ids, NULL);
        words_free(&w);
        if (rc) return -1;
        for (size_t i = 2; rc == 0 && i < n_ids; i++) {
            int added;
            size_t s = table_add(&m->trigram, pack(ids[i - 2], ids[i - 1], ids[i]), &added);
            if (s == (size_t)-1) rc = -1;
            else m->trigram.a[s]++, m->unigram[ids[i]]++, m->n_predicted++;
        }
        free(ids);
        if (rc) return -1;
    }
    return 0;
}

// Kneser-Ney's lower orders count contexts, not occurrences: the bigram (v,w)
// counts the distinct u seen before it, the unigram w the distinct v.
static int derive_lower_orders(FluencyModel *m) {
    const uint64_t mask = MAX_IDS - 1;
    for (size_t i = 0; i < m->trigram.cap; i++) {
        if (!m->trigram.keys[i]) continue;
        uint64_t k = m->trigram.keys[i] - 1;
        int added;
        size_t h = table_add(&m->history2, k >> ID_BITS, &added);
        size_t b = h == (size_t)-1 ? h : table_add(&m->bigram, k & ((mask << ID_BITS) | mask), &added);
        if (b == (size_t)-1) return -1;
        m->history2.a[h] += m->trigram.a[i];
        m->history2.b[h]++;
        m->bigram.a[b]++;
    }
    for (size_t i = 0; i < m->bigram.cap; i++) {
        if (!m->bigram.keys[i]) continue;
        uint64_t k = m->bigram.keys[i] - 1;
        int added;
        size_t h = table_add(&m->history1, k >> ID_BITS, &added);
        if (h == (size_t)-1) return -1;
        m->history1.a[h] += m->bigram.a[i];
        m->history1.b[h]++;
        m->continuation[k & mask]++;
        m->bigram_types++;
    }
    return 0;
}

// Chen & Goodman's discount n1 / (n1 + 2 n2), from how many counts are 1 and 2.
static double discount(const NgramTable *t) {
    double n1 = 0, n2 = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->keys[i]) n1 += t->a[i] == 1, n2 += t->a[i] == 2;
    return n1 + n2 > 0 ? n1 / (n1 + 2 * n2) : 0.5;
}

int fluency_model_build(FluencyModel **out, const char *const *texts, size_t n, Error *err) {
    *out = NULL;
    FluencyModel *m = calloc(1, sizeof *m);
    if (!m) return error_set(err, "out of memory");
    word_table_init(&m->words);
    int rc = assign_ids(m, texts, n);
    if (rc == 0) {
        m->continuation = calloc(m->n_ids, sizeof *m->continuation);
        m->unigram = calloc(m->n_ids, sizeof *m->unigram);
        rc = m->continuation && m->unigram ? 0 : -1;
    }
    if (rc == 0) rc = count_trigrams(m, texts, n);
    if (rc == 0) rc = derive_lower_orders(m);
    if (rc) {
        fluency_model_free(m);
        return error_set(err, "out of memory");
    }
    m->d3 = discount(&m->trigram);
    m->d2 = discount(&m->bigram);
    *out = m;
    return 0;
}

int fluency_model_load(FluencyModel **out, const char *path, Error *err) {
    *out = NULL;
    JsonlReader r;
    if (jsonl_open(&r, path, err)) return -1;
    char **texts = NULL;
    size_t n = 0, cap = 0;
    cJSON *o;
    int rc;
    while ((rc = jsonl_next(&r, &o, err)) == 1) {
        const char *text = jsonl_string(&r, o, "text", err);
        const char *split = text ? jsonl_string(&r, o, "split", err) : NULL;
        rc = split ? 0 : -1;
        if (rc == 0 && strcmp(split, "train") && strcmp(split, "val"))
            rc = error_set(err, "%s:%ld: split \"%s\" is neither \"train\" nor \"val\"", path, r.line,
                           split);
        if (rc == 0 && !strcmp(split, "train")) {
            if (n == cap) {
                size_t grown_cap = cap ? 2 * cap : 1024;
                char **grown = realloc(texts, grown_cap * sizeof *grown);
                if (grown) texts = grown, cap = grown_cap;
            }
            char *copy = n < cap ? strdup(text) : NULL;
            if (copy) texts[n++] = copy;
            else rc = error_set(err, "out of memory");
        }
        cJSON_Delete(o);
        if (rc) break;
    }
    jsonl_close(&r);
    if (rc == 0 && n == 0) rc = error_set(err, "%s: no \"split\":\"train\" texts to train the fluency model on", path);
    if (rc == 0) rc = fluency_model_build(out, (const char *const *)texts, n, err);
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    return rc;
}

// ---------------------------------------------------------------- scoring

// Interpolated Kneser-Ney, lowest order first: add-one on the continuation
// counts, so that every id, the rare-word id included, has some probability.
static double prob_unigram_level(const FluencyModel *m, uint32_t w) {
    return (m->continuation[w] + 1) / (m->bigram_types + (double)(m->n_ids - 1));
}

static double prob_bigram_level(const FluencyModel *m, uint32_t v, uint32_t w) {
    double lower = prob_unigram_level(m, w);
    size_t h = table_find(&m->history1, v);
    if (h == (size_t)-1) return lower;
    size_t b = table_find(&m->bigram, pack(0, v, w));
    double c = b == (size_t)-1 ? 0 : m->bigram.a[b];
    double total = m->history1.a[h], types = m->history1.b[h];
    return (fmax(c - m->d2, 0) + m->d2 * types * lower) / total;
}

static double prob_trigram(const FluencyModel *m, uint32_t u, uint32_t v, uint32_t w) {
    double lower = prob_bigram_level(m, v, w);
    size_t h = table_find(&m->history2, pack(0, u, v));
    if (h == (size_t)-1) return lower;
    size_t t = table_find(&m->trigram, pack(u, v, w));
    double c = t == (size_t)-1 ? 0 : m->trigram.a[t];
    double total = m->history2.a[h], types = m->history2.b[h];
    return (fmax(c - m->d3, 0) + m->d3 * types * lower) / total;
}

// Word frequencies alone; a rare or unseen word gets the rare-word id's share.
static double prob_unigram(const FluencyModel *m, uint32_t w) {
    return (m->unigram[w] + 1) / (m->n_predicted + (double)(m->n_ids - 1));
}

void fluency_stats(const FluencyModel *m, const WordList *w, FluencyStats *s) {
    fluency_word_ratios(m, w, s, NULL);
}

void fluency_word_ratios(const FluencyModel *m, const WordList *w, FluencyStats *s, double *ratio) {
    memset(s, 0, sizeof *s);
    uint32_t *ids;
    size_t n;
    if (text_ids(m, w, &ids, &n, &s->n_unseen)) {
        s->logp_trigram = s->logp_unigram = NAN; // out of memory: no figure rather than a wrong one
        return;
    }
    for (size_t i = 2; i < n; i++) {
        double lt = log(prob_trigram(m, ids[i - 2], ids[i - 1], ids[i]));
        double lu = log(prob_unigram(m, ids[i]));
        s->logp_trigram += lt;
        s->logp_unigram += lu;
        if (ratio) ratio[i - 2] = lt - lu;
    }
    s->n_predicted = n - 2;
    free(ids);
}

size_t fluency_vocab_size(const FluencyModel *m) { return m->words.n; }
size_t fluency_trigram_count(const FluencyModel *m) { return m->trigram.n; }

size_t fluency_word_count(const FluencyModel *m, const char *word) {
    long i = word_table_find(&m->words, word);
    return i >= 0 ? m->word_count[i] : 0;
}

double fluency_trigram_prob(const FluencyModel *m, const char *u, const char *v, const char *word) {
    uint32_t iu = u ? id_of(m, u, NULL) : TOK_START, iv = v ? id_of(m, v, NULL) : TOK_START;
    return prob_trigram(m, iu, iv, word ? id_of(m, word, NULL) : TOK_END);
}
