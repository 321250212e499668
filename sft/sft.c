// sft: supervised fine-tuning. Trains the pretrained model on chat-formatted
// (prompt, response) pairs with the loss on the response and end token only,
// so it learns to answer a prompt with one fortune and stop.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/data_dir.h"
#include "common/fileio.h"
#include "data/chat_template.h"
#include "model/adamw.h"
#include "model/generate.h"
#include "model/train_stage.h"
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

// What sft reports of a model before and after training.
typedef struct {
    float val_loss;
    double end_rate;
} SftFigures;

typedef struct {
    const Settings *s;
    Tokenizer *tok;
    GPT m;
    SftSet train, val;
    LmBatch batch;
    KVCache kv;
    CkptHeader h;
    size_t *perm, *idx;
    long perm_epoch;
    // Held-out sampling, allocated once: responses (eval_prompts or at least
    // 4, x ctx), their lengths and the sampler's log-probabilities (slots x ctx).
    int *gen_tokens, *gen_lens;
    float *gen_lps;
    float val_loss;        // the last validation loss
    SftFigures before;     // the init (pretrained) model's
} Sft;

static void sft_state_free(void *state) {
    Sft *p = state;
    tokenizer_free(p->tok);
    gpt_free(&p->m);
    sft_free(&p->train), sft_free(&p->val);
    lm_batch_free(&p->batch);
    kvcache_free(&p->kv);
    free(p->perm), free(p->idx);
    free(p->gen_tokens), free(p->gen_lens), free(p->gen_lps);
}

static int sft_load_data(Sft *p, const Settings *s, TrainTarget *t, Error *err) {
    memset(p, 0, sizeof *p);
    p->s = s, p->perm_epoch = -1, p->val_loss = NAN;
    if (tokenizer_load(&p->tok, s->tokenizer, err)) return -1;
    CkptHeader init;
    unsigned lm = 1u << CKPT_LM;
    CkptTokenizer tk = {s->tokenizer, tokenizer_fingerprint(p->tok), tokenizer_vocab_size(p->tok)};
    if (run_load_model(&p->m, &init, s->init, lm, &tk, err)) return -1;
    *t = (TrainTarget){&p->m, &p->h, tk, .log_every = s->eval_every};
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

// Writes a few held-out prompts with the model's responses to samples.txt.
static void write_samples(Sft *p, const Settings *s, long step) {
    sft_append_samples(s->run.out, step, &p->m, &p->kv, p->tok, &p->val, (uint64_t)s->run.seed + (uint64_t)step,
                       p->gen_tokens, p->gen_lens, p->gen_lps);
}

// End-token rate of the model over the first n (at most eval_prompts) held-out prompts.
static double end_rate(Sft *p, int n, int eot, uint64_t seed) {
    int ended = sft_sample_responses(&p->m, &p->kv, &p->val, 0, n, eot, seed, p->gen_tokens, p->gen_lens, p->gen_lps);
    return (double)ended / n;
}

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

// Loads the pairs and the init model, and measures that model: the figures
// the end compares with.
static int sft_setup(void *state, const void *settings, TrainTarget *t, Error *err) {
    Sft *p = state;
    if (sft_load_data(p, settings, t, err)) return -1;
    printf("sft: %zu training pairs, %zu held-out (%zu and %zu longer than the context skipped)\n",
           p->train.n, p->val.n, p->train.skipped_long, p->val.skipped_long);
    p->before = measure(p, p->s);
    return 0;
}

static int sft_step(void *state, uint64_t step, Rng *rng, StepReport *rep, Error *err) {
    (void)rng, (void)err;
    Sft *p = state;
    int T = next_batch(p, p->s, step);
    rep->loss = lm_batch_loss(&p->batch, p->s->run.batch, T, 1);
    rep->tokens = (double)p->s->run.batch * T;
    return 0;
}

// Validation loss and samples every --eval-every steps: the val_loss column.
static int sft_after(void *state, uint64_t step, StepReport *rep, Error *err) {
    (void)err;
    Sft *p = state;
    if (train_stage_due(step, p->s->eval_every, p->s->run.steps)) {
        p->val_loss = rep->cols[0] = validation_loss(p, p->s->run.batch);
        write_samples(p, p->s, (long)step);
    }
    snprintf(rep->status, sizeof rep->status, "loss %.3f | val %.3f | %.0f tok/s", rep->loss, p->val_loss,
             rep->tok_per_s);
    return 0;
}

static int sft_finish(void *state, double seconds, Error *err) {
    (void)err;
    Sft *p = state;
    const Settings *s = p->s;
    SftFigures after = measure(p, s);
    printf("sft: held-out response loss %.3f nats/token (pretrained model: %.3f)\n", after.val_loss,
           p->before.val_loss);
    printf("sft: end-token rate %.1f%% of %d held-out prompts at temperature 1 (pretrained model: %.1f%%)\n",
           100 * after.end_rate, s->eval_prompts, 100 * p->before.end_rate);
    printf("sft: done in %.1f s; wrote %s/model.bin\n", seconds, s->run.out);
    return 0;
}

int main(int argc, char **argv) {
    char pairs[4096], val_pairs[4096];
    Error err;
    if (data_dir_file(pairs, sizeof pairs, "sft.jsonl", &err) ||
        data_dir_file(val_pairs, sizeof val_pairs, "sft_val.jsonl", &err))
        error_exit("sft", &err);
    Settings s = {.data = pairs, .val = val_pairs};
    const RunOptionHelp help = {
        .out = "run folder for model.bin, metrics.csv, config.txt, samples.txt (--resume DIR sets it)",
        .seed = "seed for the order of pairs and sampling",
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
    Sft p;
    const TrainStage stage = {
        .prog = "sft", .summary = "Fine-tunes a language model on prompt/response pairs (loss on responses only).",
        TRAIN_STAGE_COMMAND(s, help, input_options, own), .schedule = 1,
        .state = &p, .setup = sft_setup, .free = sft_state_free, .columns = "val_loss",
        .step = sft_step, .after = sft_after, .finish = sft_finish,
    };
    return train_stage_main(&stage, argc, argv);
}
