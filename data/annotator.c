#include "data/annotator.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/fileio.h"
#include "data/topics.h"
#include "data/words.h"

// Longest lexicon phrase, in words ("son-of-a-bitch" has four).
#define MAX_PHRASE_WORDS 4
// Larger files are not a lexicon or keyword table.
#define MAX_TABLE_BYTES ((size_t)64 << 20)

struct Annotator {
    WordTable lexicon;       // words and phrases ("not good"), words joined by one space
    double *valence;         // AFINN score of lexicon entry i
    size_t cap_valence;
    FluencyModel *fluency;   // trained on the corpus' train split
    WordTable keywords;      // "category<TAB>word"
    double *keyword_weight;  // weight of keyword entry i
    size_t cap_weight;
    size_t *keywords_per_category;
    size_t n_categories;
};

void annotator_free(Annotator *a) {
    if (!a) return;
    word_table_free(&a->lexicon);
    word_table_free(&a->keywords);
    fluency_model_free(a->fluency);
    free(a->valence);
    free(a->keyword_weight);
    free(a->keywords_per_category);
    free(a);
}

// ---------------------------------------------------------------- loading

// One line of a TSV file split at tabs (in place).
typedef struct {
    const char *path;
    long line;
    char *field[4];
    int n_fields;
} TsvLine;

// Calls on_line for every line that is neither empty nor a "#" comment.
static int for_each_tsv_line(const char *path, int (*on_line)(Annotator *, TsvLine *, Error *),
                             Annotator *a, Error *err) {
    unsigned char *data;
    size_t len;
    if (read_file(path, MAX_TABLE_BYTES, &data, &len, err)) return -1;
    if (memchr(data, '\0', len)) {
        free(data);
        return error_set(err, "%s: not a text file (holds a NUL byte)", path);
    }
    int rc = 0;
    TsvLine t = {.path = path};
    for (char *line = (char *)data, *next; rc == 0 && line && *line; line = next) {
        t.line++;
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r') line[--n] = '\0';
        if (n == 0 || line[0] == '#') continue;
        t.n_fields = 0;
        for (char *f = line; f && t.n_fields < 4; t.n_fields++) {
            t.field[t.n_fields] = f;
            f = strchr(f, '\t');
            if (f) *f++ = '\0';
        }
        rc = on_line(a, &t, err);
    }
    free(data);
    return rc;
}

// Makes room for index i in *v (capacity *cap), doubling.
static int reserve_doubles(double **v, size_t *cap, size_t i) {
    if (i < *cap) return 0;
    size_t n = *cap ? 2 * *cap : 1024;
    double *grown = realloc(*v, n * sizeof *grown);
    if (!grown) return -1;
    *v = grown;
    *cap = n;
    return 0;
}

// An AFINN entry as a lexicon key: lowercase words joined by one space
// ("Well-being" -> "well being"). Returns 0 for an entry that no text can
// match (digits, non-ASCII letters: "gr8", "naïve"), 1 otherwise.
static int lexicon_key(const char *entry, char *key, size_t cap) {
    for (const char *p = entry; *p; p++)
        if (!isalpha((unsigned char)*p) && *p != '\'' && *p != ' ' && *p != '-') return 0;
    WordList w;
    if (words_split(entry, &w)) return -1;
    int ok = w.n > 0 && w.n <= MAX_PHRASE_WORDS;
    key[0] = '\0';
    for (size_t i = 0; ok && i < w.n; i++) {
        if (i) strncat(key, " ", cap - strlen(key) - 1);
        strncat(key, w.words[i], cap - strlen(key) - 1);
    }
    words_free(&w);
    return ok;
}

