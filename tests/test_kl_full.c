// The full-vocabulary KL (issue 19, item 2): kl_full_forward per row, the
// chain rule that makes its sum along a response the sequence KL, and the
// rollout path (rollout_generate + rollout_score's Rollout.kl_full) measured
// against that KL computed exactly.
//
// Two random GPTs (policy, reference) over a vocabulary of V = 6 ids, one
// prompt, responses of at most MAX_NEW = 4 tokens stopping at EOT = 5: every
// response the sampler can draw is enumerated (5^0 + ... + 5^3 that stop at
// EOT, 5^4 that reach MAX_NEW), its probabilities under both models taken
// from gpt_forward's logits at the sampling temperature. That gives the exact
// KL(P || Q), and the exact mean and variance of the two per-sequence
// estimators: sum_t KL(p_t || q_t) (kl_full) and log P/Q (k1).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "model/generate.h"
#include "model/gpt.h"
#include "model/loss.h"
#include "ppo/ppo_core.h"
#include "ppo/rollout.h"
#include "tests/reward_model_rows.h"

enum {
    V = 6,
    EOT = 5,
    MAX_NEW = 4,
    QLEN = 3,
    CTX = 16,                            // prompt + MAX_NEW = 7 fits: no stop at the context limit
    TLEN = QLEN + MAX_NEW - 1,           // prompt + the longest prefix a token is drawn after
    NPREF = V * V * V,                   // V^(MAX_NEW-1) full-length prefixes (rows of the table)
    N_MC = 10000,                        // Monte Carlo responses per temperature
    ROWS = 250,                          // rows per scoring pass (rollout_score's minibatch)
    SLOTS = 200,                         // generation rows at once
    PAD = 0,
};
static const int PROMPT[QLEN] = {1, 4, 2};
// The final LayerNorm's weight is scaled so that the random models' logits
// spread over a few nats (at init they are ~0.1 apart: KL ~ 1e-2);
// with these seeds about 30% of the responses stop at EOT.
static const float SHARPEN = 5.0f;

// ---- test 1: kl_full_forward row by row ------------------------------------------

// KL(softmax(lp/T) || softmax(lq/T)) the direct way: normalised probabilities,
// then sum p log(p/q).
static double kl_direct(const float *lp, const float *lq, int n, double T) {
    double mp = -INFINITY, mq = -INFINITY, zp = 0, zq = 0;
    for (int v = 0; v < n; v++) mp = fmax(mp, lp[v] / T), mq = fmax(mq, lq[v] / T);
    for (int v = 0; v < n; v++) zp += exp(lp[v] / T - mp), zq += exp(lq[v] / T - mq);
    double kl = 0;
    for (int v = 0; v < n; v++) {
        double p = exp(lp[v] / T - mp) / zp, q = exp(lq[v] / T - mq) / zq;
        if (p > 0) kl += p * log(p / q);
    }
    return kl;
}

