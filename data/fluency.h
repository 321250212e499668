// The annotator's fluency model: a word trigram language model with
// interpolated Kneser-Ney smoothing (Chen & Goodman, 1998), trained on the
// train split of the fortune corpus when the annotator loads, and a unigram
// model of the same words. The annotator turns the two into SLOR (Lau, Clark &
// Lappin, 2017): how much better the trigram model predicts a response than
// the words' own frequencies do, per word. Word order and collocations raise
// it; rare words do not lower it, so a plain fortune with an unusual name
// is not punished for the name, while shuffled words, strings of keywords and
// runs of upbeat words score near or below zero. docs/annotator.md explains
// the choice.
#ifndef DATA_FLUENCY_H
#define DATA_FLUENCY_H

#include <stddef.h>

#include "common/error.h"
#include "data/words.h"

// Words seen fewer times than this in training share the unknown-word token:
// it gives the model statistics for rare words (names, jargon) in context.
#define FLUENCY_MIN_COUNT 2

typedef struct FluencyModel FluencyModel;

// Trains on n texts (split into words as data/words.h does). 0 or -1 (out of memory).
int fluency_model_build(FluencyModel **m, const char *const *texts, size_t n, Error *err);
// Trains on the "text" of every "split":"train" record of a corpus file of
// {"text", "category", "split"} lines (data/fortunes.jsonl). A malformed line
// is an error naming file:line; a file without train records is an error.
int fluency_model_load(FluencyModel **m, const char *fortunes_path, Error *err);
void fluency_model_free(FluencyModel *m);

// Figures of one word sequence, its end included as a predicted token.
typedef struct {
    size_t n_predicted;  // words + 1 (the end of the text)
    size_t n_unseen;     // words never seen in training
    double logp_trigram; // natural log of P(words, end) under the Kneser-Ney trigram model
    double logp_unigram; // the same under the unigram model (word frequencies alone)
} FluencyStats;

void fluency_stats(const FluencyModel *m, const WordList *w, FluencyStats *s);
// The same, and ratio[i] = log P_trigram(word i | the two before) - log
// P_unigram(word i) for each word and, at ratio[w->n], the end (w->n + 1 values).
void fluency_word_ratios(const FluencyModel *m, const WordList *w, FluencyStats *s, double *ratio);

// Sizes of the trained model, for tests and docs.
size_t fluency_vocab_size(const FluencyModel *m);    // distinct training words
size_t fluency_trigram_count(const FluencyModel *m); // distinct trigrams
// Occurrences of a word (lowercase) in the training texts.
size_t fluency_word_count(const FluencyModel *m, const char *word);
// P(word | u v) under the trigram model, for tests (u, v: words or NULL for
// the start of the text; word NULL: the end of the text).
double fluency_trigram_prob(const FluencyModel *m, const char *u, const char *v, const char *word);

#endif
