// Best-of-n's exact estimator (bon/bon_estimator.c) against brute force over
// every n-subset of small pools, ties included, and its KL against the
// analytic value.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bon/bon_estimator.h"

enum { M = 10 };

// The weights by enumeration: every n-subset (a bit mask), its best by score
// with ties shared equally among the tied best.
static void brute_weights(const double *score, int m, int n, double *w) {
    long subsets = 0;
    memset(w, 0, (size_t)m * sizeof *w);
    for (unsigned mask = 0; mask < (1u << m); mask++) {
        if (__builtin_popcount(mask) != n) continue;
        subsets++;
        double best = -INFINITY;
        int ties = 0;
        for (int i = 0; i < m; i++)
            if (mask >> i & 1) {
                if (score[i] > best) best = score[i], ties = 1;
                else if (score[i] == best) ties++;
            }
        for (int i = 0; i < m; i++)
            if ((mask >> i & 1) && score[i] == best) w[i] += 1.0 / ties;
    }
    for (int i = 0; i < m; i++) w[i] /= subsets;
}

static void check_pool(const double *score) {
    for (int n = 1; n <= M; n++) {
        double got[M], want[M], sum = 0;
        assert_int_equal(bon_weights(score, M, n, got), 0);
        brute_weights(score, M, n, want);
        for (int i = 0; i < M; i++) {
            assert_true(fabs(got[i] - want[i]) < 1e-12);
            sum += got[i];
        }
        assert_true(fabs(sum - 1) < 1e-12);
    }
}

static void test_weights_match_brute_force(void **state) {
    (void)state;
    const double distinct[M] = {0.3, -1.2, 2.5, 0.0, 1.1, -0.4, 0.9, 3.3, -2.0, 0.5};
    const double tied[M] = {1.0, 0.0, 1.0, 2.0, 0.0, 1.0, 2.0, -1.0, 1.0, 0.5};
    const double all_same[M] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    check_pool(distinct);
    check_pool(tied);
    check_pool(all_same);
}

// Expectations of another value (gold) under the weights are the mean over
// all subsets of the value of each subset's best (ties averaged).
static void test_expectation_of_best(void **state) {
    (void)state;
    const double score[M] = {0.3, -1.2, 2.5, 0.0, 1.1, -0.4, 0.9, 3.3, -2.0, 0.5};
    const double gold[M] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    double w[M];
    assert_int_equal(bon_weights(score, M, 1, w), 0);
    assert_true(fabs(bon_expect(w, gold, M) - 5.5) < 1e-12); // n = 1: the pool's mean
    assert_int_equal(bon_weights(score, M, M, w), 0);
    assert_true(fabs(bon_expect(w, gold, M) - 8) < 1e-12); // n = m: the top-scored sample's
    // n = 2 by hand: the best of a pair is the higher-scored one; the sample of
    // rank i (1 = lowest) wins the i - 1 pairs with a lower one, of 45 pairs.
    assert_int_equal(bon_weights(score, M, 2, w), 0);
    const int rank[M] = {5, 2, 9, 4, 8, 3, 7, 10, 1, 6};
    double want = 0;
    for (int i = 0; i < M; i++) want += gold[i] * (rank[i] - 1) / 45.0;
    assert_true(fabs(bon_expect(w, gold, M) - want) < 1e-12);
}

// With distinct scores the pool KL approaches log n - (n - 1)/n as the pool
// grows (a small pool's is larger: at n = m it is log m); ties lower it.
static void test_kl(void **state) {
    (void)state;
    enum { BIG = 4096 };
    static double score[BIG], w[BIG];
    for (int i = 0; i < BIG; i++) score[i] = sin(i * 12.9898) * 43758.5453; // distinct
    const int ns[] = {1, 2, 4, 16, 64};
    for (int k = 0; k < 5; k++) {
        assert_int_equal(bon_weights(score, BIG, ns[k], w), 0);
        double kl = bon_kl_pool(w, BIG), analytic = bon_kl_analytic(ns[k]);
        printf("    n %d: pool KL %.5f, analytic %.5f\n", ns[k], kl, analytic);
        assert_true(fabs(kl - analytic) < 0.02 * (analytic + 0.05));
    }
    assert_true(bon_kl_analytic(1) == 0);
    for (int i = 0; i < BIG; i++) score[i] = (double)(i % 8); // eight-way ties
    assert_int_equal(bon_weights(score, BIG, 16, w), 0);
    assert_true(bon_kl_pool(w, BIG) < log(8.0) + 1e-9); // at most the top group of 1/8
    assert_true(bon_kl_pool(w, BIG) < bon_kl_analytic(16));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weights_match_brute_force),
        cmocka_unit_test(test_expectation_of_best),
        cmocka_unit_test(test_kl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
