// Times the model on random tokens and reports the median over repeated runs:
//   --mode train     one training step (forward + backward + clip + AdamW):
//                    tokens/s and model GFLOP/s;
//   --mode generate  generate() with the KV cache (model/generate.h): B prompts
//                    of --prompt tokens continued by exactly --new tokens each:
//                    generated tokens/s and model GFLOP/s.
// Besides the human-readable lines it prints one machine-readable line,
//   RESULT impl=ours mode=... config=... key=value ...
// in the format bench/torch_ref.py prints, so bench/compare.py parses both.
// A benchmark, not a test: see BENCHMARKS.md.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "common/cli.h"
#include "common/progress.h"
#include "common/rng.h"
#include "model/adamw.h"
#include "model/generate.h"
#include "model/gpt.h"
#include "model/loss.h"

// The two executables built from this file say which one they are.
#ifdef SGEMM_CLOCK
#define PROG "bench_model_sgemm"
#else
#define PROG "bench_model"
#endif

#ifdef SGEMM_CLOCK // bench_model_sgemm: also the time inside cblas_sgemm
#include "bench/sgemm_clock.h"
#else
static void sgemm_clock_reset(void) {}
static double sgemm_clock_busiest(long *calls, double *flops) {
    *calls = 0, *flops = 0.0;
    return 0.0;
}
#endif

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Model FLOPs of one training step per token (PaLM appendix B convention):
// 6 x (matmul parameters incl. the LM head) + 12 x L x T x C for attention.
static double train_flops_per_token(const GPTConfig *c, int T) {
    double C = c->n_embd, L = c->n_layer, V = c->vocab_size;
    return 6.0 * (12.0 * L * C * C + V * C) + 12.0 * L * T * C;
}

// Model FLOPs of one generation run: B sequences, a prompt of P tokens, N new
// tokens. Each sequence runs P + N - 1 positions through the trunk (the last
// sampled token is never fed back), each costing 2 x 12 L C^2 in the matrix
// products plus 4 L C x (its context length p + 1) in attention (Q.K and
// att.V over p + 1 cached positions, p = 0 .. P+N-2); the LM head, 2 V C, is
// counted only at the N positions whose logits are sampled. The same formula
// is in bench/torch_ref.py; it counts the work the task needs, whatever an
// implementation actually computes (ours computes logits at prompt positions
// too, torch's prefill does not).
static double generate_flops(const GPTConfig *c, int B, int P, int N) {
    double C = c->n_embd, L = c->n_layer, V = c->vocab_size;
    double positions = P + N - 1;
    double context_sum = positions * (positions + 1) / 2; // sum of p + 1
    return B * (positions * 24.0 * L * C * C + N * 2.0 * V * C + 4.0 * L * C * context_sum);
}

typedef struct {
    double median, min, max; // seconds
    double sgemm;            // median over runs of the busiest thread's time inside cblas_sgemm
    long sgemm_calls;        // calls to cblas_sgemm in the last run
    double sgemm_flops;      // and their floating-point operations
} Timing;

// times[] and sgemm[] (n each) are sorted in place.
static Timing summarise(double *times, double *sgemm, long calls, double flops, int n) {
    qsort(times, n, sizeof(double), compare_double);
    qsort(sgemm, n, sizeof(double), compare_double);
    Timing t = {times[n / 2], times[0], times[n - 1], sgemm[n / 2], calls, flops};
    return t;
}

static Timing bench_train(GPT *m, int B, int T, int steps, int warmup) {
    int V = m->config.vocab_size;
    int *inputs = malloc((size_t)B * T * sizeof(int)), *targets = malloc((size_t)B * T * sizeof(int));
    float *logp = malloc((size_t)B * T * sizeof(float)), *dlogp = malloc((size_t)B * T * sizeof(float));
    double *times = malloc((size_t)steps * sizeof(double)), *sgemm = malloc((size_t)steps * sizeof(double));
    long calls = 0;
    double gemm_flops = 0.0;
    if (!inputs || !targets || !logp || !dlogp || !times || !sgemm) {
        fprintf(stderr, PROG ": out of memory\n");
        exit(1);
    }
    Rng rng;
    rng_seed(&rng, 2);
    for (int i = 0; i < B * T; i++) inputs[i] = (int)rng_below(&rng, V), targets[i] = (int)rng_below(&rng, V);
    AdamWConfig opt = adamw_defaults();
    for (int s = 0; s < warmup + steps; s++) {
        sgemm_clock_reset();
        double t0 = now_seconds();
        gpt_forward(m, inputs, B, T, 1);
        // As lm_batch_loss (pretrain, sft): the loss and dlogits in one pass.
        masked_nll_grad(NULL, B * T, dlogp);
        logprob_forward_backward(logp, m->bw.dlogits, m->acts.logits, targets, dlogp, B * T, V, 1.0f);
        masked_nll(logp, NULL, B * T, NULL);
        gpt_zero_grad(m);
        gpt_backward(m, inputs, 1, 0);
        // As run_optimizer_step (pretrain, sft, train_rm): clipping folded into AdamW.
        float norm = gpt_grad_norm(m);
        adamw_update_scaled(m, &opt, 1e-4f, s + 1, gpt_clip_scale(norm, 1.0f));
        if (s >= warmup) times[s - warmup] = now_seconds() - t0, sgemm[s - warmup] = sgemm_clock_busiest(&calls, &gemm_flops);
    }
    Timing t = summarise(times, sgemm, calls, gemm_flops, steps);
    free(inputs), free(targets), free(logp), free(dlogp), free(times), free(sgemm);
    return t;
}

