// No allocation inside a training or generation step (issue 9): every buffer
// a step needs is allocated at setup, so a step only computes.
//
// How it is proved: this test is linked with -Wl,--wrap=malloc (and calloc,
// realloc, free, strdup, aligned_alloc, posix_memalign), so every call to one
// of them from an object linked statically into this executable -- the test
// itself and the project's own static libraries (model, common, rollout,
// ppo_core, ppo_update, sft_data, reward_model) -- goes to the __wrap_ function below,
// which counts it and calls the real one. Shared libraries (libc, libgomp,
// OpenBLAS) are not rewritten by --wrap, so their internal allocations (an
// OpenMP team, OpenBLAS's GEMM buffers) are not counted: that is the point,
// the claim is about our code. Under AddressSanitizer the real function is
// ASan's interceptor, and counting works the same. test_the_counter_sees_our_
// allocations checks that the mechanism is live, so a build that stopped
// routing our calls through the wrappers (a shared libmodel, LTO) fails here
// instead of passing vacuously.
//
// Each test allocates everything first (a model, its training state, a batch,
// a KV cache, a rollout), then counts the calls made by several steps of what
// the stages run inside their loops: forward, the losses, backward, gradient
// clipping and AdamW for pretrain, sft, train_rm and ppo's updates; batch
// filling and shuffling; decode steps, sampling and generate(); PPO rollouts,
// their scoring, rewards and advantages. The count must be zero.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "model/adamw.h"
#include "model/generate.h"
#include "model/gpt.h"
#include "model/lm_batch.h"
#include "model/loss.h"
#include "model/run.h"
#include "ppo/ppo_core.h"
#include "ppo/ppo_update.h"
#include "ppo/rollout.h"
#include "tests/reward_model_rows.h"
#include "reward_model/reward_model.h"
#include "sft/sft_data.h"

// ---- counting wrappers ---------------------------------------------------------
enum { F_MALLOC, F_CALLOC, F_REALLOC, F_FREE, F_STRDUP, F_ALIGNED, F_POSIX_MEMALIGN, N_FUNCS };
static const char *const FUNC_NAMES[N_FUNCS] = {"malloc", "calloc", "realloc", "free", "strdup", "aligned_alloc",
                                                "posix_memalign"};
