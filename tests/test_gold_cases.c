// Tests that the gold function's weights hold on cases nobody tuned them to:
// cases written by hand (a real fortune beats keyword soup, a bare positive
// word, a loop of positive words and gibberish around an upbeat word;
// negation is not positive; upbeat and on-topic fortunes beat gloomy and
// off-topic ones), and checks over every held-out fortune of the corpus:
// at least 95% of them must beat their own words shuffled, themselves with
// their topic's top keywords appended, and a run of distinct positive words
// of the same length. The perturbations here are drawn with this file's own
// generator, not the ones the weights were chosen on (docs/annotator.md).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/jsonl.h"
#include "data/annotator.h"
#include "data/topics.h"
#include "data/words.h"
#include "tests/testutil.h"

#define N_APPENDED 5    // keywords appended to a fortune
#define MIN_SHARE 0.95  // the bar for each corpus check

typedef struct {
    Annotator *a;
    char **keywords[64];      // per category: its keywords, best first (NULL-terminated)
    char **positive;          // AFINN words scoring >= 2 seen >= 2 times in training
    size_t n_positive;
} Fixture;

// The whole file as a string: read_file ends its buffer with a NUL.
static char *read_all(const char *path) {
    unsigned char *data;
    size_t len;
    Error err;
    if (read_file(path, (size_t)64 << 20, &data, &len, &err)) fail_msg("%s", err.msg);
    return (char *)data;
}

static void push(char ***list, size_t *n, const char *word) {
    *list = realloc(*list, (*n + 2) * sizeof **list);
    (*list)[(*n)++] = strdup(word);
    (*list)[*n] = NULL;
}

static void load_keywords(Fixture *f) {
    char path[4096];
    src_path(path, sizeof path, "data/keywords.tsv");
    char *text = read_all(path), *save;
    size_t count[64] = {0};
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *tab = strchr(line, '\t'), *tab2 = tab ? strchr(tab + 1, '\t') : NULL;
        assert_non_null(tab2);
        *tab = *tab2 = '\0';
        int c = annotator_category_index(f->a, line);
        assert_true(c >= 0 && c < 64);
        push(&f->keywords[c], &count[c], tab + 1); // the file lists each category best first
    }
    free(text);
}

static void load_positive_words(Fixture *f) {
    char path[4096];
    src_path(path, sizeof path, "data/afinn165.tsv");
    char *text = read_all(path), *save;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(line, '\t');
        if (line[0] == '#' || !tab) continue;
        *tab = '\0';
        int plain = 1;
        for (const char *p = line; *p; p++) plain &= islower((unsigned char)*p) != 0;
        if (plain && atoi(tab + 1) >= 2 && fluency_word_count(annotator_fluency(f->a), line) >= 2)
            push(&f->positive, &f->n_positive, line);
    }
    free(text);
}

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    char dir[4096];
    src_path(dir, sizeof dir, "data");
    Error err;
    if (annotator_load(&f->a, dir, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        free(f);
        return -1;
    }
    load_keywords(f);
    load_positive_words(f);
    *state = f;
    return 0;
}

static void free_list(char **list) {
    for (size_t i = 0; list && list[i]; i++) free(list[i]);
    free(list);
}

static int teardown(void **state) {
    Fixture *f = *state;
    if (!f) return 0;
    for (int c = 0; c < 64; c++) free_list(f->keywords[c]);
    free_list(f->positive);
    annotator_free(f->a);
    free(f);
    return 0;
}

static double gold(const Fixture *f, const char *prompt, const char *response) {
    return annotator_gold(f->a, prompt, response, 1, NULL);
}

// Fails with both scores and their parts unless `better` scores above `worse`.
static void expect_beats(const Fixture *f, const char *prompt_a, const char *better, const char *prompt_b,
                         const char *worse) {
    AnnotatorParts a, b;
    annotator_gold(f->a, prompt_a, better, 1, &a);
    annotator_gold(f->a, prompt_b, worse, 1, &b);
    if (!(a.gold > b.gold))
        fail_msg("\"%s\" (%.3f: valence %.3f topic %.3f fluency %.3f length %.3f) should beat "
                 "\"%s\" (%.3f: valence %.3f topic %.3f fluency %.3f length %.3f)",
                 better, a.gold, a.valence, a.topic, a.fluency, a.length, worse, b.gold, b.valence,
                 b.topic, b.fluency, b.length);
}

static const char *LOVE = "Tell me a fortune about love.", *FATE = "Tell me a fortune about fate.",
                  *FOOD = "Tell me a fortune about food.";

