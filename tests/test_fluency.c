// Tests of the annotator's fluency model (data/fluency.h): interpolated
// Kneser-Ney probabilities against a hand computation, distributions that
// sum to one, per-word log-ratios that add up to the text's, the trained
// corpus model telling a sentence from its words reversed, and corpus files
// refused with file:line.
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
#include "data/fluency.h"
#include "tests/testutil.h"

#define assert_near(a, b, tol) assert_near_at((a), (b), (tol), #a, __FILE__, __LINE__)
static void assert_near_at(double a, double b, double tol, const char *what, const char *file, int line) {
    if (!(fabs(a - b) <= tol)) fail_msg("%s:%d: %s = %.15g, expected %.15g", file, line, what, a, b);
}

static FluencyModel *tiny_model(void) {
    const char *texts[] = {"a b", "a c", "b c"};
    FluencyModel *m;
    Error err;
    assert_int_equal(fluency_model_build(&m, texts, 3, &err), 0);
    return m;
}

// The corpus {"a b", "a c", "b c"} worked by hand (Chen & Goodman's
// interpolated Kneser-Ney). Texts are padded <s> <s> ... </s>.
//   trigram counts: (<s><s>a) 2, every other trigram 1: n1 = 7, n2 = 1, D3 = 7/9
//   bigram continuation counts: (c </s>) 2 (after a and after b), the other
//   six 1: n1 = 6, n2 = 1, D2 = 6/8
//   unigram continuation counts: a 1, b 2, c 2, </s> 2 over 7 bigram types,
//   add-one over 5 ids (a, b, c, </s>, rare): P1 = 2/12, 3/12, 3/12, 3/12, 1/12
//   P2(c | a) = (max(1 - D2, 0) + D2 * 2 * P1(c)) / 2 = 0.3125
//   P3(c | <s> a) = (max(1 - D3, 0) + D3 * 2 * P2(c | a)) / 2 = 0.354166...
static void test_kneser_ney_matches_hand_computation(void **state) {
    (void)state;
    FluencyModel *m = tiny_model();
    assert_int_equal(fluency_vocab_size(m), 3);
    assert_int_equal(fluency_trigram_count(m), 8);
    assert_int_equal(fluency_word_count(m, "c"), 2);
    assert_int_equal(fluency_word_count(m, "zebra"), 0);
    double p1_c = 3.0 / 12, d2 = 0.75, d3 = 7.0 / 9;
    double p2 = (1 - d2 + d2 * 2 * p1_c) / 2;
    assert_near(p2, 0.3125, 1e-15);
    assert_near(fluency_trigram_prob(m, NULL, "a", "c"), (1 - d3 + d3 * 2 * p2) / 2, 1e-12);
    // The history (a c) was seen once, followed by the end only: P(a | a c)
    // = D3 * 1 * P2(a | c), and c was followed by the end only (after a and
    // after b), so P2(a | c) = D2 * 1 * P1(a) / 2.
    assert_near(fluency_trigram_prob(m, "a", "c", "a"), d3 * (d2 * (2.0 / 12) / 2), 1e-12);
    // An unseen history (c a) is the bigram level alone: P2(a | a) = D2 * 2 * P1(a) / 2.
    assert_near(fluency_trigram_prob(m, "c", "a", "a"), d2 * 2 * (2.0 / 12) / 2, 1e-12);
    fluency_model_free(m);
}

static void test_distributions_sum_to_one(void **state) {
    (void)state;
    FluencyModel *m = tiny_model();
    const char *histories[][2] = {{NULL, NULL}, {NULL, "a"}, {"a", "b"}, {"c", "a"}, {"zz", "yy"}, {"b", "c"}};
    const char *next[] = {"a", "b", "c", NULL /* end */, "unseen-word" /* the rare-word id */};
    for (size_t h = 0; h < sizeof histories / sizeof histories[0]; h++) {
        double sum = 0;
        for (size_t i = 0; i < sizeof next / sizeof next[0]; i++) {
            double p = fluency_trigram_prob(m, histories[h][0], histories[h][1], next[i]);
            assert_true(p > 0 && p < 1);
            sum += p;
        }
        assert_near(sum, 1, 1e-12);
    }
    fluency_model_free(m);
}

