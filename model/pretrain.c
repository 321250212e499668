// pretrain: teaches the model English from the fortunes corpus. Records are
// joined by the end-of-text token; each batch row is a random window.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/data_dir.h"
#include "common/fileio.h"
#include "common/jsonl.h"
#include "model/adamw.h"
#include "model/generate.h"
#include "model/lm_batch.h"
#include "model/train_stage.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    RunSettings run; // the options every training stage has (model/run.h)
    const char *tokenizer, *data;
    int eval_every, eval_batches;
} Settings;

// Defaults per named configuration; the smoke run takes seconds.
static int apply_config(void *settings, const char *name, Error *err) {
    Settings *s = settings;
    s->run.config = name;
    if (!strcmp(name, "smoke")) {
        s->run.steps = 60, s->run.batch = 4, s->run.lr = 3e-3f, s->run.warmup = 10, s->eval_every = 20;
        s->eval_batches = 2, s->run.save_every = 30;
    } else if (!strcmp(name, "tiny")) {
        s->run.steps = 1400, s->run.batch = 16, s->run.lr = 2e-3f, s->run.warmup = 100, s->eval_every = 200;
        s->eval_batches = 8, s->run.save_every = 700;
    } else if (!strcmp(name, "small")) {
        s->run.steps = 6000, s->run.batch = 16, s->run.lr = 1e-3f, s->run.warmup = 200, s->eval_every = 500;
        s->eval_batches = 8, s->run.save_every = 1000;
    } else {
        return error_set(err, "--config: unknown config '%s' (expected smoke, tiny or small)", name);
    }
    return 0;
}

typedef struct {
    int *train, *val;
    size_t n_train, n_val;
} Corpus;

static int append_tokens(int **buf, size_t *n, size_t *cap, const int *ids, size_t k, int eot) {
    if (*n + k + 1 > *cap) {
        size_t c = (*cap ? *cap * 2 : 1 << 16);
        while (c < *n + k + 1) c *= 2;
        int *nb = realloc(*buf, c * sizeof(int));
        if (!nb) return -1;
        *buf = nb, *cap = c;
    }
    memcpy(*buf + *n, ids, k * sizeof(int));
    *n += k;
    (*buf)[(*n)++] = eot;
    return 0;
}

// Tokenizes the "text" of every record, each followed by the end-of-text
// token; records whose "split" is "val" form the validation set.
static int load_corpus(Corpus *c, const Tokenizer *tok, const char *path, Error *err) {
    memset(c, 0, sizeof *c);
    JsonlReader r;
    if (jsonl_open(&r, path, err)) return -1;
    size_t cap_t = 0, cap_v = 0;
    int eot = tokenizer_special(tok, TOK_ENDOFTEXT), rc;
    cJSON *o;
    while ((rc = jsonl_next(&r, &o, err)) == 1) {
        const char *text = jsonl_string(&r, o, "text", err);
        const cJSON *split = cJSON_GetObjectItemCaseSensitive(o, "split");
        int is_val = cJSON_IsString(split) && !strcmp(split->valuestring, "val");
        int *ids = NULL;
        size_t n = 0;
        Error e2;
        rc = 0;
        if (!text) rc = -1;
        else if (tokenizer_encode(tok, text, strlen(text), 0, &ids, &n, &e2))
            rc = error_set(err, "%s:%ld: %s", path, r.line, e2.msg);
        else if (is_val ? append_tokens(&c->val, &c->n_val, &cap_v, ids, n, eot)
                        : append_tokens(&c->train, &c->n_train, &cap_t, ids, n, eot))
            rc = error_set(err, "out of memory tokenizing %s", path);
        free(ids);
        cJSON_Delete(o);
        if (rc) break;
    }
    jsonl_close(&r);
    if (rc == 0 && c->n_val == 0)
        rc = error_set(err, "%s: no validation records (mark some with \"split\": \"val\")", path);
    if (rc) {
        free(c->train), free(c->val);
        memset(c, 0, sizeof *c);
    }
    return rc;
}

// Entropy (nats/token) of the unigram distribution of the tokens: the loss of
// a model that knows token frequencies and nothing else.
static double unigram_entropy(const int *tokens, size_t n, int V) {
    size_t *count = calloc(V, sizeof(size_t));
    for (size_t i = 0; i < n; i++) count[tokens[i]]++;
    double h = 0;
    for (int v = 0; v < V; v++)
        if (count[v]) h -= (double)count[v] / n * log((double)count[v] / n);
    free(count);
    return h;
}

// Fills B windows of T+1 tokens: inputs and the targets shifted by one.
static void fill_window(int *inputs, int *targets, const int *tokens, size_t start, int T) {
    memcpy(inputs, tokens + start, T * sizeof(int));
    memcpy(targets, tokens + start + 1, T * sizeof(int));
}