static atomic_long calls[N_FUNCS]; // OpenMP threads may call too
static void *volatile sink;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
char *__real_strdup(const char *s);
void *__real_aligned_alloc(size_t align, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
char *__wrap_strdup(const char *s);
void *__wrap_aligned_alloc(size_t align, size_t n);
int __wrap_posix_memalign(void **p, size_t align, size_t n);

void *__wrap_malloc(size_t n) {
    atomic_fetch_add(&calls[F_MALLOC], 1);
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size) {
    atomic_fetch_add(&calls[F_CALLOC], 1);
    return __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n) {
    atomic_fetch_add(&calls[F_REALLOC], 1);
    return __real_realloc(p, n);
}
void __wrap_free(void *p) {
    atomic_fetch_add(&calls[F_FREE], 1);
    __real_free(p);
}
char *__wrap_strdup(const char *s) {
    atomic_fetch_add(&calls[F_STRDUP], 1);
    return __real_strdup(s);
}
void *__wrap_aligned_alloc(size_t align, size_t n) {
    atomic_fetch_add(&calls[F_ALIGNED], 1);
    return __real_aligned_alloc(align, n);
}
int __wrap_posix_memalign(void **p, size_t align, size_t n) {
    atomic_fetch_add(&calls[F_POSIX_MEMALIGN], 1);
    return __real_posix_memalign(p, align, n);
}

typedef struct {
    long n[N_FUNCS];
} Counts;

static Counts snapshot(void) {
    Counts c;
    for (int i = 0; i < N_FUNCS; i++) c.n[i] = atomic_load(&calls[i]);
    return c;
}

// Calls made since `before`, printed by function when there are any.
static long calls_since(const Counts *before, const char *what) {
    Counts now = snapshot();
    long total = 0;
    for (int i = 0; i < N_FUNCS; i++) {
        long d = now.n[i] - before->n[i];
        if (d) printf("    %s: %ld call(s) of %s\n", what, d, FUNC_NAMES[i]);
        total += d;
    }
    return total;
}

// ---- a small model and the buffers a step needs, all allocated up front --------
enum { V = 64, B = 4, MAX_NEW = 12, N_PROMPTS = 5, N_ROLL = 6, MINIBATCH = 2 };

typedef struct {
    GPT policy, ref, rm;
    int T; // the context
    LmBatch batch;
    KVCache kv;
    SftSet sft;
    size_t perm[N_PROMPTS * 2], idx[B];
    // train_rm's buffers: rows of chosen and rejected, their lengths, rewards
    int *rm_inputs, rm_lens[2 * B], *rm_rows[2 * B];
    float rm_rewards[2 * B];
    // ppo: prompts, a rollout, the minibatch buffers and scoring scratch in them
    PromptSet ps;
    Rollout r;
    PpoBuffers buf;
    ScoreScratch sc;
    CkptHeader rm_h;
} Fixture;

static void make_model(GPT *m, unsigned long long seed) {
    GPTConfig cfg = {.vocab_size = V};
    Error err;
    assert_int_equal(gpt_config_named(&cfg, "smoke", &err), 0);
    assert_int_equal(gpt_create(m, &cfg, &err), 0);
    gpt_init_random(m, seed);
}

static int *random_ids(int n, Rng *rng) {
    int *ids = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) ids[i] = (int)rng_below(rng, V);
    return ids;
}

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    Error err;
    Rng rng;
    rng_seed(&rng, 99);
    make_model(&f->policy, 1);
    make_model(&f->ref, 2);
    make_model(&f->rm, 3);
    f->T = f->policy.config.max_seq_len;
    int T = f->T;
    assert_int_equal(gpt_alloc_training(&f->policy, 2 * B, T, &err), 0);
    assert_int_equal(gpt_alloc_activations(&f->ref, B, T, &err), 0);
    assert_int_equal(gpt_alloc_training(&f->rm, 2 * B, T, &err), 0);
    assert_int_equal(lm_batch_alloc(&f->batch, &f->policy, B, T, &err), 0);
    assert_int_equal(kvcache_create(&f->kv, &f->policy.config, N_ROLL, &err), 0);
    // SFT pairs of various lengths, up to one more than the context
    f->sft.n = 2 * B;
    f->sft.ex = calloc(f->sft.n, sizeof *f->sft.ex);
    for (size_t i = 0; i < f->sft.n; i++) {
        int n = 5 + (int)(i * 9) % (T - 4);
        f->sft.ex[i] = (SftExample){random_ids(n, &rng), n, n / 2};
    }
    f->rm_inputs = malloc((size_t)2 * B * T * sizeof(int));
    // PPO prompts (ids and categories; no text is needed to roll out)
    f->ps.n = N_PROMPTS;
    f->ps.ids = calloc(N_PROMPTS, sizeof *f->ps.ids);
    f->ps.len = calloc(N_PROMPTS, sizeof *f->ps.len);
    f->ps.text = calloc(N_PROMPTS, sizeof *f->ps.text);
    f->ps.category = calloc(N_PROMPTS, sizeof *f->ps.category);
    for (int i = 0; i < N_PROMPTS; i++) f->ps.len[i] = 2 + 3 * i, f->ps.ids[i] = random_ids(f->ps.len[i], &rng);
    assert_int_equal(rollout_alloc(&f->r, N_ROLL, MAX_NEW, T, &err), 0);
    assert_int_equal(ppo_buffers_alloc(&f->buf, MINIBATCH, T, N_ROLL, MAX_NEW, 0, &err), 0);
    f->sc = (ScoreScratch){MINIBATCH, f->buf.inputs, f->buf.lens, f->buf.order}; // as ppo.c scores
    f->rm_h.reward_mean = 0.0f, f->rm_h.reward_std = 1.0f;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fixture *f = *state;
    gpt_free(&f->policy), gpt_free(&f->ref), gpt_free(&f->rm);
    lm_batch_free(&f->batch);
    kvcache_free(&f->kv);
    sft_free(&f->sft);
    free(f->rm_inputs);
    ppo_buffers_free(&f->buf);
    prompts_free(&f->ps);
    rollout_free(&f->r);
    free(f);
    return 0;
}