static void test_word_ratios_add_up(void **state) {
    (void)state;
    FluencyModel *m = tiny_model();
    WordList w;
    assert_int_equal(words_split("a c b zebra", &w), 0);
    double ratio[5];
    FluencyStats s;
    fluency_word_ratios(m, &w, &s, ratio);
    assert_int_equal(s.n_predicted, 5);
    assert_int_equal(s.n_unseen, 1);
    double sum = 0;
    for (int i = 0; i < 5; i++) sum += ratio[i];
    assert_near(sum, s.logp_trigram - s.logp_unigram, 1e-12);
    // The first ratio by hand: P3(a | <s> <s>) against the unigram share of a
    // (2 of 9 predicted tokens, add-one over 5 ids: 3/14).
    double p = fluency_trigram_prob(m, NULL, NULL, "a");
    assert_near(ratio[0], log(p) - log(3.0 / 14), 1e-12);
    FluencyStats s2;
    fluency_stats(m, &w, &s2);
    assert_near(s2.logp_trigram, s.logp_trigram, 0);
    words_free(&w);
    fluency_model_free(m);
}

static void test_corpus_model_prefers_word_order(void **state) {
    (void)state;
    char path[4096];
    src_path(path, sizeof path, "data/fortunes.jsonl");
    FluencyModel *m;
    Error err;
    assert_int_equal(fluency_model_load(&m, path, &err), 0);
    assert_true(fluency_vocab_size(m) > 20000);
    const char *sentences[][2] = {
        {"You will be successful in your work.", "work your in successful be will you"},
        {"A day without sunshine is like night.", "night like is sunshine without day a"},
    };
    for (size_t i = 0; i < 2; i++) {
        FluencyStats s[2];
        for (int k = 0; k < 2; k++) {
            WordList w;
            assert_int_equal(words_split(sentences[i][k], &w), 0);
            fluency_stats(m, &w, &s[k]);
            words_free(&w);
        }
        // Same words, so the same unigram probability; the order decides.
        assert_near(s[0].logp_unigram, s[1].logp_unigram, 1e-9);
        assert_true(s[0].logp_trigram > s[1].logp_trigram + 5);
        assert_true(s[0].logp_trigram > s[0].logp_unigram); // SLOR > 0 for the sentence
    }
    fluency_model_free(m);
}

static void expect_load_error(const char *content, const char *where, const char *words) {
    char dir[256], path[300];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/fortunes.jsonl", dir);
    Error err;
    assert_int_equal(write_file_atomic(path, content, strlen(content), &err), 0);
    FluencyModel *m = NULL;
    assert_int_equal(fluency_model_load(&m, path, &err), -1);
    assert_null(m);
    if (!strstr(err.msg, where) || !strstr(err.msg, words))
        fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", err.msg, where, words);
    remove(path), remove(dir);
}

static void test_bad_corpus_files_are_refused(void **state) {
    (void)state;
    const char *good = "{\"text\":\"a b\",\"split\":\"train\"}\n";
    expect_load_error("{\"text\":\"a b\",\"split\":\"val\"}\n", "fortunes.jsonl", "no \"split\":\"train\"");
    expect_load_error("", "fortunes.jsonl", "no \"split\":\"train\"");
    char text[256];
    snprintf(text, sizeof text, "%s{\"text\":\"a\",\"split\":\"test\"}\n", good);
    expect_load_error(text, "fortunes.jsonl:2", "neither");
    snprintf(text, sizeof text, "%s{\"text\":3,\"split\":\"train\"}\n", good);
    expect_load_error(text, "fortunes.jsonl:2", "text");
    snprintf(text, sizeof text, "%s{\"text\":\"a\"}\n", good);
    expect_load_error(text, "fortunes.jsonl:2", "split");
    snprintf(text, sizeof text, "%snot json\n", good);
    expect_load_error(text, "fortunes.jsonl:2", "");
    FluencyModel *m;
    Error err;
    assert_int_equal(fluency_model_load(&m, "/nonexistent/fortunes.jsonl", &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/fortunes.jsonl"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kneser_ney_matches_hand_computation),
        cmocka_unit_test(test_distributions_sum_to_one),
        cmocka_unit_test(test_word_ratios_add_up),
        cmocka_unit_test(test_corpus_model_prefers_word_order),
        cmocka_unit_test(test_bad_corpus_files_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