static int on_afinn_line(Annotator *a, TsvLine *t, Error *err) {
    if (t->n_fields != 2)
        return error_set(err, "%s:%ld: expected word<TAB>score (2 fields), found %d", t->path,
                         t->line, t->n_fields);
    char *end;
    errno = 0;
    long score = strtol(t->field[1], &end, 10);
    if (end == t->field[1] || *end || errno || score < -5 || score > 5)
        return error_set(err, "%s:%ld: score '%s' is not an integer from -5 to 5", t->path,
                         t->line, t->field[1]);
    char key[256];
    int usable = strlen(t->field[0]) < sizeof key ? lexicon_key(t->field[0], key, sizeof key) : 0;
    if (usable < 0) return error_set(err, "out of memory");
    if (t->field[0][0] == '\0') return error_set(err, "%s:%ld: empty word", t->path, t->line);
    if (!usable) return 0; // cannot occur in split text; see docs/annotator.md
    int added;
    long id = word_table_add(&a->lexicon, key, &added);
    if (id < 0 || reserve_doubles(&a->valence, &a->cap_valence, (size_t)id))
        return error_set(err, "out of memory");
    if (!added) return error_set(err, "%s:%ld: '%s' is listed twice", t->path, t->line, t->field[0]);
    a->valence[id] = (double)score;
    return 0;
}

static int on_keyword_line(Annotator *a, TsvLine *t, Error *err) {
    if (t->n_fields != 3)
        return error_set(err, "%s:%ld: expected category<TAB>word<TAB>weight (3 fields), found %d",
                         t->path, t->line, t->n_fields);
    int category = annotator_category_index(a, t->field[0]);
    if (category < 0)
        return error_set(err, "%s:%ld: unknown category '%s'", t->path, t->line, t->field[0]);
    WordList w;
    if (words_split(t->field[1], &w)) return error_set(err, "out of memory");
    int one_word = w.n == 1 && !strcmp(w.words[0], t->field[1]);
    words_free(&w);
    if (!one_word)
        return error_set(err, "%s:%ld: keyword '%s' is not one lowercase word (letters and ')",
                         t->path, t->line, t->field[1]);
    char *end;
    double weight = strtod(t->field[2], &end);
    if (end == t->field[2] || *end || !(weight > 0 && weight <= 1))
        return error_set(err, "%s:%ld: weight '%s' is not a number in (0, 1]", t->path, t->line,
                         t->field[2]);
    char key[512];
    snprintf(key, sizeof key, "%s\t%s", t->field[0], t->field[1]);
    int added;
    long id = word_table_add(&a->keywords, key, &added);
    if (id < 0 || reserve_doubles(&a->keyword_weight, &a->cap_weight, (size_t)id))
        return error_set(err, "out of memory");
    if (!added)
        return error_set(err, "%s:%ld: '%s' is listed twice for %s", t->path, t->line,
                         t->field[1], t->field[0]);
    a->keyword_weight[id] = weight;
    a->keywords_per_category[category]++;
    return 0;
}

int annotator_load_files(Annotator **out, const char *afinn_path, const char *keywords_path,
                         const char *fortunes_path, Error *err) {
    *out = NULL;
    Annotator *a = calloc(1, sizeof *a);
    if (!a) return error_set(err, "out of memory");
    word_table_init(&a->lexicon);
    word_table_init(&a->keywords);
    a->n_categories = fortune_topic_count();
    a->keywords_per_category = calloc(a->n_categories, sizeof *a->keywords_per_category);
    int rc = a->keywords_per_category ? 0 : error_set(err, "out of memory");
    if (rc == 0) rc = for_each_tsv_line(afinn_path, on_afinn_line, a, err);
    if (rc == 0 && a->lexicon.n == 0) rc = error_set(err, "%s: no lexicon entries", afinn_path);
    if (rc == 0) rc = for_each_tsv_line(keywords_path, on_keyword_line, a, err);
    if (rc == 0 && a->keywords.n == 0) rc = error_set(err, "%s: no keywords", keywords_path);
    if (rc == 0) rc = fluency_model_load(&a->fluency, fortunes_path, err);
    if (rc) {
        annotator_free(a);
        return -1;
    }
    *out = a;
    return 0;
}

int annotator_load(Annotator **a, const char *data_dir, Error *err) {
    char afinn[4096], keywords[4096], fortunes[4096];
    if (path_join(afinn, sizeof afinn, data_dir, "afinn165.tsv", err) ||
        path_join(keywords, sizeof keywords, data_dir, "keywords.tsv", err) ||
        path_join(fortunes, sizeof fortunes, data_dir, "fortunes.jsonl", err))
        return -1;
    return annotator_load_files(a, afinn, keywords, fortunes, err);
}

