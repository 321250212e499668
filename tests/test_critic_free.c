// Critic-free advantages (ppo/critic_free.c): RLOO by hand, GRPO as RLOO's
// times (k - 1)/(k std), and on a bandit the policy gradient they estimate:
// RLOO's and REINFORCE's (running baseline) within 4 standard errors of the
// exact gradient, while a baseline that includes the sample's own return
// (the group mean) is caught shrinking it by (k - 1)/k.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>

#include "common/rng.h"
#include "ppo/critic_free.h"

static void test_rloo_by_hand_and_grpo_identity(void **state) {
    (void)state;
    const float r[8] = {1, 2, 3, 6, /* group 2: */ 0.5f, 0.5f, 0.5f, 0.5f};
    float rloo[8], grpo[8];
    rloo_advantages(rloo, r, 2, 4);
    grpo_advantages(grpo, r, 2, 4);
    // 1 - (2 + 3 + 6)/3, 2 - 10/3, 3 - 3, 6 - 2
    const float want[4] = {1 - 11.0f / 3, 2 - 10.0f / 3, 0, 4};
    for (int i = 0; i < 4; i++) assert_true(fabsf(rloo[i] - want[i]) < 1e-6f);
    double mean = 3, sd = sqrt((4 + 1 + 0 + 9) / 4.0);
    for (int i = 0; i < 4; i++) {
        assert_true(fabs(grpo[i] - rloo[i] * 3.0 / (4 * sd)) < 1e-6);
        assert_true(fabs(grpo[i] - (r[i] - mean) / sd) < 1e-6);
    }
    for (int i = 4; i < 8; i++) assert_true(rloo[i] == 0 && grpo[i] == 0); // equal returns: no signal
    // The identity on random groups of several sizes.
    Rng rng;
    rng_seed(&rng, 7);
    for (int k = 2; k <= 16; k *= 2) {
        float x[64], a[64], b[64];
        for (int i = 0; i < 4 * k; i++) x[i] = (float)(rng_uniform_double(&rng) * 3 - 1);
        rloo_advantages(a, x, 4, k);
        grpo_advantages(b, x, 4, k);
        for (int g = 0; g < 4; g++) {
            double m = 0, v = 0;
            for (int i = 0; i < k; i++) m += x[g * k + i] / (double)k;
            for (int i = 0; i < k; i++) v += (x[g * k + i] - m) * (x[g * k + i] - m) / k;
            for (int i = 0; i < k; i++)
                assert_true(fabs(b[g * k + i] - a[g * k + i] * (k - 1) / (k * sqrt(v))) < 1e-5);
        }
    }
    // Tokens take their sequence's advantage.
    float tok[3 * 4] = {0};
    const int len[3] = {2, 0, 4};
    const float adv[3] = {1.5f, -2, 0.25f};
    sequence_advantages_to_tokens(tok, adv, len, 3, 4);
    const float tw[12] = {1.5f, 1.5f, 0, 0, 0, 0, 0, 0, 0.25f, 0.25f, 0.25f, 0.25f};
    for (int i = 0; i < 12; i++) assert_true(tok[i] == tw[i]);
}

// ---- the bandit: a softmax policy over V actions with a known reward --------
enum { V = 5, K = 4, GROUPS = 200000 };
static const double LOGITS[V] = {0.4, -0.3, 1.0, 0.0, -0.8};
static const double REWARD[V] = {1.0, 0.2, -0.5, 0.7, 2.0};

typedef enum { RLOO, GROUP_MEAN, REINFORCE } Estimator;

// Mean and standard error, per logit, of the estimate sum_i adv_i grad log p(a_i) / K
// over GROUPS groups of K samples; returns how many components lie further than
// 4 standard errors from the exact gradient sum_a p_a r_a (e_a - p).
static int components_off(Estimator est) {
    double p[V], z = 0, exact[V] = {0}, mean_r = 0;
    for (int v = 0; v < V; v++) z += exp(LOGITS[v]);
    for (int v = 0; v < V; v++) p[v] = exp(LOGITS[v]) / z, mean_r += p[v] * REWARD[v];
    for (int v = 0; v < V; v++) exact[v] = p[v] * (REWARD[v] - mean_r); // sum_a p_a r_a (e_a - p)_v
    Rng rng;
    rng_seed(&rng, 2024);
    RunningBaseline base = {.value = 0, .rate = 0.1};
    double sum[V] = {0}, sumsq[V] = {0};
    for (int g = 0; g < GROUPS; g++) {
        int a[K];
        float r[K], adv[K];
        for (int i = 0; i < K; i++) {
            double u = rng_uniform_double(&rng), c = 0;
            a[i] = V - 1;
            for (int v = 0; v < V; v++)
                if (u < (c += p[v])) { a[i] = v; break; }
            r[i] = (float)REWARD[a[i]];
        }
        if (est == RLOO) rloo_advantages(adv, r, 1, K);
        else if (est == REINFORCE) reinforce_advantages(adv, r, K, &base);
        else { // the wrong baseline: the group mean, own return included
            double m = 0;
            for (int i = 0; i < K; i++) m += r[i] / K;
            for (int i = 0; i < K; i++) adv[i] = (float)(r[i] - m);
        }
        double gvec[V] = {0};
        for (int i = 0; i < K; i++)
            for (int v = 0; v < V; v++) gvec[v] += adv[i] * ((v == a[i]) - p[v]) / K;
        for (int v = 0; v < V; v++) sum[v] += gvec[v], sumsq[v] += gvec[v] * gvec[v];
    }
    int off = 0;
    for (int v = 0; v < V; v++) {
        double m = sum[v] / GROUPS, se = sqrt((sumsq[v] / GROUPS - m * m) / GROUPS);
        printf("    estimator %d, logit %d: %.5f ± %.5f, exact %.5f\n", est, v, m, se, exact[v]);
        off += fabs(m - exact[v]) > 4 * se;
    }
    return off;
}

static void test_rloo_and_reinforce_are_unbiased_group_mean_is_not(void **state) {
    (void)state;
    assert_int_equal(components_off(RLOO), 0);
    assert_int_equal(components_off(REINFORCE), 0);
    assert_true(components_off(GROUP_MEAN) >= 3); // shrunk by 3/4: most components out
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rloo_by_hand_and_grpo_identity),
        cmocka_unit_test(test_rloo_and_reinforce_are_unbiased_group_mean_is_not),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
