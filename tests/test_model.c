// The whole model: end-to-end gradient against finite differences, KV-cache
// decoding against the full forward pass, sampling, and overfitting one batch.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "common/rng.h"
#include "model/adamw.h"
#include "model/generate.h"
#include "model/gpt.h"
#include "model/loss.h"
#include "tests/gradcheck.h"

// A smoke-shaped model (d=32, L=2, H=2, ctx=64) with a small vocabulary.
static void make_smoke_model(GPT *m, int V, unsigned long long seed) {
    GPTConfig cfg = {.vocab_size = V};
    Error err;
    assert_int_equal(gpt_config_named(&cfg, "smoke", &err), 0);
    assert_int_equal(gpt_create(m, &cfg, &err), 0);
    gpt_init_random(m, seed);
}

static void random_tokens(int *x, int n, int V, unsigned long long seed) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) x[i] = (int)rng_below(&r, V);
}

// ---- end-to-end gradient ------------------------------------------------------
enum { GB = 2, GT = 12, GV = 37 };

typedef struct {
    GPT *m;
    int inputs[GB * GT], targets[GB * GT];
    float weights[GB * GT], head_coef[GB * GT];
    float logp[GB * GT], dlogp[GB * GT];
} ModelLossCtx;

// Masked cross-entropy on the LM head plus a linear function of the scalar
// head at one position per sequence: exercises both upstream paths.
static double model_loss(void *p) {
    ModelLossCtx *c = p;
    GPT *m = c->m;
    gpt_forward(m, c->inputs, GB, GT, 1);
    logprob_forward(c->logp, m->acts.logits, c->targets, GB * GT, GV, 1.0f);
    double loss = masked_nll(c->logp, c->weights, GB * GT, NULL);
    return loss + dot_loss(m->head, c->head_coef, GB * GT);
}

static void test_whole_model_gradient(void **state) {
    (void)state;
    GPT m;
    make_smoke_model(&m, GV, 1);
    Error err;
    assert_int_equal(gpt_alloc_training(&m, GB, GT, &err), 0);
    // Perturb LayerNorm and head parameters away from 1/0 so that every
    // gradient term is non-trivial.
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt_param_sizes(&m.config, sizes);
    float *noise = malloc(m.num_params * sizeof(float));
    fill_normal(noise, m.num_params, 0.1f, 2);
    for (size_t i = 0; i < m.num_params; i++) m.params_memory[i] += noise[i];
    free(noise);

    ModelLossCtx c = {.m = &m};
    random_tokens(c.inputs, GB * GT, GV, 3);
    random_tokens(c.targets, GB * GT, GV, 4);
    for (int i = 0; i < GB * GT; i++) c.weights[i] = (i % GT) >= 4; // prompt masked out
    c.head_coef[GT - 1] = 0.7f, c.head_coef[GT + 6] = -1.3f;

    model_loss(&c);
    masked_nll(c.logp, c.weights, GB * GT, c.dlogp);
    logprob_backward(m.bw.dlogits, m.acts.logits, c.targets, c.dlogp, GB * GT, GV, 1.0f);
    memcpy(m.bw.dhead, c.head_coef, sizeof c.head_coef);
    gpt_zero_grad(&m);
    gpt_backward(&m, c.inputs, 1, 1);

    // Tolerance: relative error 2e-2 per tensor over up to 24 entries, with
    // eps 1e-2 (float32 forward noise over two layers would swamp eps 1e-3).
    size_t off = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        double rel = gradcheck(gpt_param_name(k), m.params_memory + off, m.grads_memory + off,
                               sizes[k], 24, 1e-2f, model_loss, &c);
        assert_true(rel < 2e-2);
        off += sizes[k];
    }
    gpt_free(&m);
}