static void test_real_fortune_beats_keyword_soup(void **state) {
    const Fixture *f = *state;
    expect_beats(f, FATE, "Your love life will be happy and harmonious.", FATE,
                 "Today day tonight lucky tomorrow life soon.");
    expect_beats(f, LOVE, "The person you rejected yesterday could make you happy, if you say yes.", LOVE,
                 "Love loved loving romantic heart lover perfect.");
    expect_beats(f, FOOD, "A good meal makes a happy heart.", FOOD,
                 "Eat food eating diet breakfast cheese lunch chocolate.");
}

static void test_real_fortune_beats_bare_positive_word(void **state) {
    const Fixture *f = *state;
    expect_beats(f, LOVE, "The person you rejected yesterday could make you happy, if you say yes.", LOVE, "Love.");
    expect_beats(f, FATE, "Your love life will be happy and harmonious.", FATE, "Happy!");
    expect_beats(f, LOVE, "Love is an ideal thing, marriage a real thing.", LOVE, "Wonderful love.");
}

static void test_real_fortune_beats_loop_of_positive_words(void **state) {
    const Fixture *f = *state;
    expect_beats(f, LOVE, "The person you rejected yesterday could make you happy, if you say yes.", LOVE,
                 "love love love love love love love love love love");
    expect_beats(f, FATE, "Your love life will be happy and harmonious.", FATE,
                 "Happy happy happy happy happy happy happy happy.");
    expect_beats(f, LOVE, "Love is an ideal thing, marriage a real thing.", LOVE,
                 "Love is great, love is great, love is great, love is great.");
}

static void test_real_fortune_beats_gibberish_around_upbeat_word(void **state) {
    const Fixture *f = *state;
    expect_beats(f, LOVE, "The person you rejected yesterday could make you happy, if you say yes.", LOVE,
                 "Blorf snazzle love quindle vorp zib.");
    expect_beats(f, FATE, "Your love life will be happy and harmonious.", FATE,
                 "Grux plimb wonderful trosk a fendle.");
    expect_beats(f, FATE, "You will be successful in your work.", FATE,
                 "The of wonderful and to happy a the.");
}

static void test_negation_is_not_positive(void **state) {
    const Fixture *f = *state;
    AnnotatorParts p;
    annotator_gold(f->a, LOVE, "I am not happy.", 1, &p);
    assert_true(p.valence < 0);
    annotator_gold(f->a, LOVE, "I am not happy, I hate my love.", 1, &p);
    assert_true(p.valence < 0);
    annotator_gold(f->a, LOVE, "You will never be happy with her.", 1, &p);
    assert_true(p.valence < 0);
    expect_beats(f, LOVE, "I am happy.", LOVE, "I am not happy.");
    expect_beats(f, LOVE, "You are loved.", LOVE, "I am not happy, I hate my love.");
    // A negated negative word is not gloomy: "never lonely".
    annotator_gold(f->a, LOVE, "You will never be lonely.", 1, &p);
    assert_true(p.valence > 0);
}

static void test_upbeat_and_on_topic_fortunes_beat_gloomy_and_off_topic_ones(void **state) {
    const Fixture *f = *state;
    // Real fortunes of the corpus.
    expect_beats(f, LOVE, "The person you rejected yesterday could make you happy, if you say yes.", LOVE,
                 "Lonely is a man without love. -- Englebert Humperdinck");
    expect_beats(f, FATE, "You will be honored for contributing your time and skill to a worthy cause.", FATE,
                 "You will be attacked next Wednesday at 3:15 p.m. by six samurai sword wielding purple "
                 "fish glued to Harley-Davidson motorcycles.");
    expect_beats(f, FATE, "Your love life will be happy and harmonious.", FOOD,
                 "Your love life will be happy and harmonious.");
    expect_beats(f, "Say something witty about work.",
                 "While money can't buy happiness, it certainly lets you choose your own form of misery.",
                 "Say something witty about food.",
                 "While money can't buy happiness, it certainly lets you choose your own form of misery.");
}

// ---------------------------------------------------------------- corpus

static uint64_t next_random(uint64_t *s) { // splitmix64
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// words joined by spaces, capitalised, with a full stop: a "sentence".
static char *join_sentence(char **words, size_t n) {
    size_t len = 2;
    for (size_t i = 0; i < n; i++) len += strlen(words[i]) + 1;
    char *s = calloc(len, 1);
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(s, " ");
        strcat(s, words[i]);
    }
    s[0] = (char)toupper((unsigned char)s[0]);
    strcat(s, ".");
    return s;
}

static int contains(const WordList *w, const char *word) {
    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->words[i], word)) return 1;
    return 0;
}

typedef struct {
    size_t tried, won;
} Tally;

static void tally(Tally *t, double original, double other) {
    t->tried++;
    t->won += original > other;
}

