// The simulated annotator: a documented, deterministic gold score for a
// (prompt, response) pair that stands in for human preferences. It prefers
// responses that are upbeat (AFINN-165 word valence), on topic for the
// prompt's category (keywords derived from the corpus), of a reasonable
// length, not repetitive, and that end. docs/annotator.md gives the formula,
// the reasons for each part and worked examples.
//
// Only prefs (which labels pairs) and evaluation read the gold score; the
// reward model and PPO never see it.
#ifndef DATA_ANNOTATOR_H
#define DATA_ANNOTATOR_H

#include <stddef.h>

#include "common/error.h"
#include "data/fluency.h"

// Weights of the parts in the gold score (docs/annotator.md explains them):
//   gold = W_VALENCE * valence + W_TOPIC * topic - W_FLUENCY * (1 - fluency)
//        - W_LENGTH * (1 - length) - W_REPETITION * repetition
//        - W_NOT_ENDED * (1 - ended)
#define ANNOTATOR_W_VALENCE 1.0
#define ANNOTATOR_W_TOPIC 1.0
#define ANNOTATOR_W_FLUENCY 2.0
#define ANNOTATOR_W_LENGTH 0.5
#define ANNOTATOR_W_REPETITION 2.0
#define ANNOTATOR_W_NOT_ENDED 0.5

// A word's context in [0, 1): 0 unless it or a word beside it is a function
// word (data/words.h); else sigmoid(mean log-ratio, trigram against unigram
// model, of the trigram predictions it takes part in / CONTEXT_SCALE).
// Sentiment, keywords and length count words by their context, so words
// strung together without grammar earn nothing.
#define ANNOTATOR_CONTEXT_SCALE 0.5
// valence = tanh(sum of context-weighted AFINN scores / words / VALENCE_SCALE).
#define ANNOTATOR_VALENCE_SCALE 0.15
// A sentiment word up to NEGATION_WINDOW words after a negator ("not",
// "never", "don't", ...) in the same clause counts NEGATION_SCALE times its
// score, as in VADER (Hutto & Gilbert, 2014): "not happy" is negative.
#define ANNOTATOR_NEGATION_WINDOW 3
#define ANNOTATOR_NEGATION_SCALE (-0.74)
// fluency = sigmoid(SLOR / SLOR_SCALE) * (FLOOR + (1 - FLOOR) * share of the
// words in context), SLOR the mean log-ratio of the trigram to the unigram
// model over the response's words and its end.
#define ANNOTATOR_SLOR_SCALE 0.25
#define ANNOTATOR_FLUENCY_FLOOR 0.25
// Full length credit from MIN to MAX words in context; linear to 0 at 0 and
// at LENGTH_ZERO.
#define ANNOTATOR_LENGTH_MIN 8
#define ANNOTATOR_LENGTH_MAX 40
#define ANNOTATOR_LENGTH_ZERO 80

typedef struct Annotator Annotator;

// The score and its parts, for inspection and tests.
typedef struct {
    int category;        // the category scored against; -1: none (topic is 0)
    size_t n_words;      // words of the response (see data/words.h)
    double context_words; // sum of the words' context weights: the words used in sentences
    double valence_mean; // sum of context-weighted AFINN scores of the words / n_words
    double valence;      // tanh(valence_mean / ANNOTATOR_VALENCE_SCALE), in (-1, 1)
    double topic_raw;    // sum over distinct category keywords of weight x best context
    double topic;        // 1 - exp(-topic_raw), in [0, 1)
    double length;       // length credit of context_words, in [0, 1]
    double repetition;   // fraction of word bigrams that repeat an earlier one, in [0, 1)
    double slor;         // mean log-ratio, trigram against unigram model, per word and end
    size_t unseen_words; // words never seen in the corpus' train split
    double fluency;      // in [0, 1): see ANNOTATOR_SLOR_SCALE
    int ended;           // 1 if the response ended with the end token
    double gold;
} AnnotatorParts;

// One word of a response as the gold score sees it.
typedef struct {
    const char *word;  // lowercase (data/words.h)
    double valence;    // its AFINN score (a phrase's shared among its words), negation applied
    double keyword;    // its weight as a keyword of the category, 0 if none
    double ratio;      // log P_trigram(word | two before) - log P_unigram(word)
    int beside_function_word; // it or a neighbour is a function word
    double context;    // context weight in [0, 1) (ANNOTATOR_CONTEXT_SCALE)
} AnnotatorWord;

// Loads data_dir/afinn165.tsv and data_dir/keywords.tsv, and trains the
// fluency model on the train split of data_dir/fortunes.jsonl.
int annotator_load(Annotator **a, const char *data_dir, Error *err);
// The same from explicit paths. Malformed lines are errors naming file:line.
int annotator_load_files(Annotator **a, const char *afinn_path, const char *keywords_path,
                         const char *fortunes_path, Error *err);
void annotator_free(Annotator *a);

// The fluency model the annotator trained on load.
const FluencyModel *annotator_fluency(const Annotator *a);

// Categories are the indices of the topic table in data/topics.h.
size_t annotator_category_count(const Annotator *a);
const char *annotator_category_name(const Annotator *a, int category);
// Index of a category name ("linuxcookie"), or -1.
int annotator_category_index(const Annotator *a, const char *name);
// Number of keywords loaded for a category.
size_t annotator_keyword_count(const Annotator *a, int category);
// AFINN score of a word or phrase ("not good"), or 0 with *found = 0.
int annotator_lexicon_score(const Annotator *a, const char *word_or_phrase, int *found);

// 1 if word (lowercase, as data/words.h splits it) is a negator.
int annotator_is_negator(const char *word);

// The category a prompt asks about, from its text alone: the topic phrase of
// data/topics.c (matched case-insensitively, as whole words) that starts
// furthest to the right, the longest one if several start there ("Linux
// hackers" over "Linux"). Every prompt phrasing names its topic last, after
// any other word that could be a topic ("Any words of wisdom on art?" is
// about art). -1 if the prompt names no topic.
int annotator_category_of_prompt(const Annotator *a, const char *prompt);

// The words of a response with what each contributes (category -1: no
// keywords). *words is one malloc'ed block (free(*words)); stats gets the
// fluency model's figures. 0, or -1 when out of memory.
int annotator_words(const Annotator *a, int category, const char *response, AnnotatorWord **words,
                    size_t *n_words, FluencyStats *stats);

// The gold score of response to prompt, the category derived from the
// prompt. ended: whether the response ended with the end token. parts may be
// NULL.
double annotator_gold(const Annotator *a, const char *prompt, const char *response, int ended,
                      AnnotatorParts *parts);
// The same with the category given (-1: none), for callers that know it.
double annotator_gold_category(const Annotator *a, int category, const char *response, int ended,
                               AnnotatorParts *parts);

#endif