// ---- the mechanism is live -------------------------------------------------------
static void test_the_counter_sees_our_allocations(void **state) {
    (void)state;
    GPT m;
    KVCache c;
    Error err;
    Counts before = snapshot();
    make_model(&m, 5);                                                   // libmodel: calloc
    assert_int_equal(kvcache_create(&c, &m.config, 2, &err), 0);         // libmodel: malloc
    kvcache_free(&c);                                                    // libmodel: free
    gpt_free(&m);
    Counts after = snapshot();
    assert_true(after.n[F_CALLOC] > before.n[F_CALLOC]);
    assert_true(after.n[F_MALLOC] > before.n[F_MALLOC]);
    assert_true(after.n[F_FREE] > before.n[F_FREE]);
    PromptSet ps = {0};
    prompts_free(&ps); // librollout: free(NULL) four times, still calls
    assert_true(snapshot().n[F_FREE] >= after.n[F_FREE] + 4);
    // This file's own calls are wrapped too; the volatile sink keeps the
    // compiler from folding or eliding the pairs.
    sink = malloc(8);
    sink = realloc(sink, 16);
    free(sink);
    sink = strdup("x");
    free(sink);
    Counts end = snapshot();
    assert_true(end.n[F_REALLOC] > after.n[F_REALLOC] && end.n[F_STRDUP] > after.n[F_STRDUP]);
}

// ---- training steps --------------------------------------------------------------
static void fill_random(int *x, int n, Rng *rng) {
    for (int i = 0; i < n; i++) x[i] = (int)rng_below(rng, V);
}

// What pretrain and sft do per step: a batch, forward + loss + backward,
// clipping and AdamW through run_optimizer_step.
static void lm_steps(Fixture *f, Rng *rng, int steps) {
    LmBatch *b = &f->batch;
    RunLoop loop = {.prog = "test", .out = "unused", .steps = steps};
    AdamWConfig opt = adamw_defaults();
    long perm_epoch = -1;
    for (int step = 0; step < steps; step++) {
        int T;
        if (step % 2 == 0) { // pretrain: random windows, every token counts
            T = f->T;
            fill_random(b->inputs, B * T, rng);
            fill_random(b->targets, B * T, rng);
            for (int i = 0; i < B * T; i++) b->weights[i] = 1.0f;
        } else { // sft: a shuffled walk through the pairs, padded to the longest
            for (int i = 0; i < B; i++)
                f->idx[i] = shuffled_index(f->sft.n, 7, (uint64_t)step * B + i, f->perm, &perm_epoch);
            T = sft_fill_batch(b, &f->sft, f->idx, B, 0);
        }
        float loss = lm_batch_loss(b, B, T, 1);
        float lr = lr_warmup_cosine(step, 1, steps, 1e-3f, 1e-4f);
        Error err;
        float norm = run_optimizer_step(&loop, b->m, &opt, loss, 1.0f, lr, (uint64_t)step, &err);
        assert_true(norm >= 0);
    }
    (void)lm_batch_loss(b, B, f->T, 0); // a validation batch: forward and loss only
}

// What train_rm does per step: chosen and rejected rows, forward to the
// scalar head, the Bradley-Terry loss on the head at each row's last token,
// backward from the head only, clipping and AdamW.
static void rm_steps(Fixture *f, int steps) {
    GPT *m = &f->rm;
    AdamWConfig opt = adamw_defaults();
    long perm_epoch = -1;
    for (int step = 0; step < steps; step++) {
        for (int i = 0; i < B; i++) {
            size_t a = shuffled_index(f->sft.n, 3, (uint64_t)step * B + i, f->perm, &perm_epoch);
            const SftExample *c = &f->sft.ex[a], *r = &f->sft.ex[(a + 1) % f->sft.n];
            f->rm_rows[i] = c->ids, f->rm_lens[i] = c->n < f->T ? c->n : f->T;
            f->rm_rows[B + i] = r->ids, f->rm_lens[B + i] = r->n < f->T ? r->n : f->T;
        }
        int T = rm_fill_rows(f->rm_inputs, f->rm_rows, f->rm_lens, 2 * B, 0);
        rm_forward(m, f->rm_inputs, f->rm_lens, 2 * B, T, f->rm_rewards);
        memset(m->bw.dhead, 0, (size_t)2 * B * T * sizeof(float));
        for (int i = 0; i < B; i++) {
            double d;
            bt_loss(f->rm_rewards[i], f->rm_rewards[B + i], 0.0, &d);
            m->bw.dhead[i * T + f->rm_lens[i] - 1] = (float)(d / B);
            m->bw.dhead[(B + i) * T + f->rm_lens[B + i] - 1] = (float)(-d / B);
        }
        gpt_zero_grad(m);
        gpt_backward(m, f->rm_inputs, 0, 1);
        gpt_clip_grad_norm(m, 1.0f);
        adamw_update(m, &opt, 1e-3f, step + 1);
    }
}