static void test_kl_full_forward_rows(void **state) {
    (void)state;
    enum { N = 24, W = 50 };
    Rng rng;
    rng_seed(&rng, 11);
    float lp[N * W], lq[N * W], kl[N];
    // Rows of four kinds: independent (scale 0.5..3); q close to p (q = p +
    // 1e-1..1e-3 noise: KL down to ~1e-7, which float arithmetic gets wrong
    // by 1e-3 relative); q's logits offset by 1000 (the offset must cancel);
    // both scaled by 20 (logits of tens, probabilities near 0 and 1).
    for (int i = 0; i < N; i++) {
        float scale = 0.5f + 0.25f * (float)(i % 11);
        for (int v = 0; v < W; v++) {
            float a = scale * rng_normal(&rng), b = scale * rng_normal(&rng);
            int kind = i % 4;
            lp[i * W + v] = kind == 3 ? 20.0f * a : a;
            lq[i * W + v] = kind == 1 ? a + powf(10.0f, -1.0f - (float)(i % 3)) * b
                            : kind == 2 ? b + 1000.0f
                            : kind == 3 ? 20.0f * b : b;
        }
    }
    const float temps[2] = {1.0f, 0.7f};
    double worst = 0;
    for (int t = 0; t < 2; t++) {
        kl_full_forward(kl, lp, lq, N, W, temps[t]);
        for (int i = 0; i < N; i++) {
            double want = kl_direct(lp + i * W, lq + i * W, W, temps[t]);
            double rel = fabs(kl[i] - want) / want;
            worst = fmax(worst, rel);
            if (!(rel <= 1e-6))
                fail_msg("T %.1f row %d: kl_full_forward %.9g, direct %.9g (rel %.2e)", temps[t], i, kl[i], want, rel);
            assert_true(want > 0);
        }
    }
    printf("    kl_full_forward vs direct double, %d rows x 2 temperatures: worst relative error %.2e\n", N, worst);
    // p == q (the same floats): exactly 0 at either temperature.
    for (int t = 0; t < 2; t++) {
        kl_full_forward(kl, lp, lp, N, W, temps[t]);
        for (int i = 0; i < N; i++) assert_true(kl[i] == 0.0f);
    }
    // Never negative over many rows, most of them nearly equal (where a
    // rounding error would show as a tiny negative value).
    enum { M = 2000 };
    float *a = malloc(sizeof(float) * M * W), *b = malloc(sizeof(float) * M * W), *k = malloc(sizeof(float) * M);
    for (int i = 0; i < M; i++) {
        float eps = i % 2 ? powf(10.0f, -(float)(i % 8)) : 1.0f;
        for (int v = 0; v < W; v++) {
            a[i * W + v] = 3.0f * rng_normal(&rng);
            b[i * W + v] = a[i * W + v] + eps * rng_normal(&rng);
        }
    }
    for (int t = 0; t < 2; t++) {
        kl_full_forward(k, a, b, M, W, temps[t]);
        for (int i = 0; i < M; i++)
            if (!(k[i] >= 0.0f)) fail_msg("T %.1f row %d: kl_full_forward %.3g < 0", temps[t], i, k[i]);
    }
    free(a), free(b), free(k);
}

// ---- the exact sequence distribution -----------------------------------------------

typedef struct {
    GPT policy, ref, rm;
    CkptHeader rm_h;
    int *table_in; // (NPREF, TLEN): the prompt then every full-length prefix
} Fixture;

typedef struct {
    float T;
    double logp[NPREF][MAX_NEW][V], logq[NPREF][MAX_NEW][V]; // log-softmax at T, per prefix length k
    float kl[NPREF][MAX_NEW];                                 // kl_full_forward at the same positions
    // over every response: total mass, KL(P||Q), and the exact first two
    // moments of the per-sequence sums of kl_full (full) and of log P/Q (k1)
    double mass, kl_exact, e_full, e_full2, e_k12, p_ended;
    double kl_reverse; // KL(Q||P), what a swapped implementation would estimate
    int n_seq;
} Table;

static void make_model(GPT *m, unsigned long long seed, float sharpen) {
    GPTConfig cfg = {.vocab_size = V};
    Error err;
    assert_int_equal(gpt_config_named(&cfg, "smoke", &err), 0);
    cfg.max_seq_len = CTX;
    assert_int_equal(gpt_create(m, &cfg, &err), 0);
    gpt_init_random(m, seed);
    for (int c = 0; c < cfg.n_embd; c++) m->params.lnfw[c] *= sharpen;
    assert_int_equal(gpt_alloc_activations(m, NPREF > ROWS ? NPREF : ROWS, CTX, &err), 0);
}

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    make_model(&f->policy, 21, SHARPEN);
    make_model(&f->ref, 22, SHARPEN);
    make_model(&f->rm, 23, 1.0f);
    for (int c = 0; c <= f->rm.config.n_embd; c++) f->rm.params.headw[c] = (float)sin(1.3 * c + 0.2);
    f->rm_h.reward_mean = 0.0f, f->rm_h.reward_std = 1.0f;
    f->table_in = malloc(sizeof(int) * NPREF * TLEN);
    for (int r = 0; r < NPREF; r++) {
        int *row = f->table_in + r * TLEN;
        for (int t = 0; t < QLEN; t++) row[t] = PROMPT[t];
        for (int j = 0, x = r; j < MAX_NEW - 1; j++) row[TLEN - 1 - j] = x % V, x /= V; // base V, first digit first
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fixture *f = *state;
    gpt_free(&f->policy), gpt_free(&f->ref), gpt_free(&f->rm);
    free(f->table_in);
    free(f);
    return 0;
}

