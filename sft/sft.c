// sft: supervised fine-tuning. Trains the pretrained model on chat-formatted
// (prompt, response) pairs with the loss on the response and end token only,
// so it learns to answer a prompt with one fortune and stop.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/data_dir.h"
#include "common/csv.h"
#include "common/fileio.h"
#include "common/progress.h"
#include "data/chat_template.h"
#include "model/adamw.h"
#include "model/generate.h"
#include "model/run.h"
#include "sft/sft_data.h"

typedef struct {
    RunSettings run; // the options every training stage has (model/run.h)
    const char *init, *tokenizer, *data, *val;
    int eval_every, eval_prompts;
} Settings;

static int apply_config(void *settings, const char *name, Error *err) {
    Settings *s = settings;
    s->run.config = name;
    if (!strcmp(name, "smoke")) {
        s->run.steps = 40, s->run.batch = 4, s->run.lr = 1e-3f, s->run.warmup = 5, s->eval_every = 20;
        s->run.save_every = 20, s->eval_prompts = 16;
    } else if (!strcmp(name, "tiny")) {
        s->run.steps = 600, s->run.batch = 16, s->run.lr = 5e-4f, s->run.warmup = 30, s->eval_every = 100;
        s->run.save_every = 200, s->eval_prompts = 200;
    } else if (!strcmp(name, "small")) {
        s->run.steps = 1500, s->run.batch = 16, s->run.lr = 3e-4f, s->run.warmup = 50, s->eval_every = 250;
        s->run.save_every = 500, s->eval_prompts = 200;
    } else {
        return error_set(err, "--config: unknown config '%s' (expected smoke, tiny or small)", name);
    }
    return 0;
}

typedef struct {
    Tokenizer *tok;
    GPT m;
    SftSet train, val;
    LmBatch batch;
    KVCache kv;
    CkptHeader h;
    CkptTokenizer tk; // what the checkpoints and a resumed run are checked against
    CsvWriter csv;
    size_t *perm, *idx;
    long perm_epoch;
    // Held-out sampling, allocated once: responses (eval_prompts or at least
    // 4, x ctx), their lengths and the sampler's log-probabilities (slots x ctx).
    int *gen_tokens, *gen_lens;
    float *gen_lps;
} Sft;

static void sft_state_free(Sft *p) {
    tokenizer_free(p->tok);
    gpt_free(&p->m);
    sft_free(&p->train), sft_free(&p->val);
    lm_batch_free(&p->batch);
    kvcache_free(&p->kv);
    csv_close(&p->csv);
    free(p->perm), free(p->idx);
    free(p->gen_tokens), free(p->gen_lens), free(p->gen_lps);
}

static int sft_setup(Sft *p, const Settings *s, Error *err) {
    memset(p, 0, sizeof *p);
    p->perm_epoch = -1;
    if (tokenizer_load(&p->tok, s->tokenizer, err)) return -1;
    CkptHeader init;
    unsigned lm = 1u << CKPT_LM;
    p->tk = (CkptTokenizer){s->tokenizer, tokenizer_fingerprint(p->tok), tokenizer_vocab_size(p->tok)};
    if (run_load_model(&p->m, &init, s->init, lm, &p->tk, err)) return -1;
    int ctx = p->m.config.max_seq_len;
    // A pair of n ids trains on n-1 positions, so n may be one more than the context.
    if (sft_load(&p->train, p->tok, s->data, ctx, err) || sft_load(&p->val, p->tok, s->val, ctx, err))
        return -1;
    if (gpt_alloc_training(&p->m, s->run.batch, ctx, err) || lm_batch_alloc(&p->batch, &p->m, s->run.batch, ctx, err) ||
        kvcache_create(&p->kv, &p->m.config, 16, err))
        return -1;
    p->perm = malloc(p->train.n * sizeof(size_t));
    p->idx = malloc((size_t)s->run.batch * sizeof(size_t));
    int n_gen = s->eval_prompts > 4 ? s->eval_prompts : 4;
    p->gen_tokens = malloc((size_t)n_gen * ctx * sizeof(int));
    p->gen_lens = malloc((size_t)n_gen * sizeof(int));
    p->gen_lps = malloc((size_t)p->kv.slots * ctx * sizeof(float));
    if (!p->perm || !p->idx || !p->gen_tokens || !p->gen_lens || !p->gen_lps) return error_set(err, "out of memory");
    if (ckpt_header_init(&p->h, CKPT_LM, &p->m.config, "sft", err)) return -1;
    p->h.tokenizer_fp = init.tokenizer_fp;
    return ckpt_set_parent(&p->h, s->init, init.fingerprint, err);
}

