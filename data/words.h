// The words the annotator scores and derive_keywords counts: both must split
// text the same way, or keywords would be derived for words the scorer never
// sees.
#ifndef DATA_WORDS_H
#define DATA_WORDS_H

#include <stddef.h>

// A text split into words: runs of ASCII letters and apostrophes, lowercased.
// The typographic apostrophe U+2019 counts as "'", so "don’t" and "don't"
// are one word; apostrophes at either end of a word are dropped (quotes:
// 'hello' -> hello). Everything else, digits, hyphens and non-ASCII letters
// included, separates words.
typedef struct {
    char **words;  // n pointers into text
    unsigned char *new_clause; // 1 where clause punctuation (.,;:!?()") precedes word i
    size_t n;
    char *text;    // the words, NUL-separated
} WordList;

// Returns 0, or -1 when out of memory. Free with words_free.
int words_split(const char *text, WordList *out);
void words_free(WordList *w);

// 1 if w (lowercase) is one of the function words ("the", "of", "you",
// "will", ... 205 of them) that derive_keywords leaves out and the annotator
// looks for next to a word that should count as part of a sentence.
int word_is_stopword(const char *w);

// Open-addressing table from words (or any NUL-terminated keys) to indices
// 0, 1, 2, ... in insertion order, for lookups in the lexicon, the keyword
// table and derive_keywords' counts.
typedef struct {
    char **keys;     // insertion order; owned
    size_t n, cap_keys;
    size_t *slots;   // index + 1 of the key in each slot; 0 = empty
    size_t n_slots;  // a power of two, never more than half full
} WordTable;

void word_table_init(WordTable *t);
void word_table_free(WordTable *t);
// Index of key, or -1 if absent.
long word_table_find(const WordTable *t, const char *key);
// Index of key, inserting a copy when absent (*added set to 1 then; may be
// NULL). -1 when out of memory.
long word_table_add(WordTable *t, const char *key, int *added);

#endif