// One timed run is one generate() call on fresh random prompts; the cache is
// allocated once, outside the timing (as torch_ref.py allocates its cache).
static Timing bench_generate(const GPT *m, int B, int P, int N, float temperature, int runs,
                             int warmup) {
    int V = m->config.vocab_size;
    Error err;
    KVCache cache;
    if (kvcache_create(&cache, &m->config, B, &err)) error_exit(PROG, &err);
    int *prompt_mem = malloc((size_t)B * P * sizeof(int)), *prompt_lens = malloc(B * sizeof(int));
    const int **prompts = malloc(B * sizeof(int *));
    int *out_tokens = malloc((size_t)B * N * sizeof(int)), *out_lens = malloc(B * sizeof(int));
    float *out_logprobs = malloc((size_t)B * N * sizeof(float));
    double *times = malloc((size_t)runs * sizeof(double)), *sgemm = malloc((size_t)runs * sizeof(double));
    long calls = 0;
    double gemm_flops = 0.0;
    if (!prompt_mem || !prompt_lens || !prompts || !out_tokens || !out_lens || !out_logprobs || !times ||
        !sgemm) {
        fprintf(stderr, PROG ": out of memory\n");
        exit(1);
    }
    for (int b = 0; b < B; b++) prompts[b] = prompt_mem + (size_t)b * P, prompt_lens[b] = P;
    SamplerConfig sc = {.temperature = temperature, .top_k = 0, .top_p = 1.0f};
    Rng rng;
    rng_seed(&rng, 3);
    for (int r = 0; r < warmup + runs; r++) {
        for (int i = 0; i < B * P; i++) prompt_mem[i] = (int)rng_below(&rng, V);
        sgemm_clock_reset();
        double t0 = now_seconds();
        // stop_token -1 is never sampled: every sequence gets exactly N tokens.
        generate(m, &cache, prompts, prompt_lens, B, N, -1, &sc, &rng, out_tokens, out_logprobs,
                 out_lens);
        double dt = now_seconds() - t0;
        for (int b = 0; b < B; b++) {
            if (out_lens[b] != N) {
                fprintf(stderr, PROG ": sequence %d got %d tokens, not %d\n", b, out_lens[b], N);
                exit(1);
            }
        }
        if (r >= warmup) times[r - warmup] = dt, sgemm[r - warmup] = sgemm_clock_busiest(&calls, &gemm_flops);
    }
    Timing t = summarise(times, sgemm, calls, gemm_flops, runs);
    free(prompt_mem), free(prompt_lens), free(prompts), free(out_tokens), free(out_lens);
    free(out_logprobs), free(times), free(sgemm);
    kvcache_free(&cache);
    return t;
}

// bench_model_sgemm's lines: what the products alone take, a floor for this
// step on these threads as long as every matrix product is one of these
// cblas_sgemm calls. Nothing in bench_model.
static void print_sgemm_clock(const Timing *t, int train, const char *mode, const char *config, int threads) {
#ifdef SGEMM_CLOCK
    const char *unit = train ? "step" : "call";
    printf("inside cblas_sgemm, busiest thread: median %.2f ms per %s (%ld calls, %.2f GFLOP: %.1f GFLOP/s "
           "over the %d threads), %.0f%% of the median %s; outside: %.2f ms\n",
           t->sgemm * 1e3, unit, t->sgemm_calls, t->sgemm_flops * 1e-9, t->sgemm_flops / t->sgemm * 1e-9, threads,
           100.0 * t->sgemm / t->median, unit, (t->median - t->sgemm) * 1e3);
    printf("SGEMM mode=%s config=%s threads=%d median_ms=%.3f sgemm_ms=%.3f calls=%ld gflop=%.3f\n", mode, config,
           threads, t->median * 1e3, t->sgemm * 1e3, t->sgemm_calls, t->sgemm_flops * 1e-9);
#else
    (void)t, (void)train, (void)mode, (void)config, (void)threads;
#endif
}

