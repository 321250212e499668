// The DPO loss (dpo/dpo_loss.c): values, its gradient against finite
// differences, and the closed form of its optimum on a bandit.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "dpo/dpo_loss.h"

static void test_values(void **state) {
    (void)state;
    double d;
    // The policy is the reference: both implicit rewards 0, the loss log 2.
    DpoPairLoss p = dpo_loss(-12.5, -20.0, -12.5, -20.0, 0.1, &d);
    assert_float_equal(p.loss, log(2.0), 1e-12);
    assert_true(p.reward_chosen == 0 && p.reward_rejected == 0);
    assert_float_equal(d, -0.1 * 0.5, 1e-12); // beta (sigmoid(0) - 1)
    // The policy raised the chosen response by 3 nats and lowered the
    // rejected one by 1: rewards 0.3 and -0.1, loss -log sigmoid(0.4).
    p = dpo_loss(-9.5, -21.0, -12.5, -20.0, 0.1, NULL);
    assert_float_equal(p.reward_chosen, 0.3, 1e-12);
    assert_float_equal(p.reward_rejected, -0.1, 1e-12);
    assert_float_equal(p.loss, log1p(exp(-0.4)), 1e-12);
    // Log-probabilities that both fell (what users report) still lower the
    // loss when the rejected one fell further.
    double both_fell = dpo_loss(-14.0, -25.0, -12.5, -20.0, 0.1, NULL).loss;
    assert_true(both_fell < log(2.0));
    // Stable far out: no overflow, no NaN.
    p = dpo_loss(0, -1e6, 0, 0, 1, &d);
    assert_true(p.loss >= 0 && p.loss < 1e-300 + 1e-12 && isfinite(d));
    p = dpo_loss(-1e6, 0, 0, 0, 1, &d);
    assert_float_equal(p.loss, 1e6, 1e-6);
    assert_float_equal(d, -1.0, 1e-12);
}

// dL/dlogp_c = d, dL/dlogp_r = -d, and nothing moves with the reference
// beyond what the log-ratio says, against central differences.
static void test_gradient_against_finite_differences(void **state) {
    (void)state;
    const double points[][5] = {{-12.5, -20.0, -12.0, -19.0, 0.1}, {-3.0, -2.0, -4.0, -1.5, 0.5},
                                {-40.0, -41.0, -35.0, -45.0, 0.03}, {-1.0, -8.0, -1.0, -2.0, 2.0}};
    const double h = 1e-5;
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        const double *x = points[i];
        double d;
        dpo_loss(x[0], x[1], x[2], x[3], x[4], &d);
        double num_c = (dpo_loss(x[0] + h, x[1], x[2], x[3], x[4], NULL).loss -
                        dpo_loss(x[0] - h, x[1], x[2], x[3], x[4], NULL).loss) / (2 * h);
        double num_r = (dpo_loss(x[0], x[1] + h, x[2], x[3], x[4], NULL).loss -
                        dpo_loss(x[0], x[1] - h, x[2], x[3], x[4], NULL).loss) / (2 * h);
        assert_float_equal(d, num_c, 1e-8);
        assert_float_equal(-d, num_r, 1e-8);
    }
}

// ---- the bandit: one-token responses over V actions ------------------------------
enum { V = 6 };
static const double REF_LOGITS[V] = {0.3, -0.8, 1.1, 0.0, -0.4, 0.6};
static const double REWARD[V] = {0.9, -0.5, 0.2, 1.4, -1.0, 0.1};

static void log_softmax(const double *z, double *out) {
    double m = z[0], s = 0;
    for (int v = 1; v < V; v++) m = z[v] > m ? z[v] : m;
    for (int v = 0; v < V; v++) s += exp(z[v] - m);
    for (int v = 0; v < V; v++) out[v] = z[v] - m - log(s);
}

// pi_ref exp(r / beta) / Z: the KL-regularised optimum.
static void closed_form(double beta, double *pi) {
    double z[V], lp[V];
    for (int v = 0; v < V; v++) z[v] = REF_LOGITS[v] + REWARD[v] / beta;
    log_softmax(z, lp);
    for (int v = 0; v < V; v++) pi[v] = exp(lp[v]);
}

// Minimises the expected DPO loss over the policy's logits: pairs (a, b)
// drawn with weight mu(a, b) (from the reference, or uniform), labelled a
// over b with probability sigmoid(r_a - r_b), the Bradley-Terry annotator
// of prefs. Full-batch gradient descent from the reference; the loss is
// convex in the logits (log pi_a - log pi_b = theta_a - theta_b).
static void dpo_optimum(double beta, int uniform_pairs, double *pi) {
    double theta[V], ref_lp[V], lp[V], g[V];
    log_softmax(REF_LOGITS, ref_lp);
    for (int v = 0; v < V; v++) theta[v] = REF_LOGITS[v];
    for (int it = 0; it < 200000; it++) {
        log_softmax(theta, lp);
        double gmax = 0;
        for (int v = 0; v < V; v++) g[v] = 0;
        for (int a = 0; a < V; a++)
            for (int b = 0; b < V; b++) {
                if (a == b) continue;
                double mu = uniform_pairs ? 1.0 / (V * (V - 1)) : exp(ref_lp[a] + ref_lp[b]);
                double p_ab = 1 / (1 + exp(-(REWARD[a] - REWARD[b]))), d;
                dpo_loss(lp[a], lp[b], ref_lp[a], ref_lp[b], beta, &d);
                // d log pi_a / d theta_j - d log pi_b / d theta_j = 1[a = j] - 1[b = j].
                g[a] += mu * p_ab * d, g[b] -= mu * p_ab * d;
            }
        for (int v = 0; v < V; v++) gmax = fabs(g[v]) > gmax ? fabs(g[v]) : gmax;
        if (gmax < 1e-13) break;
        // The curvature grows with beta^2: the step shrinks with it.
        for (int v = 0; v < V; v++) theta[v] -= 10.0 / (beta * beta) * g[v];
    }
    log_softmax(theta, lp);
    for (int v = 0; v < V; v++) pi[v] = exp(lp[v]);
}

static double max_diff(const double *a, const double *b) {
    double m = 0;
    for (int v = 0; v < V; v++) m = fabs(a[v] - b[v]) > m ? fabs(a[v] - b[v]) : m;
    return m;
}

static void test_bandit_optimum_is_the_kl_regularised_one(void **state) {
    (void)state;
    const double tol = 1e-6;
    const double betas[] = {0.5, 1.0, 2.0};
    for (int k = 0; k < 3; k++) {
        double want[V], got[V], got_uniform[V], off[V];
        closed_form(betas[k], want);
        dpo_optimum(betas[k], 0, got);
        assert_true(max_diff(got, want) < tol);
        // Pairs drawn otherwise (all with some weight): the same optimum.
        dpo_optimum(betas[k], 1, got_uniform);
        assert_true(max_diff(got_uniform, want) < tol);
        // The test can tell beta from 1.25 beta by a wide margin: a loss
        // whose beta were off by 25% would fail it.
        closed_form(1.25 * betas[k], off);
        assert_true(max_diff(off, want) > 1000 * tol);
        assert_true(max_diff(got, off) > 1000 * tol);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_gradient_against_finite_differences),
        cmocka_unit_test(test_bandit_optimum_is_the_kl_regularised_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
