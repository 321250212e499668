// Tests of the simulated annotator: word splitting, each part of the gold
// score on hand-worked examples, the category of a prompt, refusal of
// malformed tables with file:line, and that derive_keywords regenerates the
// shipped data/keywords.tsv byte for byte.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/jsonl.h"
#include "data/annotator.h"
#include "data/words.h"
#include "tests/testutil.h"

// This cmocka has no assert_double_equal.
#define assert_near(a, b, tol) assert_near_at((a), (b), (tol), #a, __FILE__, __LINE__)
static void assert_near_at(double a, double b, double tol, const char *what, const char *file, int line) {
    if (!(fabs(a - b) <= tol)) fail_msg("%s:%d: %s = %.15g, expected %.15g", file, line, what, a, b);
}

static int setup(void **state) {
    char dir[4096];
    src_path(dir, sizeof dir, "data");
    Annotator *a;
    Error err;
    if (annotator_load(&a, dir, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = a;
    return 0;
}

static int teardown(void **state) {
    annotator_free(*state);
    return 0;
}

static void test_words_split(void **state) {
    (void)state;
    WordList w;
    assert_int_equal(words_split("Don\xE2\x80\x99t STOP 'believing' -- rock-n-roll 42x caf\xC3\xA9 ''", &w), 0);
    const char *want[] = {"don't", "stop", "believing", "rock", "n", "roll", "x", "caf"};
    assert_int_equal(w.n, 8);
    for (size_t i = 0; i < w.n; i++) assert_string_equal(w.words[i], want[i]);
    words_free(&w);
    assert_int_equal(words_split("", &w), 0);
    assert_int_equal(w.n, 0);
    words_free(&w);
}

// The words of a response as the annotator sees them; the end's log-ratio in *end_ratio.
static AnnotatorWord *words_of(const Annotator *a, int category, const char *text, size_t *n,
                               double *end_ratio, FluencyStats *stats) {
    AnnotatorWord *w;
    assert_int_equal(annotator_words(a, category, text, &w, n, stats), 0);
    double sum = 0;
    for (size_t i = 0; i < *n; i++) sum += w[i].ratio;
    *end_ratio = stats->logp_trigram - stats->logp_unigram - sum;
    return w;
}

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

// Each word's context, recomputed from its log-ratios and its neighbours.
static void check_contexts(const AnnotatorWord *w, size_t n, double end_ratio) {
    for (size_t i = 0; i < n; i++) {
        double sum = 0;
        int k = 0;
        for (size_t j = i; j <= i + 2 && j <= n; j++, k++) sum += j < n ? w[j].ratio : end_ratio;
        int beside = word_is_stopword(w[i].word) || (i > 0 && word_is_stopword(w[i - 1].word)) ||
                     (i + 1 < n && word_is_stopword(w[i + 1].word));
        assert_int_equal(w[i].beside_function_word, beside);
        assert_near(w[i].context, beside ? sigmoid(sum / k / ANNOTATOR_CONTEXT_SCALE) : 0, 1e-12);
    }
}

static void test_valence_is_context_weighted_lexicon_score(void **state) {
    const Annotator *a = *state;
    int found;
    // love 3, wonderful 4; i, this, day are not listed.
    assert_int_equal(annotator_lexicon_score(a, "love", &found), 3);
    assert_true(found);
    assert_int_equal(annotator_lexicon_score(a, "wonderful", &found), 4);
    annotator_lexicon_score(a, "day", &found);
    assert_false(found);
    size_t n;
    double end;
    FluencyStats fs;
    AnnotatorWord *w = words_of(a, -1, "I love this wonderful day", &n, &end, &fs);
    assert_int_equal(n, 5);
    const double want[] = {0, 3, 0, 4, 0};
    for (size_t i = 0; i < n; i++) assert_near(w[i].valence, want[i], 0);
    check_contexts(w, n, end);
    AnnotatorParts p;
    annotator_gold_category(a, -1, "I love this wonderful day", 1, &p);
    assert_int_equal(p.n_words, 5);
    assert_near(p.valence_mean, (3 * w[1].context + 4 * w[3].context) / 5, 1e-12);
    assert_near(p.valence, tanh(p.valence_mean / ANNOTATOR_VALENCE_SCALE), 1e-12);
    assert_true(p.valence > 0.9);
    free(w);
    // A lexicon phrase wins over its words and is shared among them: "not
    // good" is -2 (-1 a word), not good's +3.
    assert_int_equal(annotator_lexicon_score(a, "not good", &found), -2);
    w = words_of(a, -1, "this is not good", &n, &end, &fs);
    assert_near(w[2].valence, -1, 0);
    assert_near(w[3].valence, -1, 0);
    free(w);
    // Hyphenated entries match split words: well-being is +2.
    w = words_of(a, -1, "Well-being.", &n, &end, &fs);
    assert_near(w[0].valence + w[1].valence, 2, 0);
    free(w);
    annotator_gold_category(a, -1, "It was a terrible, awful day.", 1, &p);
    assert_true(p.valence < -0.9);
    annotator_gold_category(a, -1, "", 1, &p);
    assert_int_equal(p.n_words, 0);
    assert_near(p.valence, 0, 0);
}

static void test_negation_turns_sentiment(void **state) {
    const Annotator *a = *state;
    size_t n;
    double end;
    FluencyStats fs;
    // "not" negates happy three words on: happy counts 3 * -0.74.
    AnnotatorWord *w = words_of(a, -1, "I am not so very happy", &n, &end, &fs);
    assert_near(w[5].valence, 3 * ANNOTATOR_NEGATION_SCALE, 1e-12);
    free(w);
    // Four words on it does not.
    w = words_of(a, -1, "I am not at all so happy", &n, &end, &fs);
    assert_near(w[6].valence, 3, 0);
    free(w);
    // A clause mark ends the negation: "not happy, I love it".
    w = words_of(a, -1, "I am not happy, I love it", &n, &end, &fs);
    assert_near(w[3].valence, 3 * ANNOTATOR_NEGATION_SCALE, 1e-12);
    assert_near(w[5].valence, 3, 0);
    free(w);
    // Contractions negate too; a negated negative word turns mildly positive.
    w = words_of(a, -1, "You won't be lonely", &n, &end, &fs);
    assert_near(w[3].valence, -2 * ANNOTATOR_NEGATION_SCALE, 1e-12);
    free(w);
    assert_true(annotator_is_negator("never") && annotator_is_negator("don't"));
    assert_false(annotator_is_negator("note"));
}

static void test_on_topic_beats_off_topic(void **state) {
    const Annotator *a = *state;
    int food = annotator_category_index(a, "food");
    assert_true(food >= 0);
    assert_true(annotator_keyword_count(a, food) > 10);
    const char *prompt = "Tell me a fortune about food.";
    const char *text = "Eat your breakfast before the coffee gets cold.";
    AnnotatorParts on, off;
    annotator_gold(a, prompt, text, 1, &on);
    annotator_gold(a, "Tell me a fortune about computers.", text, 1, &off);
    assert_int_equal(on.category, food);
    assert_true(on.topic > 0.5);
    assert_true(off.topic < 0.1);
    assert_true(on.gold > off.gold);
    assert_near(on.topic, 1 - exp(-on.topic_raw), 1e-12);
    // topic_raw is the sum of the keywords' weights times their contexts.
    size_t n;
    double end, sum = 0;
    FluencyStats fs;
    AnnotatorWord *w = words_of(a, food, text, &n, &end, &fs);
    for (size_t i = 0; i < n; i++) sum += w[i].keyword * w[i].context;
    assert_near(on.topic_raw, sum, 1e-12);
    assert_near(w[0].keyword, 1, 1e-12); // eat is food's top keyword
    free(w);
    // A keyword counts once, at its best context: repeating it earns nothing.
    AnnotatorParts twice, once;
    annotator_gold(a, prompt, "You eat and you eat.", 1, &twice);
    w = words_of(a, food, "You eat and you eat.", &n, &end, &fs);
    assert_near(twice.topic_raw, fmax(w[1].context, w[4].context), 1e-12);
    free(w);
    // With no category there is no topic credit.
    annotator_gold_category(a, -1, text, 1, &once);
    assert_near(once.topic, 0, 0);
}

static void test_repetition_penalty(void **state) {
    const Annotator *a = *state;
    AnnotatorParts p;
    annotator_gold_category(a, -1, "the the the the", 1, &p);
    assert_near(p.repetition, 2.0 / 3, 1e-12); // 3 bigrams, 2 repeat the first
    annotator_gold_category(a, -1, "a stitch in time saves nine", 1, &p);
    assert_near(p.repetition, 0, 0);
    annotator_gold_category(a, -1, "go go", 1, &p);
    assert_near(p.repetition, 0, 0); // one bigram cannot repeat
    annotator_gold_category(a, -1, "love you love you love you", 1, &p);
    assert_near(p.repetition, 3.0 / 5, 1e-12); // love you, you love, then 3 repeats
    double repeated = p.gold;
    annotator_gold_category(a, -1, "love you", 1, &p);
    assert_true(repeated < p.gold);
}

// The length credit of n words in context, as docs/annotator.md defines it.
static double length_credit(double n) {
    if (n < ANNOTATOR_LENGTH_MIN) return n / ANNOTATOR_LENGTH_MIN;
    if (n <= ANNOTATOR_LENGTH_MAX) return 1;
    if (n >= ANNOTATOR_LENGTH_ZERO) return 0;
    return 1 - (n - ANNOTATOR_LENGTH_MAX) / (ANNOTATOR_LENGTH_ZERO - ANNOTATOR_LENGTH_MAX);
}

static void test_length_counts_words_in_context(void **state) {
    const Annotator *a = *state;
    // Made-up words with no function word beside them are in no sentence:
    // no length credit however many there are.
    char text[4096] = "";
    for (int k = 0; k < 20; k++) {
        char word[16];
        snprintf(word, sizeof word, "zq%c%c ", 'a' + k / 26, 'a' + k % 26);
        strcat(text, word);
    }
    AnnotatorParts p;
    annotator_gold_category(a, -1, text, 1, &p);
    assert_int_equal(p.n_words, 20);
    assert_near(p.context_words, 0, 0);
    assert_near(p.length, 0, 0);
    // A sentence repeated k times (no repetition penalty matters here): the
    // credit follows the sum of the contexts through all its pieces.
    const char *sentence = "You will find a new friend in the old town. ";
    double seen[4] = {0};
    for (int k = 1; k <= 12; k++) {
        text[0] = '\0';
        for (int i = 0; i < k; i++) strcat(text, sentence);
        annotator_gold_category(a, -1, text, 1, &p);
        size_t n;
        double end, sum = 0;
        FluencyStats fs;
        AnnotatorWord *w = words_of(a, -1, text, &n, &end, &fs);
        for (size_t i = 0; i < n; i++) sum += w[i].context;
        free(w);
        assert_near(p.context_words, sum, 1e-12);
        assert_near(p.length, length_credit(sum), 1e-12);
        int piece = sum < ANNOTATOR_LENGTH_MIN ? 0 : sum <= ANNOTATOR_LENGTH_MAX ? 1 : sum < ANNOTATOR_LENGTH_ZERO ? 2 : 3;
        seen[piece] = 1;
    }
    for (int i = 0; i < 4; i++) assert_true(seen[i]); // every piece of the credit was used
}

static void test_not_ended_is_penalised_and_parts_combine(void **state) {
    const Annotator *a = *state;
    const char *prompt = "Say something witty about love.";
    const char *response = "Love is a wonderful thing, but it never pays the rent.";
    AnnotatorParts ended, cut;
    double g1 = annotator_gold(a, prompt, response, 1, &ended);
    double g0 = annotator_gold(a, prompt, response, 0, &cut);
    assert_near(g1 - g0, ANNOTATOR_W_NOT_ENDED, 1e-12);
    assert_int_equal(ended.ended, 1);
    assert_int_equal(cut.ended, 0);
    double want = ANNOTATOR_W_VALENCE * ended.valence + ANNOTATOR_W_TOPIC * ended.topic -
                  ANNOTATOR_W_FLUENCY * (1 - ended.fluency) - ANNOTATOR_W_LENGTH * (1 - ended.length) -
                  ANNOTATOR_W_REPETITION * ended.repetition;
    assert_near(g1, want, 1e-12);
    assert_near(ended.gold, g1, 0);
    // Fluency from SLOR and the share of words in context.
    size_t n;
    double end;
    FluencyStats fs;
    AnnotatorWord *w = words_of(a, ended.category, response, &n, &end, &fs);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += w[i].context;
    free(w);
    assert_near(ended.slor, (fs.logp_trigram - fs.logp_unigram) / (double)(n + 1), 1e-12);
    assert_near(ended.fluency,
                sigmoid(ended.slor / ANNOTATOR_SLOR_SCALE) *
                    (ANNOTATOR_FLUENCY_FLOOR + (1 - ANNOTATOR_FLUENCY_FLOOR) * sum / (double)n), 1e-12);
    assert_true(ended.fluency > 0.5);
    assert_int_equal(ended.unseen_words, 0);
}

static void check_prompt_file(const Annotator *a, const char *name) {
    char path[4096];
    src_path(path, sizeof path, name);
    JsonlReader r;
    Error err;
    assert_int_equal(jsonl_open(&r, path, &err), 0);
    cJSON *o;
    int n = 0;
    while (jsonl_next(&r, &o, &err) == 1) {
        const char *prompt = jsonl_string(&r, o, "prompt", &err);
        const char *category = jsonl_string(&r, o, "category", &err);
        int got = annotator_category_of_prompt(a, prompt);
        if (got < 0 || strcmp(annotator_category_name(a, got), category) != 0)
            fail_msg("%s:%ld: \"%s\" read as %s, not %s", path, r.line, prompt,
                     got < 0 ? "(none)" : annotator_category_name(a, got), category);
        cJSON_Delete(o);
        n++;
    }
    jsonl_close(&r);
    assert_true(n > 100);
}

static void test_category_of_prompt(void **state) {
    const Annotator *a = *state;
    // Every shipped prompt, training and held-out phrasings, names its category.
    check_prompt_file(a, "data/prompts_train.jsonl");
    check_prompt_file(a, "data/prompts_eval.jsonl");
    struct { const char *prompt, *category; } cases[] = {
        {"Tell me about LINUX HACKERS!", "linux"},     // longest match at a position
        {"Tell me about Linux.", "linuxcookie"},
        {"Any words of wisdom on art?", "art"},        // the rightmost topic
        {"What wisdom do you have?", "wisdom"},
        {"Topic: pets. Tell me a fortune.", "pets"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = annotator_category_of_prompt(a, cases[i].prompt);
        assert_true(got >= 0);
        assert_string_equal(annotator_category_name(a, got), cases[i].category);
    }
    assert_int_equal(annotator_category_of_prompt(a, "Startling news of partial results"), -1);
    assert_int_equal(annotator_category_of_prompt(a, ""), -1);
}

// Loads an annotator from the given table contents; returns the message.
static int load_tables(const char *afinn, const char *keywords, char *msg, size_t n) {
    char dir[256], afinn_path[300], keywords_path[300];
    make_temp_dir(dir, sizeof dir);
    snprintf(afinn_path, sizeof afinn_path, "%s/afinn.tsv", dir);
    snprintf(keywords_path, sizeof keywords_path, "%s/keywords.tsv", dir);
    Error err;
    assert_int_equal(write_file_atomic(afinn_path, afinn, strlen(afinn), &err), 0);
    assert_int_equal(write_file_atomic(keywords_path, keywords, strlen(keywords), &err), 0);
    Annotator *a = NULL;
    char fortunes[4096];
    src_path(fortunes, sizeof fortunes, "data/fortunes.jsonl");
    int rc = annotator_load_files(&a, afinn_path, keywords_path, fortunes, &err);
    snprintf(msg, n, "%s", rc ? err.msg : "");
    annotator_free(a);
    remove(afinn_path), remove(keywords_path), remove(dir);
    return rc;
}

static void expect_refused(const char *afinn, const char *keywords, const char *where,
                           const char *words) {
    char msg[1024];
    assert_int_equal(load_tables(afinn, keywords, msg, sizeof msg), -1);
    if (!strstr(msg, where) || !strstr(msg, words))
        fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", msg, where, words);
}

static void test_malformed_tables_are_refused(void **state) {
    (void)state;
    const char *afinn = "# comment\ngood\t3\nnot good\t-2\ngr8\t3\n";
    const char *kw = "# comment\nfood\teat\t1.0\nfood\tcake\t0.5\n";
    char msg[1024];
    assert_int_equal(load_tables(afinn, kw, msg, sizeof msg), 0);
    expect_refused("good\t3\nbad -3\n", kw, "afinn.tsv:2", "2 fields");
    expect_refused("good\t3\nbad\t-9\n", kw, "afinn.tsv:2", "-5 to 5");
    expect_refused("good\t3x\n", kw, "afinn.tsv:1", "not an integer");
    expect_refused("good\t3\n\ngood\t2\n", kw, "afinn.tsv:3", "twice");
    expect_refused("", kw, "afinn.tsv", "no lexicon entries");
    expect_refused(afinn, "food\teat\n", "keywords.tsv:1", "3 fields");
    expect_refused(afinn, "food\teat\t1\nsnacks\tcake\t1\n", "keywords.tsv:2", "unknown category 'snacks'");
    expect_refused(afinn, "food\tice cream\t1\n", "keywords.tsv:1", "not one lowercase word");
    expect_refused(afinn, "food\tEat\t1\n", "keywords.tsv:1", "not one lowercase word");
    expect_refused(afinn, "food\teat\t0\n", "keywords.tsv:1", "(0, 1]");
    expect_refused(afinn, "food\teat\tnan\n", "keywords.tsv:1", "(0, 1]");
    expect_refused(afinn, "food\teat\t1\nfood\teat\t0.5\n", "keywords.tsv:2", "twice");
    expect_refused(afinn, "food\teat\t1\tx\n", "keywords.tsv:1", "found 4");
    Annotator *a = NULL;
    Error err;
    assert_int_equal(annotator_load(&a, "/nonexistent-dir", &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/afinn165.tsv"));
    assert_null(a);
}

// The numbers quoted in docs/annotator.md, so the document stays true.
static void test_documented_examples(void **state) {
    const Annotator *a = *state;
    struct { const char *prompt, *response; int ended; double gold; } ex[] = {
        {"Tell me a fortune about fate.", "Your love life will be happy and harmonious.", 1, 1.655},
        {"Tell me a fortune about love.", "Don't despair; your ideal lover is waiting for you around the corner.", 1, 1.073},
        {"Tell me a fortune about fate.", "Today day tonight lucky tomorrow life soon.", 1, -2.414},
        {"Tell me a fortune about fate.", "Happy and harmonious your will love be life.", 1, -0.116},
        {"Tell me a fortune about fate.", "Your love life will be happy and harmonious. today day tonight lucky tomorrow", 1, 1.073},
        {"Tell me a fortune about love.", "Love is an ideal thing, marriage a real thing; a confusion of the real with the ideal never goes unpunished. -- Goethe", 1, 1.146},
        {"Say something witty about work.", "While money can't buy happiness, it certainly lets you choose your own form of misery.", 1, -0.165},
        {"Say something witty about food.", "While money can't buy happiness, it certainly lets you choose your own form of misery.", 1, -0.955},
        {"Give me a fortune on computers.", "New systems generate new problems.", 1, -2.000},
        {"Give me a fortune on computers.", "New systems generate new problems.", 0, -2.500},
        {"Tell me a fortune about love.", "love love love love love love love love love love", 1, -3.789},
        {"Tell me a fortune about love.", "Love.", 1, -2.219},
        {"Tell me a fortune about love.", "Love is wonderful.", 1, 0.203},
        {"Tell me a fortune about love.", "Blorf snazzle love quindle vorp zib.", 1, -2.048},
        {"Tell me a fortune about love.", "I am not happy, I hate my love.", 1, -0.698},
    };
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++)
        assert_near(annotator_gold(a, ex[i].prompt, ex[i].response, ex[i].ended, NULL), ex[i].gold, 5e-4);
}

static void test_derive_keywords_regenerates_shipped_file(void **state) {
    (void)state;
    char dir[256], bin[4096], fortunes[4096], shipped[4096], out[8192];
    make_temp_dir(dir, sizeof dir);
    bin_path(bin, sizeof bin, "derive_keywords");
    src_path(fortunes, sizeof fortunes, "data/fortunes.jsonl");
    src_path(shipped, sizeof shipped, "data/keywords.tsv");
    int rc = run_cmd(out, sizeof out, "%s --fortunes %s --out %s/keywords.tsv && cmp %s/keywords.tsv %s",
                     bin, fortunes, dir, dir, shipped);
    if (rc != 0) fail_msg("%s\n%s differs from derive_keywords' output: run derive_keywords", out, shipped);
    run_cmd(out, sizeof out, "rm -rf %s", dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_words_split),
        cmocka_unit_test(test_valence_is_context_weighted_lexicon_score),
        cmocka_unit_test(test_negation_turns_sentiment),
        cmocka_unit_test(test_on_topic_beats_off_topic),
        cmocka_unit_test(test_repetition_penalty),
        cmocka_unit_test(test_length_counts_words_in_context),
        cmocka_unit_test(test_not_ended_is_penalised_and_parts_combine),
        cmocka_unit_test(test_category_of_prompt),
        cmocka_unit_test(test_malformed_tables_are_refused),
        cmocka_unit_test(test_documented_examples),
        cmocka_unit_test(test_derive_keywords_regenerates_shipped_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