// The table row holding prefix seq[0..k) (its remaining digits 0).
static int prefix_row(const int *seq, int k) {
    int r = 0;
    for (int j = 0; j < MAX_NEW - 1; j++) r = r * V + (j < k ? seq[j] : 0);
    return r;
}

static void log_softmax(double *out, const float *logits, double T) {
    double m = -INFINITY, z = 0;
    for (int v = 0; v < V; v++) m = fmax(m, logits[v] / T);
    for (int v = 0; v < V; v++) z += exp(logits[v] / T - m);
    for (int v = 0; v < V; v++) out[v] = logits[v] / T - m - log(z);
}

// Every response: seq[0..k) drawn so far, lp/lq its log-probabilities, full
// the sum of kl_full along it.
static void walk(Table *t, int *seq, int k, double lp, double lq, double full) {
    int r = prefix_row(seq, k);
    double full_next = full + t->kl[r][k];
    for (int v = 0; v < V; v++) {
        double lp2 = lp + t->logp[r][k][v], lq2 = lq + t->logq[r][k][v];
        seq[k] = v;
        if (v == EOT || k + 1 == MAX_NEW) {
            double P = exp(lp2);
            t->mass += P;
            if (v == EOT) t->p_ended += P;
            t->kl_exact += P * (lp2 - lq2);
            t->e_full += P * full_next, t->e_full2 += P * full_next * full_next;
            t->e_k12 += P * (lp2 - lq2) * (lp2 - lq2);
            t->kl_reverse += exp(lq2) * (lq2 - lp2);
            t->n_seq++;
        } else {
            walk(t, seq, k + 1, lp2, lq2, full_next);
        }
    }
}

static Table *exact_table(Fixture *f, float T) {
    Table *t = calloc(1, sizeof *t);
    t->T = T;
    gpt_forward(&f->policy, f->table_in, NPREF, TLEN, 1);
    gpt_forward(&f->ref, f->table_in, NPREF, TLEN, 1);
    const float *lp = f->policy.acts.logits, *lq = f->ref.acts.logits;
    for (int r = 0; r < NPREF; r++) {
        // token k of a response is drawn at position QLEN - 1 + k
        size_t first = ((size_t)r * TLEN + QLEN - 1) * V;
        kl_full_forward(t->kl[r], lp + first, lq + first, MAX_NEW, V, T);
        for (int k = 0; k < MAX_NEW; k++) {
            log_softmax(t->logp[r][k], lp + first + (size_t)k * V, T);
            log_softmax(t->logq[r][k], lq + first + (size_t)k * V, T);
        }
    }
    int seq[MAX_NEW];
    walk(t, seq, 0, 0, 0, 0);
    return t;
}

// ---- test 2: the chain rule, exactly -------------------------------------------------