// Response-token loss over the whole validation set, weighted by token count.
static float validation_loss(Sft *p, int B) {
    int pad = tokenizer_special(p->tok, TOK_PAD);
    double loss_sum = 0, weight_sum = 0;
    for (size_t at = 0; at < p->val.n; at += B) {
        int rows = p->val.n - at < (size_t)B ? (int)(p->val.n - at) : B;
        for (int i = 0; i < rows; i++) p->idx[i] = at + i;
        int T = sft_fill_batch(&p->batch, &p->val, p->idx, rows, pad);
        double w = 0;
        for (int i = 0; i < rows * T; i++) w += p->batch.weights[i];
        loss_sum += lm_batch_loss(&p->batch, rows, T, 0) * w;
        weight_sum += w;
    }
    return (float)(loss_sum / weight_sum);
}

// Samples one response (temperature 1, up to the context) for each of `count`
// validation prompts from `first`, kv->slots at a time. out_tokens holds
// count * ctx ids and lps kv->slots * ctx floats of scratch; returns how many
// responses ended with the end token.
static int sample_responses(const GPT *m, KVCache *kv, const SftSet *val, size_t first, int count,
                            int eot, uint64_t seed, int *out_tokens, int *out_lens, float *lps) {
    int ctx = m->config.max_seq_len, ended = 0;
    SamplerConfig sc = {1.0f, 0, 1.0f};
    Rng rng;
    rng_seed(&rng, seed);
    for (int at = 0; at < count; at += kv->slots) {
        int B = count - at < kv->slots ? count - at : kv->slots;
        const int *prompts[64];
        int lens[64];
        for (int i = 0; i < B; i++) {
            const SftExample *e = &val->ex[(first + at + i) % val->n];
            prompts[i] = e->ids, lens[i] = e->response_start;
        }
        generate(m, kv, prompts, lens, B, ctx, eot, &sc, &rng, out_tokens + (size_t)at * ctx, lps, out_lens + at);
        for (int i = 0; i < B; i++)
            ended += out_lens[at + i] > 0 && out_tokens[(size_t)(at + i) * ctx + out_lens[at + i] - 1] == eot;
    }
    return ended;
}

// Writes a few held-out prompts with the model's responses to samples.txt.
static void write_samples(Sft *p, const Settings *s, long step) {
    // Four held-out prompts, or all of them when the held-out file has fewer
    // (sft_load refuses a file with none).
    int N = p->val.n < 4 ? (int)p->val.n : 4;
    int ctx = p->m.config.max_seq_len, eot = tokenizer_special(p->tok, TOK_ENDOFTEXT);
    int *tokens = p->gen_tokens, *lens = p->gen_lens;
    sample_responses(&p->m, &p->kv, &p->val, 0, N, eot, (uint64_t)s->run.seed + (uint64_t)step, tokens, lens,
                     p->gen_lps);
    char path[4096];
    Error err;
    FILE *fp = path_join(path, sizeof path, s->run.out, "samples.txt", &err) ? NULL : fopen(path, "a");
    if (fp) fprintf(fp, "== step %ld (temperature 1) ==\n", step);
    for (int i = 0; fp && i < N; i++) {
        const SftExample *e = &p->val.ex[i];
        char *prompt = NULL, *response = NULL;
        size_t len;
        if (tokenizer_decode(p->tok, e->ids, e->response_start, &prompt, &len, &err) == 0 &&
            chat_response_text(p->tok, tokens + (size_t)i * ctx, lens[i], &response, &err) == 0) {
            int ended = lens[i] > 0 && tokens[(size_t)i * ctx + lens[i] - 1] == eot;
            fprintf(fp, "prompt:   %s\nresponse: %s%s\n", prompt, response, ended ? "" : " [no end token]");
        }
        free(prompt), free(response);
    }
    if (fp) fclose(fp);
}