// The forward pass on one thread, on two (each thread runs whole sequences)
// and on three (which does not divide the batch: every operation is split
// across the threads) agrees to float rounding (OpenBLAS rounds a product of
// M rows differently from two of M/2), and on a given thread count it is the
// same bit for bit from run to run.
static void test_forward_on_any_thread_count(void **state) {
    (void)state;
    enum { B = 4, T = 21, V = 45 };
    int saved = omp_get_max_threads();
    omp_set_num_threads(3); // scratch for up to three threads
    GPT m;
    make_smoke_model(&m, V, 17);
    Error err;
    assert_int_equal(gpt_alloc_activations(&m, B, T, &err), 0);
    int tokens[B * T];
    random_tokens(tokens, B * T, V, 18);
    size_t nl = (size_t)B * T * V;
    float *logits1 = malloc(sizeof(float) * nl), *again = malloc(sizeof(float) * nl), head1[B * T];
    omp_set_num_threads(1);
    gpt_forward(&m, tokens, B, T, 1);
    memcpy(logits1, m.acts.logits, sizeof(float) * nl);
    memcpy(head1, m.head, sizeof head1);
    for (int nth = 2; nth <= 3; nth++) {
        omp_set_num_threads(nth);
        gpt_forward(&m, tokens, B, T, 1);
        memcpy(again, m.acts.logits, sizeof(float) * nl);
        memset(m.acts.logits, 0, sizeof(float) * nl);
        gpt_forward(&m, tokens, B, T, 1);
        assert_memory_equal(m.acts.logits, again, sizeof(float) * nl);
        double maxdiff = 0;
        for (size_t i = 0; i < nl; i++) maxdiff = fmax(maxdiff, fabs(m.acts.logits[i] - logits1[i]));
        for (int i = 0; i < B * T; i++) maxdiff = fmax(maxdiff, fabs(m.head[i] - head1[i]));
        printf("    %d threads: max |output - output on one thread| = %.1e\n", nth, maxdiff);
        assert_true(maxdiff < 1e-5);
    }
    omp_set_num_threads(saved);
    free(logits1), free(again);
    gpt_free(&m);
}

// ---- KV cache -------------------------------------------------------------------
static void test_kv_cache_matches_full_forward(void **state) {
    (void)state;
    GPT m;
    int V = 50, T = 40;
    make_smoke_model(&m, V, 5);
    Error err;
    assert_int_equal(gpt_alloc_activations(&m, 2, T, &err), 0);
    int tokens[2 * 40];
    random_tokens(tokens, 2 * T, V, 6);
    gpt_forward(&m, tokens, 2, T, 1);

    KVCache c;
    assert_int_equal(kvcache_create(&c, &m.config, 3, &err), 0);
    // Two sequences decoded in interleaved, unequal steps through slots 2 and
    // 0: sequence 1 runs 3 positions ahead, so rows in one step sit at
    // different positions.
    double maxdiff = 0;
    for (int step = 0; step < T + 3; step++) {
        int tok[2], pos[2], slot[2], seq[2], n = 0;
        int p1 = step, p0 = step - 3; // sequence 1 runs three positions ahead
        if (p1 < T) {
            tok[n] = tokens[T + p1], pos[n] = p1, slot[n] = 0, seq[n] = 1;
            n++;
        }
        if (p0 >= 0) {
            tok[n] = tokens[p0], pos[n] = p0, slot[n] = 2, seq[n] = 0;
            n++;
        }
        gpt_decode_step(&m, &c, tok, pos, slot, n);
        for (int i = 0; i < n; i++) {
            const float *full = m.acts.logits + ((size_t)seq[i] * T + pos[i]) * V;
            for (int v = 0; v < V; v++) maxdiff = fmax(maxdiff, fabs(full[v] - c.logits[i * V + v]));
            assert_float_equal(c.head[i], m.head[seq[i] * T + pos[i]], 1e-4);
        }
    }
    printf("    max |logits(kv cache) - logits(full)| = %.2e\n", maxdiff);
    assert_true(maxdiff < 1e-4);
    kvcache_free(&c);
    gpt_free(&m);
}