static void chain_rule_at(Fixture *f, float T) {
    Table *t = exact_table(f, T);
    int want_seq = 0;
    for (int L = 1, p = 1; L <= MAX_NEW; L++, p *= V - 1) want_seq += p; // stop at EOT after L-1 others
    want_seq += (int)pow(V - 1, MAX_NEW);                                 // reach MAX_NEW
    assert_int_equal(t->n_seq, want_seq);
    assert_true(fabs(t->mass - 1.0) < 1e-9);
    double var_full = t->e_full2 - t->e_full * t->e_full, var_k1 = t->e_k12 - t->kl_exact * t->kl_exact;
    printf("    T %.1f: %d responses, mass %.12f; exact KL(P||Q) %.7f, E_P[sum_t kl_full] %.7f (diff %.2e); "
           "exact per-sequence sd: kl_full %.4f, k1 %.4f; P(ends at EOT) %.4f\n",
           T, t->n_seq, t->mass, t->kl_exact, t->e_full, t->e_full - t->kl_exact, sqrt(var_full), sqrt(var_k1), t->p_ended);
    assert_true(t->kl_exact > 0.1); // the models differ: a real KL to match
    if (!(fabs(t->e_full - t->kl_exact) <= 1e-5))
        fail_msg("T %.1f: E_P[sum_t KL_t] %.9f != KL(P||Q) %.9f", T, t->e_full, t->kl_exact);
    // The lower-variance claim, exactly (test 3 checks it on samples).
    assert_true(var_full < var_k1);
    free(t);
}

static void test_chain_rule_enumerated_t1(void **state) { chain_rule_at(*state, 1.0f); }
static void test_chain_rule_enumerated_t08(void **state) { chain_rule_at(*state, 0.8f); }

// ---- test 3: Monte Carlo through rollout_generate and rollout_score ---------------

static void mean_sd(const double *x, int n, double *mean, double *sd) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = sqrt(ss / (n - 1));
}