// ---------------------------------------------------------------- lookups

size_t annotator_category_count(const Annotator *a) { return a->n_categories; }

const FluencyModel *annotator_fluency(const Annotator *a) { return a->fluency; }

const char *annotator_category_name(const Annotator *a, int category) {
    if (category < 0 || (size_t)category >= a->n_categories) return NULL;
    return fortune_topic_at((size_t)category)->category;
}

int annotator_category_index(const Annotator *a, const char *name) {
    for (size_t i = 0; i < a->n_categories; i++)
        if (!strcmp(fortune_topic_at(i)->category, name)) return (int)i;
    return -1;
}

size_t annotator_keyword_count(const Annotator *a, int category) {
    if (category < 0 || (size_t)category >= a->n_categories) return 0;
    return a->keywords_per_category[category];
}

int annotator_lexicon_score(const Annotator *a, const char *word_or_phrase, int *found) {
    long id = word_table_find(&a->lexicon, word_or_phrase);
    if (found) *found = id >= 0;
    return id >= 0 ? (int)a->valence[id] : 0;
}

static double keyword_weight(const Annotator *a, int category, const char *word, char *key,
                             size_t cap) {
    snprintf(key, cap, "%s\t%s", fortune_topic_at((size_t)category)->category, word);
    long id = word_table_find(&a->keywords, key);
    return id >= 0 ? a->keyword_weight[id] : 0;
}

static int is_word_char(char c) { return isalnum((unsigned char)c) || c == '\''; }

int annotator_category_of_prompt(const Annotator *a, const char *prompt) {
    int best = -1;
    size_t best_start = 0, best_len = 0, n = strlen(prompt);
    for (size_t k = 0; k < a->n_categories; k++) {
        const char *topic = fortune_topic_at(k)->topic;
        size_t len = strlen(topic);
        for (size_t s = 0; s + len <= n; s++) {
            if (strncasecmp(prompt + s, topic, len) != 0) continue;
            if ((s > 0 && is_word_char(prompt[s - 1])) || is_word_char(prompt[s + len])) continue;
            if (best < 0 || s > best_start || (s == best_start && len > best_len))
                best = (int)k, best_start = s, best_len = len;
        }
    }
    return best;
}

// ---------------------------------------------------------------- scoring

// Words that turn the sentiment of the next few words around ("not happy").
static const char *const NEGATORS[] = {
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "without",
    "cannot", "can't", "don't", "doesn't", "didn't", "isn't", "aren't", "wasn't", "weren't",
    "won't", "wouldn't", "shouldn't", "couldn't", "hasn't", "haven't", "hadn't", "ain't", "mustn't",
};

int annotator_is_negator(const char *word) {
    for (size_t i = 0; i < sizeof NEGATORS / sizeof NEGATORS[0]; i++)
        if (!strcmp(word, NEGATORS[i])) return 1;
    return 0;
}

// Adds each lexicon match's AFINN score to the words it covers, matching the
// longest phrase first at each position, so "not good" scores -2 rather than
// good's +3; a phrase's score is shared evenly among its words. A single word
// within ANNOTATOR_NEGATION_WINDOW words after a negator counts
// ANNOTATOR_NEGATION_SCALE times its score ("not happy": 3 * -0.74), unless
// clause punctuation comes between them ("not happy, I love it").
static void word_valences(const Annotator *a, const WordList *w, AnnotatorWord *out, char *key,
                          size_t cap) {
    size_t i = 0;
    long last_negator = -1;
    while (i < w->n) {
        size_t longest = w->n - i < MAX_PHRASE_WORDS ? w->n - i : MAX_PHRASE_WORDS, k;
        long id = -1;
        for (k = longest; k > 0; k--) {
            key[0] = '\0';
            for (size_t j = 0; j < k; j++) {
                if (j) strncat(key, " ", cap - strlen(key) - 1);
                strncat(key, w->words[i + j], cap - strlen(key) - 1);
            }
            if ((id = word_table_find(&a->lexicon, key)) >= 0) break;
        }
        size_t span = k ? k : 1; // the matched phrase, or one unmatched word
        for (size_t j = i; j < i + span; j++)
            if (w->new_clause[j]) last_negator = -1; // a negation ends with its clause
        int negated = k == 1 && last_negator >= 0 &&
                      (long)i - last_negator <= ANNOTATOR_NEGATION_WINDOW;
        double score = id >= 0 ? a->valence[id] * (negated ? ANNOTATOR_NEGATION_SCALE : 1) : 0;
        for (size_t j = i; j < i + span; j++) out[j].valence = score / (double)span;
        if (k <= 1 && annotator_is_negator(w->words[i])) last_negator = (long)i;
        i += span;
    }
}

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