static void test_training_steps_allocate_nothing(void **state) {
    Fixture *f = *state;
    Rng rng;
    rng_seed(&rng, 1);
    Counts before = snapshot();
    lm_steps(f, &rng, 6);
    assert_int_equal(calls_since(&before, "pretrain/sft steps"), 0);
    before = snapshot();
    rm_steps(f, 4);
    assert_int_equal(calls_since(&before, "reward-model steps"), 0);
}

// ---- generation ------------------------------------------------------------------
static void test_generation_allocates_nothing(void **state) {
    Fixture *f = *state;
    KVCache *kv = &f->kv;
    const int *prompts[N_ROLL];
    int lens[N_ROLL], out[N_ROLL * 40], out_lens[N_ROLL];
    float lps[N_ROLL * 40];
    for (int i = 0; i < N_ROLL; i++) prompts[i] = f->ps.ids[i % N_PROMPTS], lens[i] = f->ps.len[i % N_PROMPTS];
    SamplerConfig samplers[] = {{0.0f, 0, 1.0f}, {1.0f, 0, 1.0f}, {0.8f, 10, 1.0f}, {1.0f, 0, 0.9f}, {0.7f, 20, 0.8f}};
    Rng rng;
    rng_seed(&rng, 2);
    Counts before = snapshot();
    // Decode steps by hand: two sequences at different positions.
    for (int p = 0; p < 10; p++) {
        int tok[2] = {p % V, (3 * p) % V}, pos[2] = {p, p + 5}, slot[2] = {1, 4};
        gpt_decode_step(&f->policy, kv, tok, pos, slot, 2);
        float lp;
        int t = sample_token(kv->logits, V, &samplers[4], &rng, kv->probs, kv->order, &lp);
        assert_true(t >= 0 && t < V);
    }
    // generate() with every sampler, one to all slots, to the length limit and
    // to a stop token.
    for (int k = 0; k < 5; k++) {
        int n = k == 0 ? 1 : N_ROLL - k % 2;
        generate(&f->policy, kv, prompts, lens, n, 40, k == 1 ? -1 : 3, &samplers[k], &rng, out, lps, out_lens);
        for (int i = 0; i < n; i++) assert_true(out_lens[i] >= 1 && out_lens[i] <= 40);
    }
    assert_int_equal(calls_since(&before, "generation"), 0);
}

static void test_ppo_iteration_allocates_nothing(void **state) {
    Fixture *f = *state;
    GPT *m = &f->policy;
    Rollout *r = &f->r;
    Rng rng;
    rng_seed(&rng, 3);
    size_t perm[N_PROMPTS];
    long perm_epoch = -1;
    KlController kl = {0.05, 6.0, 10000};
    PpoHyper hp = {.minibatch = MINIBATCH, .epochs = 2, .lr = 1e-4f, .weight_decay = 0.1f, .clip = 0.2f,
                   .value_clip = 0.2f, .vf_coef = 0.1f, .ent_coef = 0.01f, .grad_clip = 1.0f, .gamma = 1.0f,
                   .lambda = 0.95f, .temperature = 1.0f, .missing_eos_penalty = 1.0f};
    Counts before = snapshot();
    for (int iter = 0; iter < 2; iter++) {
        for (int i = 0; i < N_ROLL; i++)
            r->prompt[i] = (int)shuffled_index(N_PROMPTS, 5, (uint64_t)iter * N_ROLL + i, perm, &perm_epoch);
        rollout_generate(r, m, &f->kv, &f->ps, hp.temperature, 3, &rng);
        reward_model_rows(r, &f->ps, 3);
        rollout_score(r, &f->ps, m, &f->ref, &f->rm, &f->rm_h, hp.temperature, f->buf.pad, &f->sc);
        IterStats it;
        ppo_advantages(r, N_ROLL, &hp, (float)kl.beta, &it);
        ppo_epochs(m, r, &f->ps, &f->buf, &hp, N_ROLL, (uint64_t)iter, &rng, &it.up);
        assert_int_equal(it.up.updates, hp.epochs * N_ROLL / MINIBATCH);
        assert_true(isfinite(it.up.policy_loss) && isfinite(it.up.value_loss));
        kl_controller_update(&kl, it.kl, N_ROLL);
    }
    assert_int_equal(calls_since(&before, "PPO iteration"), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_counter_sees_our_allocations),
        cmocka_unit_test(test_training_steps_allocate_nothing),
        cmocka_unit_test(test_generation_allocates_nothing),
        cmocka_unit_test(test_ppo_iteration_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