// End-token rate of the model over the first n (at most eval_prompts) held-out prompts.
static double end_rate(Sft *p, int n, int eot, uint64_t seed) {
    int ended = sample_responses(&p->m, &p->kv, &p->val, 0, n, eot, seed, p->gen_tokens, p->gen_lens, p->gen_lps);
    return (double)ended / n;
}

static const char *METRICS_HEADER = "step,tokens,lr,loss,val_loss,grad_norm,tok_per_s,elapsed_s";

typedef struct {
    float val_loss;
    double end_rate;
} SftFigures;

// Held-out response loss and end-token rate of the model as it is now.
static SftFigures measure(Sft *p, const Settings *s) {
    SftFigures f;
    f.val_loss = validation_loss(p, s->run.batch);
    f.end_rate = end_rate(p, s->eval_prompts, tokenizer_special(p->tok, TOK_ENDOFTEXT), (uint64_t)s->run.seed);
    return f;
}

// Draws the next batch of the shuffled walk through the training pairs.
static int next_batch(Sft *p, const Settings *s, uint64_t step) {
    for (int i = 0; i < s->run.batch; i++)
        p->idx[i] = shuffled_index(p->train.n, (uint64_t)s->run.seed, step * s->run.batch + i, p->perm, &p->perm_epoch);
    return sft_fill_batch(&p->batch, &p->train, p->idx, s->run.batch, tokenizer_special(p->tok, TOK_PAD));
}

// The run folder, --resume, --force and the inputs the run-folder guard checks.
static RunFolderRequest folder_request(const Settings *s, const char **inputs) {
    const char *const read[] = {s->init, s->tokenizer, s->data, s->val};
    memcpy(inputs, read, sizeof read);
    return run_folder_request(&s->run, inputs, (int)(sizeof read / sizeof read[0]));
}

// Returns 0 when the run completed, 1 when it stopped before its last step
// with a checkpoint to resume from (SIGINT, SIGTERM, --stop-after), -1 on error.
static int sft_run(Sft *p, const Settings *s, const CliOption *opts, int n_opts, Error *err) {
    printf("sft: %zu training pairs, %zu held-out (%zu and %zu longer than the context skipped)\n",
           p->train.n, p->val.n, p->train.skipped_long, p->val.skipped_long);
    SftFigures before = measure(p, s); // the init (pretrained) model, before any step
    const char *inputs[4];
    RunFolderRequest folder = folder_request(s, inputs);
    RunLoop loop = run_loop("sft", &s->run, METRICS_HEADER, opts, n_opts, &folder);
    loop.tokenizer = p->tk;
    Rng rng;
    uint64_t step;
    int begun = run_begin(&loop, &p->m, &p->h, &step, &rng, NULL, &p->csv, err);
    if (begun) return begun < 0 ? -1 : 0; // 1: the run was already complete
    Progress prog;
    progress_init(&prog, stdout, "sft", (long)step, s->run.steps, s->eval_every);
    double t_start = now_seconds(), t_last = t_start, tokens = 0;
    float val = NAN;
    AdamWConfig opt = adamw_defaults();
    opt.weight_decay = s->run.weight_decay;
    while ((long)step < s->run.steps) {
        int T = next_batch(p, s, step);
        float loss = lm_batch_loss(&p->batch, s->run.batch, T, 1);
        float lr = lr_warmup_cosine((long)step, s->run.warmup, s->run.steps, s->run.lr, s->run.lr * s->run.min_lr_frac);
        float norm = run_optimizer_step(&loop, &p->m, &opt, loss, s->run.grad_clip, lr, step, err);
        if (norm < 0) return -1;
        step++;
        tokens += (double)s->run.batch * T;
        double now = now_seconds(), tps = (double)s->run.batch * T / (now - t_last);
        int eval_now = step % s->eval_every == 0 || (long)step == s->run.steps;
        if (eval_now) {
            val = validation_loss(p, s->run.batch);
            write_samples(p, s, (long)step);
        }
        t_last = now_seconds(); // evaluation time does not count against tokens/s
        double row[8] = {(double)step, tokens, lr, loss, eval_now ? val : NAN, norm, tps, now - t_start};
        csv_row(&p->csv, row);
        progress_update(&prog, (long)step, "loss %.3f | val %.3f | %.0f tok/s", loss, val, tps);
        int rc = run_after_step(&loop, &p->m, &p->h, step, &rng, NULL, err);
        if (rc) return rc > 0 ? 1 : -1;
    }
    progress_done(&prog);
    SftFigures after = measure(p, s);
    printf("sft: held-out response loss %.3f nats/token (pretrained model: %.3f)\n", after.val_loss, before.val_loss);
    printf("sft: end-token rate %.1f%% of %d held-out prompts at temperature 1 (pretrained model: %.1f%%)\n",
           100 * after.end_rate, s->eval_prompts, 100 * before.end_rate);
    printf("sft: done in %.1f s; wrote %s/model.bin\n", now_seconds() - t_start, s->run.out);
    return 0;
}