// How far each word is used in a sentence (docs/annotator.md, "Context"):
// it needs a function word beside it (or to be one), and the trigram
// predictions it takes part in (its own and the next two words', the end of
// the text included) must beat the words' own frequencies on average.
static void word_contexts(const Annotator *a, const WordList *w, AnnotatorWord *out,
                          double *ratio, FluencyStats *stats) {
    fluency_word_ratios(a->fluency, w, stats, ratio);
    for (size_t i = 0; i < w->n; i++) {
        size_t last = i + 2 < w->n ? i + 2 : w->n; // ratio[w->n] is the end's
        double sum = 0;
        for (size_t j = i; j <= last; j++) sum += ratio[j];
        out[i].ratio = ratio[i];
        out[i].beside_function_word = word_is_stopword(w->words[i]) ||
                                      (i > 0 && word_is_stopword(w->words[i - 1])) ||
                                      (i + 1 < w->n && word_is_stopword(w->words[i + 1]));
        out[i].context = out[i].beside_function_word
                             ? sigmoid(sum / (double)(last - i + 1) / ANNOTATOR_CONTEXT_SCALE)
                             : 0;
    }
}

int annotator_words(const Annotator *a, int category, const char *response, AnnotatorWord **words,
                    size_t *n_words, FluencyStats *stats) {
    *words = NULL;
    *n_words = 0;
    WordList w;
    if (words_split(response, &w)) return -1;
    size_t cap = strlen(response) + 300; // a phrase of the response, or a category and a word
    char *key = malloc(cap);
    double *ratio = malloc((w.n + 1) * sizeof *ratio);
    AnnotatorWord *out = calloc(w.n + 1, sizeof *out);
    int rc = key && ratio && out ? 0 : -1;
    if (rc == 0) {
        word_valences(a, &w, out, key, cap);
        word_contexts(a, &w, out, ratio, stats);
        rc = isnan(stats->logp_trigram) ? -1 : 0;
    }
    if (rc == 0 && category >= 0 && (size_t)category < a->n_categories)
        for (size_t i = 0; i < w.n; i++) out[i].keyword = keyword_weight(a, category, w.words[i], key, cap);
    // The words are copied after the array, so one free releases both.
    size_t text_bytes = 0;
    for (size_t i = 0; rc == 0 && i < w.n; i++) text_bytes += strlen(w.words[i]) + 1;
    AnnotatorWord *grown = rc == 0 ? realloc(out, (w.n + 1) * sizeof *out + text_bytes) : NULL;
    if (rc == 0 && !grown) rc = -1;
    if (rc == 0) {
        out = grown;
        char *text = (char *)(out + w.n + 1);
        for (size_t i = 0; i < w.n; i++) {
            out[i].word = strcpy(text, w.words[i]);
            text += strlen(text) + 1;
        }
        *words = out, *n_words = w.n;
        out = NULL;
    }
    free(out);
    free(ratio);
    free(key);
    words_free(&w);
    return rc;
}

// The valence density: context-weighted AFINN scores per word.
static double valence_mean(const AnnotatorWord *w, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += w[i].valence * w[i].context;
    return n ? sum / (double)n : 0;
}

