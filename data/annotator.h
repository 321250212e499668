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

// Weights of the parts in the gold score (docs/annotator.md explains them):
//   gold = W_VALENCE * valence + W_TOPIC * topic
//        - W_LENGTH * (1 - length) - W_REPETITION * repetition
//        - W_NOT_ENDED * (1 - ended)
#define ANNOTATOR_W_VALENCE 1.0
#define ANNOTATOR_W_TOPIC 1.0
#define ANNOTATOR_W_LENGTH 0.5
#define ANNOTATOR_W_REPETITION 2.0
#define ANNOTATOR_W_NOT_ENDED 0.5

// valence = tanh(mean AFINN score per word / ANNOTATOR_VALENCE_SCALE).
#define ANNOTATOR_VALENCE_SCALE 0.25
// Full length credit from MIN to MAX words; linear to 0 at 0 words and at
// ANNOTATOR_LENGTH_ZERO words.
#define ANNOTATOR_LENGTH_MIN 8
#define ANNOTATOR_LENGTH_MAX 40
#define ANNOTATOR_LENGTH_ZERO 80

typedef struct Annotator Annotator;

// The score and its parts, for inspection and tests.
typedef struct {
    int category;        // the category scored against; -1: none (topic is 0)
    size_t n_words;      // words of the response (see data/words.h)
    double valence_mean; // sum of AFINN scores of matched words and phrases / n_words
    double valence;      // tanh(valence_mean / ANNOTATOR_VALENCE_SCALE), in (-1, 1)
    double topic_raw;    // sum of the weights of the distinct category keywords present
    double topic;        // 1 - exp(-topic_raw), in [0, 1)
    double length;       // length credit in [0, 1]
    double repetition;   // fraction of word bigrams that repeat an earlier one, in [0, 1)
    int ended;           // 1 if the response ended with the end token
    double gold;
} AnnotatorParts;

// Loads data_dir/afinn165.tsv and data_dir/keywords.tsv.
int annotator_load(Annotator **a, const char *data_dir, Error *err);
// The same from explicit paths. Malformed lines are errors naming file:line.
int annotator_load_files(Annotator **a, const char *afinn_path, const char *keywords_path,
                         Error *err);
void annotator_free(Annotator *a);

// Categories are the indices of the topic table in data/topics.h.
size_t annotator_category_count(const Annotator *a);
const char *annotator_category_name(const Annotator *a, int category);
// Index of a category name ("linuxcookie"), or -1.
int annotator_category_index(const Annotator *a, const char *name);
// Number of keywords loaded for a category.
size_t annotator_keyword_count(const Annotator *a, int category);
// AFINN score of a word or phrase ("not good"), or 0 with *found = 0.
int annotator_lexicon_score(const Annotator *a, const char *word_or_phrase, int *found);

// The category a prompt asks about, from its text alone: the topic phrase of
// data/topics.c (matched case-insensitively, as whole words) that starts
// furthest to the right, the longest one if several start there ("Linux
// hackers" over "Linux"). Every prompt phrasing names its topic last, after
// any other word that could be a topic ("Any words of wisdom on art?" is
// about art). -1 if the prompt names no topic.
int annotator_category_of_prompt(const Annotator *a, const char *prompt);

// The gold score of response to prompt, the category derived from the
// prompt. ended: whether the response ended with the end token. parts may be
// NULL.
double annotator_gold(const Annotator *a, const char *prompt, const char *response, int ended,
                      AnnotatorParts *parts);
// The same with the category given (-1: none), for callers that know it.
double annotator_gold_category(const Annotator *a, int category, const char *response, int ended,
                               AnnotatorParts *parts);

#endif