// Mean loss over evenly spaced windows of the validation tokens (the same
// windows every time, so validation losses are comparable across steps).
static float validation_loss(LmBatch *b, const Corpus *c, int n_batches) {
    int B = b->max_B, T = b->max_T;
    size_t span = c->n_val - T - 1;
    int n_windows = n_batches * B;
    double sum = 0;
    for (int k = 0; k < n_batches; k++) {
        for (int i = 0; i < B; i++) {
            size_t start = span * (size_t)(k * B + i) / n_windows;
            fill_window(b->inputs + i * T, b->targets + i * T, c->val, start, T);
        }
        sum += lm_batch_loss(b, B, T, 0);
    }
    return (float)(sum / n_batches);
}

// Appends continuations of the starts of a few validation records to samples.txt.
static void write_samples(const GPT *m, KVCache *kv, const Tokenizer *tok, const Corpus *c,
                          const char *out_dir, long step, int seed) {
    enum { N = 4, PROMPT = 4, NEW = 48 };
    int eot = tokenizer_special(tok, TOK_ENDOFTEXT);
    int prompts[N][PROMPT + 1], lens[N], out[N * NEW], out_lens[N];
    float lps[N * NEW];
    const int *pp[N];
    size_t at = 0;
    for (int i = 0; i < N; i++) { // the first tokens of the i-th validation record
        prompts[i][0] = eot;
        lens[i] = 1;
        while (lens[i] <= PROMPT && at < c->n_val && c->val[at] != eot) prompts[i][lens[i]++] = c->val[at++];
        while (at < c->n_val && c->val[at] != eot) at++;
        at++;
        pp[i] = prompts[i];
    }
    SamplerConfig sc = {0.8f, 40, 1.0f};
    Rng rng;
    rng_seed(&rng, (uint64_t)seed * 1000003u + (uint64_t)step);
    generate(m, kv, pp, lens, N, NEW, eot, &sc, &rng, out, lps, out_lens);
    char path[4096];
    Error err;
    if (path_join(path, sizeof path, out_dir, "samples.txt", &err)) return;
    FILE *fp = fopen(path, "a");
    if (!fp) return;
    fprintf(fp, "== step %ld (temperature 0.8, top-k 40) ==\n", step);
    for (int i = 0; i < N; i++) {
        char *a = NULL, *b = NULL;
        size_t la, lb;
        if (tokenizer_decode(tok, prompts[i] + 1, lens[i] - 1, &a, &la, &err) == 0 &&
            tokenizer_decode(tok, out + i * NEW, out_lens[i], &b, &lb, &err) == 0)
            fprintf(fp, "[%s]%s\n", a, b);
        free(a), free(b);
    }
    fclose(fp);
}

typedef struct {
    const Settings *s;
    GPT m;
    Tokenizer *tok;
    Corpus corpus;
    LmBatch batch;
    KVCache kv;
    CkptHeader h;
    double entropy; // of the validation tokens' unigram distribution
    float val;      // the last validation loss
} Pretrain;

static void pretrain_free(void *state) {
    Pretrain *p = state;
    gpt_free(&p->m);
    tokenizer_free(p->tok);
    free(p->corpus.train), free(p->corpus.val);
    lm_batch_free(&p->batch);
    kvcache_free(&p->kv);
}

static int pretrain_setup(void *state, const void *settings, TrainTarget *t, Error *err) {
    Pretrain *p = state;
    const Settings *s = settings;
    memset(p, 0, sizeof *p);
    p->s = s, p->val = NAN;
    if (tokenizer_load(&p->tok, s->tokenizer, err)) return -1;
    if (load_corpus(&p->corpus, p->tok, s->data, err)) return -1;
    GPTConfig cfg = {.vocab_size = tokenizer_vocab_size(p->tok)};
    if (gpt_config_named(&cfg, s->run.config, err)) return -1;
    int T = cfg.max_seq_len;
    if (p->corpus.n_train < (size_t)T + 2 || p->corpus.n_val < (size_t)T + 2)
        return error_set(err, "%s: too little text for windows of %d tokens (%zu train, %zu validation tokens)",
                         s->data, T, p->corpus.n_train, p->corpus.n_val);
    if (gpt_create(&p->m, &cfg, err) || gpt_alloc_training(&p->m, s->run.batch, T, err)) return -1;
    gpt_init_random(&p->m, (unsigned long long)s->run.seed);
    if (lm_batch_alloc(&p->batch, &p->m, s->run.batch, T, err)) return -1;
    for (int i = 0; i < s->run.batch * T; i++) p->batch.weights[i] = 1.0f; // every token counts
    if (kvcache_create(&p->kv, &cfg, 4, err)) return -1;
    if (ckpt_header_init(&p->h, CKPT_LM, &cfg, "pretrain", err)) return -1;
    CkptTokenizer tk = {s->tokenizer, tokenizer_fingerprint(p->tok), tokenizer_vocab_size(p->tok)};
    p->h.tokenizer_fp = tk.fingerprint;
    *t = (TrainTarget){&p->m, &p->h, tk, .log_every = s->eval_every};
    return 0;
}