// Sum over the category's distinct keywords in the response of the keyword's
// weight times its best context: a keyword counts once however often it
// appears, and only as far as it is used in a sentence.
static double topic_sum(const AnnotatorWord *w, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i].keyword == 0) continue;
        int first = 1;
        for (size_t j = 0; j < i && first; j++) first = strcmp(w[j].word, w[i].word) != 0;
        if (!first) continue;
        double best = w[i].context;
        for (size_t j = i + 1; j < n; j++)
            if (!strcmp(w[j].word, w[i].word) && w[j].context > best) best = w[j].context;
        sum += w[i].keyword * best;
    }
    return sum;
}

// Fraction of word bigrams that repeat an earlier bigram of the response:
// 0 for ordinary prose, 2/3 for "the the the the".
static double repetition(const AnnotatorWord *w, size_t n, int *oom) {
    if (n < 3) return 0;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) cap = strlen(w[i].word) > cap ? strlen(w[i].word) : cap;
    char *key = malloc(2 * cap + 2);
    if (!key) {
        *oom = 1;
        return 0;
    }
    WordTable seen;
    word_table_init(&seen);
    for (size_t i = 0; i + 1 < n; i++) {
        snprintf(key, 2 * cap + 2, "%s %s", w[i].word, w[i + 1].word);
        if (word_table_add(&seen, key, NULL) < 0) *oom = 1;
    }
    double n_bigrams = (double)(n - 1), repeats = n_bigrams - (double)seen.n;
    word_table_free(&seen);
    free(key);
    return repeats / n_bigrams;
}

// Length credit of n words (a weighted count, so not always whole).
static double length_credit(double n) {
    if (n < ANNOTATOR_LENGTH_MIN) return n / ANNOTATOR_LENGTH_MIN;
    if (n <= ANNOTATOR_LENGTH_MAX) return 1;
    if (n >= ANNOTATOR_LENGTH_ZERO) return 0;
    return 1 - (n - ANNOTATOR_LENGTH_MAX) / (ANNOTATOR_LENGTH_ZERO - ANNOTATOR_LENGTH_MAX);
}

double annotator_gold_category(const Annotator *a, int category, const char *response, int ended,
                               AnnotatorParts *parts) {
    AnnotatorParts p = {.category = category, .ended = ended != 0};
    AnnotatorWord *w;
    size_t n;
    FluencyStats fs;
    int oom = annotator_words(a, category, response, &w, &n, &fs) != 0;
    if (!oom) {
        p.n_words = n;
        for (size_t i = 0; i < n; i++) p.context_words += w[i].context;
        p.valence_mean = valence_mean(w, n);
        p.topic_raw = topic_sum(w, n);
        p.slor = (fs.logp_trigram - fs.logp_unigram) / (double)fs.n_predicted;
        p.unseen_words = fs.n_unseen;
        p.repetition = repetition(w, n, &oom);
        free(w);
    }
    double share = p.n_words ? p.context_words / (double)p.n_words : 0;
    p.valence = tanh(p.valence_mean / ANNOTATOR_VALENCE_SCALE);
    p.topic = 1 - exp(-p.topic_raw);
    p.length = length_credit(p.context_words);
    p.fluency = sigmoid(p.slor / ANNOTATOR_SLOR_SCALE) *
                (ANNOTATOR_FLUENCY_FLOOR + (1 - ANNOTATOR_FLUENCY_FLOOR) * share);
    p.gold = ANNOTATOR_W_VALENCE * p.valence + ANNOTATOR_W_TOPIC * p.topic -
             ANNOTATOR_W_FLUENCY * (1 - p.fluency) - ANNOTATOR_W_LENGTH * (1 - p.length) -
             ANNOTATOR_W_REPETITION * p.repetition - ANNOTATOR_W_NOT_ENDED * (1 - p.ended);
    if (oom) p.gold = NAN; // out of memory: no score rather than a wrong one
    if (parts) *parts = p;
    return p.gold;
}

double annotator_gold(const Annotator *a, const char *prompt, const char *response, int ended,
                      AnnotatorParts *parts) {
    return annotator_gold_category(a, annotator_category_of_prompt(a, prompt), response, ended,
                                   parts);
}
