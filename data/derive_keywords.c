// derive_keywords: writes data/keywords.tsv, the words that mark each fortune
// category, from the train split of data/fortunes.jsonl. The annotator's
// on-topic score looks a response's words up in this table. The output is a
// pure function of the corpus and the options, so tests regenerate it and
// compare bytes.
//
// Method (Monroe, Colaresi & Quinn 2008, "Fightin' Words"): the log-odds ratio
// of a word in the category vs in all other categories, smoothed by an
// informative Dirichlet prior proportional to the word's overall frequency,
// divided by its standard error (a z-score). A word is counted once per
// fortune it appears in, so one fortune repeating a name does not make it a
// keyword. Stopwords, words shorter than 3 letters and words in fewer than
// --min-fortunes fortunes of the category are left out; the --top words with
// the highest z (at least --min-z) are kept, weighted z / (the category's
// highest z), so every category's best keyword weighs 1.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/data_dir.h"
#include "common/cli.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/jsonl.h"
#include "data/topics.h"
#include "data/words.h"

static const char PROG[] = "derive_keywords";

typedef struct {
    const char *fortunes, *out;
    int top, min_fortunes;
    float min_z, prior;
} Options;

// Per category and word: in how many fortunes of the category the word occurs.
typedef struct {
    WordTable vocab;
    size_t n_categories;
    double **count; // [category][word id], grown with the vocabulary
    size_t cap_words;
    double *category_total; // sum of count[c][*]
} Counts;

static void counts_free(Counts *c) {
    word_table_free(&c->vocab);
    for (size_t k = 0; k < c->n_categories; k++) free(c->count ? c->count[k] : NULL);
    free(c->count);
    free(c->category_total);
}

static int counts_init(Counts *c, Error *err) {
    memset(c, 0, sizeof *c);
    word_table_init(&c->vocab);
    c->n_categories = fortune_topic_count();
    c->count = calloc(c->n_categories, sizeof *c->count);
    c->category_total = calloc(c->n_categories, sizeof *c->category_total);
    if (!c->count || !c->category_total) return error_set(err, "out of memory");
    return 0;
}

static int counts_reserve(Counts *c, size_t n_words, Error *err) {
    if (n_words <= c->cap_words) return 0;
    size_t cap = c->cap_words ? 2 * c->cap_words : 4096;
    while (cap < n_words) cap *= 2;
    for (size_t k = 0; k < c->n_categories; k++) {
        double *grown = realloc(c->count[k], cap * sizeof *grown);
        if (!grown) return error_set(err, "out of memory");
        memset(grown + c->cap_words, 0, (cap - c->cap_words) * sizeof *grown);
        c->count[k] = grown;
    }
    c->cap_words = cap;
    return 0;
}

// Counts each distinct kept word of one fortune once for its category.
static int count_fortune(Counts *c, size_t category, const char *text, Error *err) {
    WordList words;
    if (words_split(text, &words)) return error_set(err, "out of memory");
    WordTable seen;
    word_table_init(&seen);
    int rc = 0;
    for (size_t i = 0; i < words.n && rc == 0; i++) {
        const char *w = words.words[i];
        if (strlen(w) < 3 || word_is_stopword(w)) continue;
        int fresh;
        if (word_table_add(&seen, w, &fresh) < 0) rc = error_set(err, "out of memory");
        if (rc || !fresh) continue;
        long id = word_table_add(&c->vocab, w, NULL);
        if (id < 0 || counts_reserve(c, (size_t)id + 1, err)) rc = error_set(err, "out of memory");
        else c->count[category][id] += 1, c->category_total[category] += 1;
    }
    word_table_free(&seen);
    words_free(&words);
    return rc;
}

static int read_corpus(Counts *c, const char *path, Error *err) {
    JsonlReader r;
    if (jsonl_open(&r, path, err)) return -1;
    cJSON *o;
    int rc;
    while ((rc = jsonl_next(&r, &o, err)) == 1) {
        const char *text = jsonl_string(&r, o, "text", err);
        const char *category = text ? jsonl_string(&r, o, "category", err) : NULL;
        const char *split = category ? jsonl_string(&r, o, "split", err) : NULL;
        const FortuneTopic *topic = split ? fortune_topic_find(category) : NULL;
        rc = 0;
        if (!split) rc = -1;
        else if (!topic) rc = error_set(err, "%s:%ld: unknown category \"%s\"", path, r.line, category);
        else if (!strcmp(split, "train"))
            rc = count_fortune(c, (size_t)(topic - fortune_topic_at(0)), text, err);
        cJSON_Delete(o);
        if (rc) break;
    }
    jsonl_close(&r);
    return rc;
}

typedef struct {
    const char *word;
    double z;
} Scored;

static int by_z_then_word(const void *a, const void *b) {
    const Scored *x = a, *y = b;
    if (x->z != y->z) return x->z > y->z ? -1 : 1;
    return strcmp(x->word, y->word);
}