static int pretrain_begin(void *state, uint64_t step, Error *err) {
    (void)step, (void)err;
    Pretrain *p = state;
    p->entropy = unigram_entropy(p->corpus.val, p->corpus.n_val, p->batch.V);
    printf("pretrain: %s config, %zu parameters, %zu train / %zu validation tokens\n", p->s->run.config,
           p->m.num_params, p->corpus.n_train, p->corpus.n_val);
    printf("pretrain: unigram entropy of the validation tokens: %.3f nats/token\n", p->entropy);
    return 0;
}

// Draws each row of the batch as a random window of the training tokens.
static void sample_batch(LmBatch *b, const Corpus *c, Rng *rng) {
    int T = b->max_T;
    for (int i = 0; i < b->max_B; i++) {
        size_t start = rng_below(rng, c->n_train - T - 1);
        fill_window(b->inputs + i * T, b->targets + i * T, c->train, start, T);
    }
}

static int pretrain_step(void *state, uint64_t step, Rng *rng, StepReport *rep, Error *err) {
    (void)step, (void)err;
    Pretrain *p = state;
    LmBatch *b = &p->batch;
    sample_batch(b, &p->corpus, rng);
    rep->loss = lm_batch_loss(b, b->max_B, b->max_T, 1);
    rep->tokens = (double)b->max_B * b->max_T;
    return 0;
}

// Validation loss and samples every --eval-every steps: the val_loss column.
static int pretrain_after(void *state, uint64_t step, StepReport *rep, Error *err) {
    (void)err;
    Pretrain *p = state;
    const Settings *s = p->s;
    if (train_stage_due(step, s->eval_every, s->run.steps)) {
        p->val = rep->cols[0] = validation_loss(&p->batch, &p->corpus, s->eval_batches);
        write_samples(&p->m, &p->kv, p->tok, &p->corpus, s->run.out, (long)step, s->run.seed);
    }
    snprintf(rep->status, sizeof rep->status, "loss %.3f | val %.3f | %.0f tok/s", rep->loss, p->val, rep->tok_per_s);
    return 0;
}

static int pretrain_finish(void *state, double seconds, Error *err) {
    (void)err;
    Pretrain *p = state;
    printf("pretrain: done in %.1f s: validation loss %.3f nats/token, unigram entropy %.3f (%.3f below)\n",
           seconds, p->val, p->entropy, p->entropy - p->val);
    printf("pretrain: wrote %s/model.bin\n", p->s->run.out);
    return 0;
}

int main(int argc, char **argv) {
    char corpus[4096];
    Error err;
    if (data_dir_file(corpus, sizeof corpus, "fortunes.jsonl", &err)) error_exit("pretrain", &err);
    Settings s = {.data = corpus};
    const RunOptionHelp help = {
        .config = "defaults and model shape: smoke, tiny or small",
        .out = "run folder for model.bin, metrics.csv, config.txt, samples.txt (--resume DIR sets it)",
        .seed = "seed for initialisation and batches",
        .batch = "sequences per step (each one context long)",
    };
    const CliOption input_options[] = {
        {"tokenizer", CLI_STRING | CLI_REQUIRED, &s.tokenizer, 0, 0, "tokenizer.bin from `bpe train`"},
        {"data", CLI_STRING, &s.data, 0, 0, "JSONL corpus: {\"text\", \"split\": \"train\"|\"val\"}"},
    };
    const CliOption own[] = {
        {"eval-every", CLI_INT, &s.eval_every, 1, 10000000, "steps between validation and samples"},
        {"eval-batches", CLI_INT, &s.eval_batches, 1, 10000, "validation batches"},
    };
    Pretrain p;
    const TrainStage stage = {
        .prog = "pretrain", .summary = "Pretrains a language model on a JSONL corpus.",
        TRAIN_STAGE_COMMAND(s, help, input_options, own), .schedule = 1,
        .state = &p, .setup = pretrain_setup, .free = pretrain_free, .columns = "val_loss",
        .begin = pretrain_begin, .step = pretrain_step, .after = pretrain_after, .finish = pretrain_finish,
    };
    return train_stage_main(&stage, argc, argv);
}
