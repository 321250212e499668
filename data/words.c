#include "data/words.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int is_letter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Length of an apostrophe at s: 1 for "'", 3 for U+2019 in UTF-8, else 0.
static size_t apostrophe_len(const unsigned char *s) {
    if (s[0] == '\'') return 1;
    if (s[0] == 0xE2 && s[1] == 0x80 && s[2] == 0x99) return 3;
    return 0;
}

// Punctuation that ends a clause, for the scope of a negation.
static int is_clause_mark(unsigned char c) { return c && strchr(".,;:!?()\"", c) != NULL; }

// Copies the next word of s (from *pos) into out as lowercase letters and
// "'"; returns its length (0 at the end of s). Edge apostrophes are trimmed.
// *clause is set to 1 when clause punctuation precedes the word.
static size_t next_word(const unsigned char *s, size_t *pos, char *out, unsigned char *clause) {
    *clause = 0;
    for (;;) {
        size_t i = *pos, len = 0;
        while (s[i] && !is_letter(s[i]) && !apostrophe_len(s + i)) *clause |= is_clause_mark(s[i++]);
        if (!s[i]) {
            *pos = i;
            return 0;
        }
        for (;;) {
            size_t a = apostrophe_len(s + i);
            if (is_letter(s[i])) {
                out[len++] = (char)(s[i] | 0x20); // ASCII lowercase
                i++;
            } else if (a) {
                out[len++] = '\'';
                i += a;
            } else {
                break;
            }
        }
        *pos = i;
        size_t start = 0;
        while (start < len && out[start] == '\'') start++;
        while (len > start && out[len - 1] == '\'') len--;
        if (len > start) {
            memmove(out, out + start, len - start);
            out[len - start] = '\0';
            return len - start;
        }
        // only apostrophes: not a word, keep looking
    }
}

int words_split(const char *text, WordList *out) {
    memset(out, 0, sizeof *out);
    size_t len = strlen(text);
    // Each word takes at most its bytes plus a NUL, and is at least one byte
    // with a separator after it, so len + 1 bytes and len / 2 + 1 pointers do.
    out->text = malloc(len + 1);
    out->words = malloc((len / 2 + 1) * sizeof *out->words);
    out->new_clause = malloc(len / 2 + 1);
    if (!out->text || !out->words || !out->new_clause) {
        words_free(out);
        return -1;
    }
    size_t pos = 0, used = 0, n;
    unsigned char clause;
    while ((n = next_word((const unsigned char *)text, &pos, out->text + used, &clause)) > 0) {
        out->new_clause[out->n] = clause;
        out->words[out->n++] = out->text + used;
        used += n + 1;
    }
    return 0;
}

void words_free(WordList *w) {
    free(w->words);
    free(w->new_clause);
    free(w->text);
    memset(w, 0, sizeof *w);
}

// FNV-1a: keys are short words, and the table only needs an even spread.
static uint64_t hash_key(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void word_table_init(WordTable *t) { memset(t, 0, sizeof *t); }

void word_table_free(WordTable *t) {
    for (size_t i = 0; i < t->n; i++) free(t->keys[i]);
    free(t->keys);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

// Slot holding key, or the empty slot where it would go.
static size_t slot_for(const WordTable *t, const char *key) {
    size_t mask = t->n_slots - 1, i = (size_t)hash_key(key) & mask;
    while (t->slots[i] && strcmp(t->keys[t->slots[i] - 1], key) != 0) i = (i + 1) & mask;
    return i;
}

long word_table_find(const WordTable *t, const char *key) {
    if (!t->n_slots) return -1;
    size_t s = t->slots[slot_for(t, key)];
    return s ? (long)(s - 1) : -1;
}

static int grow(WordTable *t) {
    size_t n_slots = t->n_slots ? 2 * t->n_slots : 64;
    size_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots) return -1;
    free(t->slots);
    t->slots = slots;
    t->n_slots = n_slots;
    for (size_t k = 0; k < t->n; k++) t->slots[slot_for(t, t->keys[k])] = k + 1;
    return 0;
}

long word_table_add(WordTable *t, const char *key, int *added) {
    if (added) *added = 0;
    long found = word_table_find(t, key);
    if (found >= 0) return found;
    if (2 * (t->n + 1) > t->n_slots && grow(t)) return -1;
    if (t->n == t->cap_keys) {
        size_t cap = t->cap_keys ? 2 * t->cap_keys : 64;
        char **keys = realloc(t->keys, cap * sizeof *keys);
        if (!keys) return -1;
        t->keys = keys;
        t->cap_keys = cap;
    }
    char *copy = strdup(key);
    if (!copy) return -1;
    t->keys[t->n] = copy;
    t->slots[slot_for(t, key)] = t->n + 1;
    if (added) *added = 1;
    return (long)t->n++;
}

// English function words and fortune-file boilerplate: frequent everywhere,
// so they say nothing about a topic (derive_keywords leaves them out), and a
// word of a sentence is seldom far from one (the annotator's context).
static const char *const STOPWORDS[] = {
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any",
    "are", "aren't", "as", "at", "be", "because", "been", "before", "being", "below", "between",
    "both", "but", "by", "can", "can't", "cannot", "could", "couldn't", "did", "didn't", "do",
    "does", "doesn't", "doing", "don't", "down", "during", "each", "even", "ever", "every", "few",
    "for", "from", "further", "get", "gets", "got", "had", "hadn't", "has", "hasn't", "have",
    "haven't", "having", "he", "he'd", "he'll", "he's", "her", "here", "here's", "hers", "herself",
    "him", "himself", "his", "how", "how's", "i", "i'd", "i'll", "i'm", "i've", "if", "in", "into",
    "is", "isn't", "it", "it's", "its", "itself", "just", "let's", "like", "made", "make", "many",
    "may", "me", "might", "more", "most", "much", "must", "mustn't", "my", "myself", "never", "no",
    "nor", "not", "now", "of", "off", "on", "once", "one", "only", "or", "other", "ought", "our",
    "ours", "ourselves", "out", "over", "own", "really", "said", "same", "say", "says", "shall",
    "shan't", "she", "she'd", "she'll", "she's", "should", "shouldn't", "so", "some", "such",
    "than", "that", "that's", "the", "their", "theirs", "them", "themselves", "then", "there",
    "there's", "these", "they", "they'd", "they'll", "they're", "they've", "this", "those",
    "through", "to", "too", "two", "under", "until", "up", "upon", "us", "very", "was", "wasn't",
    "we", "we'd", "we'll", "we're", "we've", "well", "were", "weren't", "what", "what's", "when",
    "when's", "where", "where's", "which", "while", "who", "who's", "whom", "why", "why's", "will",
    "with", "won't", "would", "wouldn't", "yet", "you", "you'd", "you'll", "you're", "you've",
    "your", "yours", "yourself", "yourselves",
};

int word_is_stopword(const char *w) {
    for (size_t i = 0; i < sizeof STOPWORDS / sizeof STOPWORDS[0]; i++)
        if (!strcmp(STOPWORDS[i], w)) return 1;
    return 0;
}