static void check_fortune(const Fixture *f, const char *text, const char *category, uint64_t *rng,
                          Tally *shuffled, Tally *appended, Tally *positive) {
    const FortuneTopic *topic = fortune_topic_find(category);
    assert_non_null(topic);
    char prompt[256];
    snprintf(prompt, sizeof prompt, "Tell me a fortune about %s.", topic->topic);
    WordList w;
    assert_int_equal(words_split(text, &w), 0);
    int all_same = 1;
    for (size_t i = 1; i < w.n; i++) all_same &= !strcmp(w.words[i], w.words[0]);
    if (w.n < 2 || all_same) { // no other order exists
        words_free(&w);
        return;
    }
    double original = gold(f, prompt, text);

    char **order = malloc(w.n * sizeof *order);
    memcpy(order, w.words, w.n * sizeof *order);
    for (int differs = 0; !differs;) {
        for (size_t i = w.n - 1; i > 0; i--) { // Fisher-Yates
            size_t j = (size_t)(next_random(rng) % (i + 1));
            char *t = order[i];
            order[i] = order[j], order[j] = t;
        }
        for (size_t i = 0; i < w.n; i++) differs |= strcmp(order[i], w.words[i]) != 0;
    }
    char *s = join_sentence(order, w.n);
    tally(shuffled, original, gold(f, prompt, s));
    free(s);

    char **kw = f->keywords[annotator_category_index(f->a, category)];
    size_t len = strlen(text) + 2, n_kw = 0;
    for (size_t i = 0; kw && kw[i]; i++) len += strlen(kw[i]) + 1;
    s = calloc(len, 1);
    strcpy(s, text);
    for (size_t i = 0; kw && kw[i] && n_kw < N_APPENDED; i++)
        if (!contains(&w, kw[i])) strcat(strcat(s, " "), kw[i]), n_kw++;
    if (n_kw) tally(appended, original, gold(f, prompt, s)); // categories without keywords: no check
    free(s);

    for (size_t i = 0; i < w.n; i++) { // distinct positive words while they last
        size_t k = i % f->n_positive;
        if (k == i) { // partial Fisher-Yates: a fresh random word at k
            size_t j = k + (size_t)(next_random(rng) % (f->n_positive - k));
            char *t = f->positive[k];
            f->positive[k] = f->positive[j], f->positive[j] = t;
        }
        order[i] = f->positive[k];
    }
    s = join_sentence(order, w.n);
    tally(positive, original, gold(f, prompt, s));
    free(s);
    free(order);
    words_free(&w);
}

static void test_heldout_fortunes_beat_their_perturbations(void **state) {
    const Fixture *f = *state;
    assert_true(f->n_positive > 100);
    char path[4096];
    src_path(path, sizeof path, "data/fortunes.jsonl");
    JsonlReader r;
    Error err;
    assert_int_equal(jsonl_open(&r, path, &err), 0);
    Tally shuffled = {0}, appended = {0}, positive = {0};
    uint64_t rng = 20261203;
    cJSON *o;
    while (jsonl_next(&r, &o, &err) == 1) {
        const char *split = jsonl_string(&r, o, "split", &err);
        if (split && !strcmp(split, "val"))
            check_fortune(f, jsonl_string(&r, o, "text", &err), jsonl_string(&r, o, "category", &err), &rng,
                          &shuffled, &appended, &positive);
        cJSON_Delete(o);
    }
    jsonl_close(&r);
    const Tally *t[] = {&shuffled, &appended, &positive};
    const char *name[] = {"shuffled words", "topic keywords appended", "a run of positive words"};
    for (int i = 0; i < 3; i++)
        printf("held-out fortunes that beat %s: %zu of %zu (%.1f%%)\n", name[i], t[i]->won, t[i]->tried,
               100.0 * (double)t[i]->won / (double)t[i]->tried);
    assert_true(shuffled.tried > 700 && appended.tried > 650 && positive.tried > 700);
    for (int i = 0; i < 3; i++)
        if ((double)t[i]->won < MIN_SHARE * (double)t[i]->tried)
            fail_msg("only %zu of %zu held-out fortunes beat %s", t[i]->won, t[i]->tried, name[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_fortune_beats_keyword_soup),
        cmocka_unit_test(test_real_fortune_beats_bare_positive_word),
        cmocka_unit_test(test_real_fortune_beats_loop_of_positive_words),
        cmocka_unit_test(test_real_fortune_beats_gibberish_around_upbeat_word),
        cmocka_unit_test(test_negation_is_not_positive),
        cmocka_unit_test(test_upbeat_and_on_topic_fortunes_beat_gloomy_and_off_topic_ones),
        cmocka_unit_test(test_heldout_fortunes_beat_their_perturbations),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