int main(int argc, char **argv) {
    char pairs[4096], val_pairs[4096];
    Error err;
    if (data_dir_file(pairs, sizeof pairs, "sft.jsonl", &err) ||
        data_dir_file(val_pairs, sizeof val_pairs, "sft_val.jsonl", &err))
        error_exit("sft", &err);
    Settings s = {.data = pairs, .val = val_pairs};
    run_settings_defaults(&s.run);
    apply_config(&s, "tiny", &err);
    const RunOptionHelp help = {
        .config = "defaults: smoke, tiny or small (the shape comes from --init)",
        .out = "run folder for model.bin, metrics.csv, config.txt, samples.txt (--resume DIR sets it)",
        .seed = "seed for the order of pairs and sampling",
        .steps = "optimiser steps",
        .batch = "pairs per step",
    };
    const CliOption input_options[] = {
        {"init", CLI_STRING | CLI_REQUIRED, &s.init, 0, 0, "pretrained language-model checkpoint"},
        {"tokenizer", CLI_STRING | CLI_REQUIRED, &s.tokenizer, 0, 0, "tokenizer.bin the init checkpoint was trained with"},
        {"data", CLI_STRING, &s.data, 0, 0, "training pairs, JSONL {\"prompt\", \"response\"}"},
        {"val", CLI_STRING, &s.val, 0, 0, "held-out pairs, same format"},
    };
    const CliOption own[] = {
        {"eval-every", CLI_INT, &s.eval_every, 1, 10000000, "steps between validation and samples"},
        {"eval-prompts", CLI_INT, &s.eval_prompts, 1, 100000, "held-out prompts for the end-token rate"},
    };
    CliOption opts[RUN_MAX_OPTIONS];
    int n_opts = run_training_options(opts, &s.run, &help, input_options, sizeof input_options / sizeof *input_options,
                                      1, own, sizeof own / sizeof *own);
    char *stored = NULL;
    int rc = run_parse_options("sft", "Fine-tunes a language model on prompt/response pairs (loss on responses only).",
                               opts, n_opts, argc, argv, cli_peek(argc, argv, "resume"), apply_config, &s, &stored, &err);
    if (rc > 0) return 0;
    if (rc) error_exit_rc("sft", rc, &err);
    if (s.run.resume) s.run.out = s.run.resume;
    const char *inputs[4];
    RunFolderRequest folder = folder_request(&s, inputs);
    if (run_folder_check(&folder, &err)) error_exit("sft", &err); // before loading anything
    s.run.threads = run_set_threads(s.run.threads); // config.txt records the count used
    Sft p;
    int outcome = sft_setup(&p, &s, &err) ? -1 : sft_run(&p, &s, opts, n_opts, &err);
    sft_state_free(&p);
    free(stored);
    if (outcome < 0) error_exit("sft", &err);
    return stdout_finish("sft", outcome ? EXIT_STOPPED : 0);
}