int main(int argc, char **argv) {
    const char *config = "tiny", *mode = "train";
    int vocab = 2048, B = 8, T = 0, steps = 20, warmup = 3, P = 32, N = 64;
    float temperature = 1.0f;
    CliOption opts[] = {
        {"mode", CLI_STRING, &mode, 0, 0, "train (one training step) or generate (KV-cache sampling)"},
        {"config", CLI_STRING, &config, 0, 0, "model shape: smoke, tiny or small"},
        {"vocab", CLI_INT, &vocab, 256, 1 << 20, "vocabulary size"},
        {"batch", CLI_INT, &B, 1, 4096, "sequences per step (train) or per generate() call"},
        {"seq", CLI_INT, &T, 0, 8192, "train: tokens per sequence (0: the config's context)"},
        {"prompt", CLI_INT, &P, 1, 8192, "generate: prompt tokens per sequence"},
        {"new", CLI_INT, &N, 1, 8192, "generate: new tokens per sequence (all of them: no stop token)"},
        {"temperature", CLI_FLOAT, &temperature, 0, 100, "generate: sampling temperature (0: greedy)"},
        {"steps", CLI_INT, &steps, 1, 100000, "timed steps (train) or generate() calls"},
        {"warmup", CLI_INT, &warmup, 0, 1000, "untimed steps or calls first"},
    };
    int n_opts = sizeof opts / sizeof opts[0];
    Error err;
    int rc = cli_parse(PROG, opts, n_opts, argc, argv, NULL, &err);
    if (rc == CLI_HELP) cli_print_help(stdout, PROG, "Times training steps or KV-cache generation.", opts, n_opts);
    if (rc > 0) return 0;
    if (rc) error_exit_rc(PROG, rc, &err);
    int train = !strcmp(mode, "train");
    if (!train && strcmp(mode, "generate")) {
        fprintf(stderr, PROG ": --mode %s: expected train or generate\n", mode);
        return EXIT_USAGE;
    }
    GPTConfig cfg = {.vocab_size = vocab};
    if (gpt_config_named(&cfg, config, &err)) error_exit_rc(PROG, ERR_USAGE, &err);
    if (T == 0) T = cfg.max_seq_len;
    if (T > cfg.max_seq_len) {
        fprintf(stderr, PROG ": --seq %d exceeds the context %d\n", T, cfg.max_seq_len);
        return EXIT_USAGE;
    }
    if (!train && P + N > cfg.max_seq_len) {
        fprintf(stderr, PROG ": --prompt %d + --new %d exceeds the context %d\n", P, N, cfg.max_seq_len);
        return EXIT_USAGE;
    }
    GPT m;
    if (gpt_create(&m, &cfg, &err)) error_exit(PROG, &err);
    if (train && gpt_alloc_training(&m, B, T, &err)) error_exit(PROG, &err);
    gpt_init_random(&m, 1);
    int threads = omp_get_max_threads();
    const char *core = openblas_get_corename();
    if (train) {
        printf("config %s: d=%d L=%d H=%d T=%d vocab=%d batch=%dx%d params=%zu\n", config, cfg.n_embd,
               cfg.n_layer, cfg.n_head, T, vocab, B, T, m.num_params);
    } else {
        printf("config %s: d=%d L=%d H=%d T=%d vocab=%d params=%zu; generate batch %d, prompt %d, "
               "%d new tokens, temperature %g\n",
               config, cfg.n_embd, cfg.n_layer, cfg.n_head, cfg.max_seq_len, vocab, m.num_params, B,
               P, N, temperature);
    }
    printf("threads %d, OpenBLAS core %s\n", threads, core);
    fflush(stdout);
    Timing t;
    double tokens, flops;
    if (train) {
        t = bench_train(&m, B, T, steps, warmup);
        tokens = (double)B * T;
        flops = train_flops_per_token(&cfg, T) * tokens;
        printf("train step: median %.2f ms (min %.2f, max %.2f over %d steps), %.0f tokens/s, %.1f GFLOP/s\n",
               t.median * 1e3, t.min * 1e3, t.max * 1e3, steps, tokens / t.median,
               flops / t.median * 1e-9);
        printf("RESULT impl=ours mode=train config=%s threads=%d batch=%d seq=%d vocab=%d params=%zu "
               "runs=%d median_ms=%.3f min_ms=%.3f max_ms=%.3f tokens_per_s=%.1f gflops=%.2f "
               "blas_core=%s\n",
               config, threads, B, T, vocab, m.num_params, steps, t.median * 1e3, t.min * 1e3,
               t.max * 1e3, tokens / t.median, flops / t.median * 1e-9, core);
    } else {
        t = bench_generate(&m, B, P, N, temperature, steps, warmup);
        tokens = (double)B * N;
        flops = generate_flops(&cfg, B, P, N);
        printf("generate: median %.2f ms per call (min %.2f, max %.2f over %d calls), %.0f generated "
               "tokens/s, %.1f GFLOP/s\n",
               t.median * 1e3, t.min * 1e3, t.max * 1e3, steps, tokens / t.median,
               flops / t.median * 1e-9);
        printf("RESULT impl=ours mode=generate config=%s threads=%d batch=%d prompt=%d new=%d vocab=%d "
               "params=%zu temperature=%g runs=%d median_ms=%.3f min_ms=%.3f max_ms=%.3f "
               "tokens_per_s=%.1f gflops=%.2f blas_core=%s\n",
               config, threads, B, P, N, vocab, m.num_params, temperature, steps, t.median * 1e3,
               t.min * 1e3, t.max * 1e3, tokens / t.median, flops / t.median * 1e-9, core);
    }
    print_sgemm_clock(&t, train, mode, config, threads);
    gpt_free(&m);
    return 0;
}