// z-score of the smoothed log-odds ratio of word w in category k vs the rest.
static double log_odds_z(const Counts *c, size_t k, size_t w, double all_w, double all_total,
                         double prior) {
    double a_w = prior * all_w / all_total, a0 = prior;
    double y_k = c->count[k][w], n_k = c->category_total[k];
    double y_r = all_w - y_k, n_r = all_total - n_k;
    double delta = log((y_k + a_w) / (n_k + a0 - y_k - a_w)) - log((y_r + a_w) / (n_r + a0 - y_r - a_w));
    return delta / sqrt(1.0 / (y_k + a_w) + 1.0 / (y_r + a_w));
}

// Appends the category's keyword lines to out; returns the number written.
static size_t write_category(FILE *out, const Counts *c, size_t k, const double *all,
                             double all_total, const Options *o, Scored *scratch) {
    size_t n = 0;
    for (size_t w = 0; w < c->vocab.n; w++) {
        if (c->count[k][w] < o->min_fortunes) continue;
        double z = log_odds_z(c, k, w, all[w], all_total, o->prior);
        if (z >= o->min_z) scratch[n++] = (Scored){c->vocab.keys[w], z};
    }
    qsort(scratch, n, sizeof *scratch, by_z_then_word);
    if (n > (size_t)o->top) n = (size_t)o->top;
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s\t%s\t%.4f\n", fortune_topic_at(k)->category, scratch[i].word,
                scratch[i].z / scratch[0].z);
    return n;
}

static int write_keywords(const Counts *c, const Options *o, Error *err) {
    double *all = calloc(c->vocab.n + 1, sizeof *all), all_total = 0;
    Scored *scratch = malloc((c->vocab.n + 1) * sizeof *scratch);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    int rc = 0;
    if (!all || !scratch || !out) rc = error_set(err, "out of memory");
    for (size_t k = 0; rc == 0 && k < c->n_categories; k++) {
        all_total += c->category_total[k];
        for (size_t w = 0; w < c->vocab.n; w++) all[w] += c->count[k][w];
    }
    if (rc == 0) {
        fprintf(out, "# category keywords derived by derive_keywords from the train split of "
                     "fortunes.jsonl: top %d, z >= %g, in >= %d fortunes, prior %g; "
                     "category<TAB>word<TAB>weight\n", o->top, o->min_z, o->min_fortunes, o->prior);
        for (size_t k = 0; k < c->n_categories; k++) {
            size_t n = write_category(out, c, k, all, all_total, o, scratch);
            printf("%s: %zu keywords\n", fortune_topic_at(k)->category, n);
        }
    }
    if (out) fclose(out);
    if (rc == 0) rc = write_file_atomic(o->out, text, len, err);
    free(text);
    free(all);
    free(scratch);
    return rc;
}

int main(int argc, char **argv) {
    char corpus[4096], table[4096];
    Error err;
    if (data_dir_file(corpus, sizeof corpus, "fortunes.jsonl", &err) ||
        data_dir_file(table, sizeof table, "keywords.tsv", &err))
        error_exit(PROG, &err);
    Options o = {.fortunes = corpus, .out = table, .top = 40, .min_fortunes = 3, .min_z = 2.0f, .prior = 1000.0f};
    CliOption opts[] = {
        {"fortunes", CLI_STRING, &o.fortunes, 0, 0, "corpus: {\"text\", \"category\", \"split\"} per line"},
        {"out", CLI_STRING, &o.out, 0, 0, "keyword table to write (atomically)"},
        {"top", CLI_INT, &o.top, 1, 100000, "most keywords per category"},
        {"min-fortunes", CLI_INT, &o.min_fortunes, 1, 100000, "fewest train fortunes of the category a keyword occurs in"},
        {"min-z", CLI_FLOAT, &o.min_z, 0, 1000, "smallest z-score of the log-odds ratio kept"},
        {"prior", CLI_FLOAT, &o.prior, 1e-3, 1e9, "total mass of the Dirichlet prior (in word counts)"},
    };
    int n_opts = sizeof opts / sizeof opts[0];
    int rc = cli_parse(PROG, opts, n_opts, argc, argv, NULL, &err);
    if (rc == CLI_HELP) cli_print_help(stdout, PROG, "Derives category keywords from the fortune corpus.", opts, n_opts);
    if (rc > 0) return 0;
    if (rc) error_exit_rc(PROG, rc, &err);
    Counts c;
    rc = counts_init(&c, &err);
    if (rc == 0) rc = read_corpus(&c, o.fortunes, &err);
    if (rc == 0) rc = write_keywords(&c, &o, &err);
    counts_free(&c);
    if (rc) error_exit(PROG, &err);
    printf("%s: wrote %s\n", PROG, o.out);
    return 0;
}