static void test_generation_reproducible(void **state) {
    (void)state;
    GPT m;
    int V = 40, B = 3, max_new = 20;
    make_smoke_model(&m, V, 7);
    Error err;
    KVCache c;
    assert_int_equal(kvcache_create(&c, &m.config, B, &err), 0);
    int p0[] = {1, 2, 3}, p1[] = {5}, p2[] = {7, 8, 9, 10, 11};
    const int *prompts[] = {p0, p1, p2};
    int lens[] = {3, 1, 5};
    SamplerConfig sc = {1.0f, 0, 1.0f};
    int out[3][3 * 20], n[3][3];
    float lp[3][3 * 20];
    unsigned long long seeds[3] = {11, 11, 12};
    for (int run = 0; run < 3; run++) {
        Rng rng;
        rng_seed(&rng, seeds[run]);
        generate(&m, &c, prompts, lens, B, max_new, 0, &sc, &rng, out[run], lp[run], n[run]);
    }
    for (int b = 0; b < B; b++) {
        assert_int_equal(n[0][b], n[1][b]);
        assert_memory_equal(out[0] + b * max_new, out[1] + b * max_new, n[0][b] * sizeof(int));
        for (int k = 0; k < n[0][b]; k++) {
            assert_true(lp[0][b * max_new + k] <= 0.0f);
            int t = out[0][b * max_new + k];
            assert_true(t >= 0 && t < V);
            if (t == 0) assert_int_equal(k, n[0][b] - 1); // stops at the stop token
        }
    }
    // Another seed gives other samples (40^20 outcomes: a clash means a bug).
    assert_true(memcmp(out[0], out[2], sizeof out[0]) != 0);

    // The sampling log-probability equals the full forward pass's log-softmax
    // at temperature 1 with no truncation.
    int seq[64], L = lens[2] + n[0][2];
    memcpy(seq, p2, sizeof p2);
    memcpy(seq + lens[2], out[0] + 2 * max_new, n[0][2] * sizeof(int));
    assert_int_equal(gpt_alloc_activations(&m, 1, L, &err), 0);
    gpt_forward(&m, seq, 1, L, 1);
    float logp[64];
    logprob_forward(logp, m.acts.logits, seq + 1, L - 1, V, 1.0f);
    for (int k = 0; k < n[0][2]; k++)
        assert_float_equal(logp[lens[2] - 1 + k], lp[0][2 * max_new + k], 1e-4);
    kvcache_free(&c);
    gpt_free(&m);
}

static void test_sampler_distribution(void **state) {
    (void)state;
    enum { V = 5, DRAWS = 40000 };
    float logits[V] = {2.0f, 1.0f, 0.0f, -1.0f, 0.5f}, probs[V];
    int order[2 * V], counts[V] = {0};
    Rng rng;
    rng_seed(&rng, 3);
    double z = 0;
    for (int v = 0; v < V; v++) z += exp(logits[v] / 0.8);
    SamplerConfig plain = {0.8f, 0, 1.0f};
    for (int i = 0; i < DRAWS; i++) {
        float lp;
        int t = sample_token(logits, V, &plain, &rng, probs, order, &lp);
        counts[t]++;
        assert_float_equal(lp, logits[t] / 0.8 - log(z), 1e-5);
    }
    for (int v = 0; v < V; v++) {
        double p = exp(logits[v] / 0.8) / z, se = sqrt(p * (1 - p) / DRAWS);
        assert_true(fabs((double)counts[v] / DRAWS - p) < 5 * se);
    }
    // top-k 2: only the two most likely tokens, renormalised between them.
    SamplerConfig topk = {1.0f, 2, 1.0f};
    int hits0 = 0;
    for (int i = 0; i < DRAWS; i++) {
        float lp;
        int t = sample_token(logits, V, &topk, &rng, probs, order, &lp);
        assert_true(t == 0 || t == 1);
        double p0 = exp(2.0) / (exp(2.0) + exp(1.0));
        assert_float_equal(lp, log(t == 0 ? p0 : 1 - p0), 1e-5);
        hits0 += t == 0;
    }
    assert_true(fabs((double)hits0 / DRAWS - exp(2.0) / (exp(2.0) + exp(1.0))) < 0.02);
    // top-p 0.5: token 0 alone has p > 0.5 at temperature 0.5.
    SamplerConfig topp = {0.5f, 0, 0.5f};
    for (int i = 0; i < 100; i++) {
        float lp;
        assert_int_equal(sample_token(logits, V, &topp, &rng, probs, order, &lp), 0);
        assert_float_equal(lp, 0.0f, 1e-6);
    }
    SamplerConfig greedy = {0.0f, 0, 1.0f};
    float lp;
    assert_int_equal(sample_token(logits, V, &greedy, &rng, probs, order, &lp), 0);
}