static void monte_carlo_at(Fixture *f, float T, uint64_t seed) {
    Table *t = exact_table(f, T);
    Error err;
    int prompt_ids[QLEN];
    memcpy(prompt_ids, PROMPT, sizeof prompt_ids);
    int *ids[1] = {prompt_ids}, lens[1] = {QLEN}, cat[1] = {0};
    char *text[1] = {NULL};
    PromptSet ps = {text, ids, lens, cat, 1};
    Rollout r;
    KVCache kv;
    assert_int_equal(rollout_alloc(&r, N_MC, MAX_NEW, f->rm.config.max_seq_len, &err), 0);
    assert_int_equal(kvcache_create(&kv, &f->policy.config, SLOTS, &err), 0);
    for (int i = 0; i < N_MC; i++) r.prompt[i] = 0;
    Rng rng;
    rng_seed(&rng, seed);
    rollout_generate(&r, &f->policy, &kv, &ps, T, EOT, &rng);
    reward_model_rows(&r, &ps, EOT);
    int *sc_in = malloc(sizeof(int) * ROWS * CTX), sc_lens[ROWS], *order = malloc(sizeof(int) * N_MC);
    ScoreScratch sc = {ROWS, sc_in, sc_lens, order};
    rollout_score(&r, &ps, &f->policy, &f->ref, &f->rm, &f->rm_h, T, PAD, &sc);

    double *full = malloc(sizeof(double) * N_MC), *k1 = malloc(sizeof(double) * N_MC);
    double worst_kl = 0, worst_logp = 0;
    int ended = 0;
    for (int i = 0; i < N_MC; i++) {
        const int *seq = r.resp + (size_t)i * MAX_NEW;
        int L = r.resp_len[i];
        assert_true(L >= 1 && L <= MAX_NEW);
        assert_true(r.ended[i] == (seq[L - 1] == EOT));
        assert_true(r.ended[i] || L == MAX_NEW); // no other way to stop here
        ended += r.ended[i];
        full[i] = k1[i] = 0;
        for (int k = 0; k < L; k++) {
            size_t j = (size_t)i * MAX_NEW + k;
            if (!(r.kl_full[j] >= 0.0f)) fail_msg("T %.1f row %d token %d: kl_full %.3g < 0", T, i, k, r.kl_full[j]);
            // The KL of the position that drew token k: the enumeration's
            // value for the prefix seq[0..k), and logp its log-probability.
            int pr = prefix_row(seq, k);
            double dk = fabs(r.kl_full[j] - t->kl[pr][k]) / (1e-3 + t->kl[pr][k]);
            double dl = fabs(r.logp[j] - t->logp[pr][k][seq[k]]);
            worst_kl = fmax(worst_kl, dk), worst_logp = fmax(worst_logp, dl);
            if (!(dk < 1e-4 && dl < 2e-4))
                fail_msg("T %.1f row %d token %d: kl_full %.7f vs %.7f at its prefix, logp %.6f vs %.6f", T, i, k,
                         r.kl_full[j], t->kl[pr][k], r.logp[j], t->logp[pr][k][seq[k]]);
            full[i] += r.kl_full[j];
            k1[i] += (double)r.logp[j] - r.ref_logp[j];
        }
    }
    double m_full, sd_full, m_k1, sd_k1;
    mean_sd(full, N_MC, &m_full, &sd_full);
    mean_sd(k1, N_MC, &m_k1, &sd_k1);
    double se_full = sd_full / sqrt(N_MC), se_k1 = sd_k1 / sqrt(N_MC);
    // ppo's batch figures are the same means
    double k1_batch, k3_batch;
    kl_estimates(r.logp, r.ref_logp, r.resp_len, N_MC, MAX_NEW, &k1_batch, &k3_batch);
    double full_batch = mean_sequence_sum(r.kl_full, r.resp_len, N_MC, MAX_NEW);
    printf("    T %.1f, %d responses (%.1f%% ended): exact KL %.5f; kl_full mean %.5f se %.5f (%+.2f se), sd %.4f; "
           "k1 mean %.5f se %.5f (%+.2f se), sd %.4f; k3 %.5f; worst kl_full rel diff to its prefix %.1e, logp %.1e\n",
           T, N_MC, 100.0 * ended / N_MC, t->kl_exact, m_full, se_full, (m_full - t->kl_exact) / se_full, sd_full,
           m_k1, se_k1, (m_k1 - t->kl_exact) / se_k1, sd_k1, k3_batch, worst_kl, worst_logp);
    // The stopping rule the enumeration assumes is the sampler's.
    double p_end = (double)ended / N_MC, se_end = sqrt(t->p_ended * (1 - t->p_ended) / N_MC);
    printf("    T %.1f: ended %.4f, exact %.4f (se %.4f); KL(Q||P) %.5f (%.0f kl_full se away)\n", T, p_end, t->p_ended,
           se_end, t->kl_reverse, fabs(t->kl_reverse - m_full) / se_full);
    assert_true(fabs(p_end - t->p_ended) <= 4 * se_end);
    assert_true(fabs(full_batch - m_full) <= 1e-5 * (1 + fabs(m_full)));
    assert_true(fabs(k1_batch - m_k1) <= 1e-5 * (1 + fabs(m_k1)));
    if (!(fabs(m_full - t->kl_exact) <= 4 * se_full))
        fail_msg("T %.1f: mean sum kl_full %.5f, exact KL %.5f: %.1f standard errors (%.5f) apart", T, m_full,
                 t->kl_exact, fabs(m_full - t->kl_exact) / se_full, se_full);
    if (!(fabs(m_k1 - t->kl_exact) <= 4 * se_k1))
        fail_msg("T %.1f: mean k1 %.5f, exact KL %.5f: %.1f standard errors (%.5f) apart", T, m_k1, t->kl_exact,
                 fabs(m_k1 - t->kl_exact) / se_k1, se_k1);
    if (!(sd_full < sd_k1)) fail_msg("T %.1f: per-row sd of sum kl_full %.4f not below k1's %.4f", T, sd_full, sd_k1);
    free(full), free(k1), free(sc_in), free(order);
    kvcache_free(&kv);
    rollout_free(&r);
    free(t);
}

static void test_monte_carlo_t1(void **state) { monte_carlo_at(*state, 1.0f, 11); }
static void test_monte_carlo_t08(void **state) { monte_carlo_at(*state, 0.8f, 2); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kl_full_forward_rows),
        cmocka_unit_test(test_chain_rule_enumerated_t1),
        cmocka_unit_test(test_chain_rule_enumerated_t08),
        cmocka_unit_test(test_monte_carlo_t1),
        cmocka_unit_test(test_monte_carlo_t08),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
