// Times one training step (forward + backward + AdamW) of the model on random
// tokens and reports the median over repeated steps, tokens/s and the
// matrix-product GFLOP/s achieved. A benchmark, not a test: see BENCHMARKS.md.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "common/cli.h"
#include "common/progress.h"
#include "common/rng.h"
#include "model/adamw.h"
#include "model/gpt.h"
#include "model/loss.h"

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Model FLOPs of one training step per token (PaLM appendix B convention):
// 6 x (matmul parameters incl. the LM head) + 12 x L x T x C for attention.
static double flops_per_token(const GPTConfig *c, int T) {
    double C = c->n_embd, L = c->n_layer, V = c->vocab_size;
    return 6.0 * (12.0 * L * C * C + V * C) + 12.0 * L * T * C;
}

int main(int argc, char **argv) {
    const char *config = "tiny";
    int vocab = 2048, B = 8, T = 0, steps = 20, warmup = 3;
    CliOption opts[] = {
        {"config", CLI_STRING, &config, 0, 0, "model shape: smoke, tiny or small"},
        {"vocab", CLI_INT, &vocab, 256, 1 << 20, "vocabulary size"},
        {"batch", CLI_INT, &B, 1, 4096, "sequences per step"},
        {"seq", CLI_INT, &T, 0, 8192, "tokens per sequence (0: the config's context)"},
        {"steps", CLI_INT, &steps, 1, 100000, "timed steps"},
        {"warmup", CLI_INT, &warmup, 0, 1000, "untimed steps first"},
    };
    int n_opts = sizeof opts / sizeof opts[0];
    Error err;
    int rc = cli_parse("bench_model", opts, n_opts, argc, argv, NULL, &err);
    if (rc == 1) {
        cli_print_help(stdout, "bench_model", "Times forward+backward+AdamW training steps.", opts, n_opts);
        return 0;
    }
    if (rc) error_exit("bench_model", &err);
    GPTConfig cfg = {.vocab_size = vocab};
    if (gpt_config_named(&cfg, config, &err)) error_exit("bench_model", &err);
    if (T == 0) T = cfg.max_seq_len;
    if (T > cfg.max_seq_len) {
        fprintf(stderr, "bench_model: --seq %d exceeds the context %d\n", T, cfg.max_seq_len);
        return 1;
    }
    GPT m;
    if (gpt_create(&m, &cfg, &err) || gpt_alloc_training(&m, B, T, &err)) error_exit("bench_model", &err);
    gpt_init_random(&m, 1);
    int *inputs = malloc((size_t)B * T * sizeof(int)), *targets = malloc((size_t)B * T * sizeof(int));
    float *logp = malloc((size_t)B * T * sizeof(float)), *dlogp = malloc((size_t)B * T * sizeof(float));
    double *times = malloc((size_t)steps * sizeof(double));
    Rng rng;
    rng_seed(&rng, 2);
    for (int i = 0; i < B * T; i++) inputs[i] = (int)rng_below(&rng, vocab), targets[i] = (int)rng_below(&rng, vocab);
    AdamWConfig opt = adamw_defaults();
    for (int s = 0; s < warmup + steps; s++) {
        double t0 = now_seconds();
        gpt_forward(&m, inputs, B, T, 1);
        logprob_forward(logp, m.acts.logits, targets, B * T, vocab, 1.0f);
        masked_nll(logp, NULL, B * T, dlogp);
        logprob_backward(m.bw.dlogits, m.acts.logits, targets, dlogp, B * T, vocab, 1.0f);
        gpt_zero_grad(&m);
        gpt_backward(&m, inputs, 1, 0);
        gpt_clip_grad_norm(&m, 1.0f);
        adamw_update(&m, &opt, 1e-4f, s + 1);
        if (s >= warmup) times[s - warmup] = now_seconds() - t0;
    }
    qsort(times, steps, sizeof(double), compare_double);
    double med = times[steps / 2], tokens = (double)B * T;
    printf("config %s: d=%d L=%d H=%d T=%d vocab=%d batch=%dx%d params=%zu\n", config, cfg.n_embd,
           cfg.n_layer, cfg.n_head, T, vocab, B, T, m.num_params);
    printf("threads %d, OpenBLAS core %s\n", omp_get_max_threads(), openblas_get_corename());
    printf("train step: median %.2f ms (min %.2f, max %.2f over %d steps), %.0f tokens/s, %.1f GFLOP/s\n",
           med * 1e3, times[0] * 1e3, times[steps - 1] * 1e3, steps, tokens / med,
           flops_per_token(&cfg, T) * tokens / med * 1e-9);
    free(inputs), free(targets), free(logp), free(dlogp), free(times);
    gpt_free(&m);
    return 0;
}