// ---- training ---------------------------------------------------------------------
static void test_overfits_one_batch(void **state) {
    (void)state;
    enum { B = 4, T = 32, V = 64, STEPS = 300 };
    GPT m;
    make_smoke_model(&m, V, 9);
    Error err;
    assert_int_equal(gpt_alloc_training(&m, B, T, &err), 0);
    int tokens[B * (T + 1)], inputs[B * T], targets[B * T];
    random_tokens(tokens, B * (T + 1), V, 10);
    for (int b = 0; b < B; b++) {
        memcpy(inputs + b * T, tokens + b * (T + 1), T * sizeof(int));
        memcpy(targets + b * T, tokens + b * (T + 1) + 1, T * sizeof(int));
    }
    AdamWConfig opt = adamw_defaults();
    float logp[B * T], dlogp[B * T], first = 0, loss = 0;
    for (int step = 0; step < STEPS; step++) {
        gpt_forward(&m, inputs, B, T, 1);
        logprob_forward(logp, m.acts.logits, targets, B * T, V, 1.0f);
        loss = masked_nll(logp, NULL, B * T, dlogp);
        if (step == 0) first = loss;
        logprob_backward(m.bw.dlogits, m.acts.logits, targets, dlogp, B * T, V, 1.0f);
        gpt_zero_grad(&m);
        gpt_backward(&m, inputs, 1, 0);
        gpt_clip_grad_norm(&m, 1.0f);
        adamw_update(&m, &opt, lr_warmup_cosine(step, 20, STEPS, 1e-2f, 1e-3f), step + 1);
    }
    printf("    loss %.3f -> %.3f after %d steps (%.1f%% lower)\n", first, loss, STEPS,
           100 * (1 - loss / first));
    assert_true(fabs(first - log(V)) < 0.3); // starts near uniform
    assert_true(loss < 0.1f * first);
    gpt_free(&m);
}

static void test_adamw_decay_and_schedule(void **state) {
    (void)state;
    GPT m;
    make_smoke_model(&m, 16, 13);
    Error err;
    assert_int_equal(gpt_alloc_training(&m, 1, 4, &err), 0);
    // With zero gradients only weight decay moves parameters, and only the
    // four block matrices are decayed.
    float *before = malloc(m.num_params * sizeof(float));
    memcpy(before, m.params_memory, m.num_params * sizeof(float));
    gpt_zero_grad(&m);
    AdamWConfig opt = adamw_defaults();
    adamw_update(&m, &opt, 0.1f, 1);
    size_t sizes[NUM_PARAMETER_TENSORS], off = 0;
    gpt_param_sizes(&m.config, sizes);
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        const char *n = gpt_param_name(k);
        int decayed = !strcmp(n, "qkvw") || !strcmp(n, "attprojw") || !strcmp(n, "fcw") || !strcmp(n, "fcprojw");
        for (size_t i = off; i < off + sizes[k]; i++) {
            float expect = decayed ? before[i] * (1.0f - 0.1f * 0.1f) : before[i];
            assert_float_equal(m.params_memory[i], expect, 1e-7);
        }
        off += sizes[k];
    }
    free(before);
    // Clipping scales the norm down to the limit.
    for (size_t i = 0; i < m.num_params; i++) m.grads_memory[i] = 1.0f;
    float norm = gpt_clip_grad_norm(&m, 2.0f);
    assert_float_equal(norm, sqrtf((float)m.num_params), 1e-2);
    assert_float_equal(gpt_grad_norm(&m), 2.0f, 1e-4);
    // Warm-up is linear, the cosine ends at the floor and passes the midpoint.
    assert_float_equal(lr_warmup_cosine(0, 10, 110, 1.0f, 0.1f), 0.1f, 1e-6);
    assert_float_equal(lr_warmup_cosine(9, 10, 110, 1.0f, 0.1f), 1.0f, 1e-6);
    assert_float_equal(lr_warmup_cosine(60, 10, 110, 1.0f, 0.1f), 0.55f, 1e-6);
    assert_float_equal(lr_warmup_cosine(110, 10, 110, 1.0f, 0.1f), 0.1f, 1e-6);
    gpt_free(&m);
}

// AdamW and the gradient norm against the simple versions they replaced: one
// loop per tensor (the update must be the same bit for bit: only the
// threading changed) and one serial sum of squares (same to rounding).
static void adamw_update_reference(GPT *m, const AdamWConfig *cfg, float lr, long t) {
    size_t sizes[NUM_PARAMETER_TENSORS], offset = 0;
    gpt_param_sizes(&m->config, sizes);
    float b1c = 1.0f - powf(cfg->beta1, (float)t), b2c = 1.0f - powf(cfg->beta2, (float)t);
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        const char *n = gpt_param_name(k);
        int decayed = !strcmp(n, "qkvw") || !strcmp(n, "attprojw") || !strcmp(n, "fcw") || !strcmp(n, "fcprojw");
        float wd = decayed ? cfg->weight_decay : 0.0f;
        float *p = m->params_memory + offset, *g = m->grads_memory + offset;
        float *mm = m->m_memory + offset, *vv = m->v_memory + offset;
        for (size_t i = 0; i < sizes[k]; i++) {
            float gi = g[i];
            mm[i] = cfg->beta1 * mm[i] + (1.0f - cfg->beta1) * gi;
            vv[i] = cfg->beta2 * vv[i] + (1.0f - cfg->beta2) * gi * gi;
            float mhat = mm[i] / b1c, vhat = vv[i] / b2c;
            p[i] -= lr * (mhat / (sqrtf(vhat) + cfg->eps) + wd * p[i]);
        }
        offset += sizes[k];
    }
}

// Two identical smoke models with training state, for comparing two ways
// of updating them.
static void make_training_twins(GPT *a, GPT *b, unsigned long long seed) {
    Error err;
    make_smoke_model(a, 37, seed);
    make_smoke_model(b, 37, seed);
    assert_int_equal(gpt_alloc_training(a, 1, 4, &err), 0);
    assert_int_equal(gpt_alloc_training(b, 1, 4, &err), 0);
}

// Parameters and both AdamW moments equal bit for bit.
static void assert_same_optimizer_state(const GPT *a, const GPT *b) {
    size_t bytes = a->num_params * sizeof(float);
    assert_memory_equal(a->params_memory, b->params_memory, bytes);
    assert_memory_equal(a->m_memory, b->m_memory, bytes);
    assert_memory_equal(a->v_memory, b->v_memory, bytes);
}

static void test_adamw_and_norm_match_reference(void **state) {
    (void)state;
    GPT a, b;
    make_training_twins(&a, &b, 21);
    size_t n = a.num_params;
    AdamWConfig opt = adamw_defaults();
    for (int step = 1; step <= 3; step++) {
        fill_normal(a.grads_memory, n, 0.01f * step, 30 + step);
        memcpy(b.grads_memory, a.grads_memory, n * sizeof(float));
        double ref = 0;
        for (size_t i = 0; i < n; i++) ref += (double)a.grads_memory[i] * a.grads_memory[i];
        assert_float_equal(gpt_grad_norm(&a), (float)sqrt(ref), 1e-6 * sqrt(ref));
        adamw_update(&a, &opt, 1e-2f, step);
        adamw_update_reference(&b, &opt, 1e-2f, step);
        assert_same_optimizer_state(&a, &b);
    }
    gpt_free(&a);
    gpt_free(&b);
}

// Clipping folded into AdamW (adamw_update_scaled with gpt_clip_scale) against
// clipping the gradients in memory and then the reference update: the same
// bit for bit, whether the norm is above the limit or not.
static void test_adamw_scaled_matches_clip_then_update(void **state) {
    (void)state;
    GPT a, b;
    make_training_twins(&a, &b, 23);
    size_t n = a.num_params;
    AdamWConfig opt = adamw_defaults();
    const float max_norm[4] = {0.5f, 1e6f, 0.0f, 0.05f}; // clipped, not, off, clipped
    for (int step = 1; step <= 4; step++) {
        fill_normal(a.grads_memory, n, 0.01f * step, 50 + step);
        memcpy(b.grads_memory, a.grads_memory, n * sizeof(float));
        float norm = gpt_grad_norm(&a);
        float scale = gpt_clip_scale(norm, max_norm[step - 1]);
        if (step == 2 || step == 3) assert_true(scale == 1.0f);
        else assert_true(scale < 1.0f);
        adamw_update_scaled(&a, &opt, 1e-2f, step, scale);
        assert_float_equal(gpt_clip_grad_norm(&b, max_norm[step - 1]), norm, 0);
        adamw_update_reference(&b, &opt, 1e-2f, step);
        assert_same_optimizer_state(&a, &b);
    }
    gpt_free(&a);
    gpt_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_model_gradient),
        cmocka_unit_test(test_forward_on_any_thread_count),
        cmocka_unit_test(test_kv_cache_matches_full_forward),
        cmocka_unit_test(test_generation_reproducible),
        cmocka_unit_test(test_sampler_distribution),
        cmocka_unit_test(test_overfits_one_batch),
        cmocka_unit_test(test_adamw_decay_and_schedule),
        cmocka_unit_test(test_adamw_and_norm_match_reference),
        cmocka_unit_test(test_adamw_scaled_matches_clip_then_update),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
