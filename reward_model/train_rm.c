// train_rm: trains a reward model on preference pairs with the Bradley–Terry
// loss. The trunk starts from the SFT checkpoint, the scalar head from zero;
// at the end, rewards are normalised so that responses sampled from the SFT
// policy (the responses of the training pairs) score mean 0 and std 1.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bucket.h"
#include "common/fileio.h"
#include "data/prefs_io.h"
#include "model/adamw.h"
#include "model/train_stage.h"
#include "reward_model/reward_model.h"

typedef struct {
    RunSettings run; // the options every training stage has (model/run.h)
    const char *init, *tokenizer, *pairs, *val;
    int eval_every;
    float margin;
} Settings;

static int apply_config(void *settings, const char *name, Error *err) {
    Settings *s = settings;
    RunSettings *r = &s->run;
    r->config = name;
    if (!strcmp(name, "smoke")) {
        r->steps = 30, r->batch = 4, r->lr = 1e-3f, r->warmup = 3, s->eval_every = 15, r->save_every = 15;
    } else if (!strcmp(name, "tiny")) {
        r->steps = 1600, r->batch = 16, r->lr = 5e-4f, r->warmup = 40, s->eval_every = 200, r->save_every = 400;
    } else if (!strcmp(name, "small")) {
        r->steps = 600, r->batch = 16, r->lr = 1e-4f, r->warmup = 30, s->eval_every = 100, r->save_every = 200;
    } else {
        return error_set(err, "--config: unknown config '%s' (expected smoke, tiny or small)", name);
    }
    return 0;
}

typedef struct {
    int *ids[2]; // chosen, rejected
    int len[2];
    int has_gold;
    double gold[2];
} RmPair;

typedef struct {
    RmPair *p;
    size_t n;
} RmPairs;

static void pairs_free(RmPairs *set) {
    for (size_t i = 0; i < set->n; i++) free(set->p[i].ids[0]), free(set->p[i].ids[1]);
    free(set->p);
    memset(set, 0, sizeof *set);
}

static int pairs_load(RmPairs *set, const Tokenizer *tok, const char *path, int max_len, Error *err) {
    memset(set, 0, sizeof *set);
    PrefPair *raw;
    size_t n;
    if (prefs_load(path, &raw, &n, err)) return -1;
    if (n == 0) return error_set(err, "%s: no preference pairs", path);
    set->p = calloc(n, sizeof *set->p);
    int rc = set->p ? 0 : error_set(err, "out of memory");
    for (size_t i = 0; i < n && rc == 0; i++) {
        RmPair *q = &set->p[set->n];
        Error e2;
        if (rm_encode(tok, raw[i].prompt, raw[i].chosen, max_len, &q->ids[0], &q->len[0], &e2) ||
            rm_encode(tok, raw[i].prompt, raw[i].rejected, max_len, &q->ids[1], &q->len[1], &e2)) {
            rc = error_set(err, "%s:%ld: %s", path, raw[i].line, e2.msg);
            break;
        }
        q->has_gold = raw[i].has_gold;
        q->gold[0] = raw[i].gold_chosen, q->gold[1] = raw[i].gold_rejected;
        set->n++;
    }
    prefs_free(raw, n);
    if (rc) pairs_free(set);
    return rc;
}

// The pairs' indices shortest first, keyed by the longer response of a pair;
// *pair_len receives those keys. NULL when out of memory.
static size_t *pairs_by_length(const RmPairs *set, int **pair_len) {
    size_t *rows = malloc(set->n * sizeof(size_t));
    *pair_len = malloc(set->n * sizeof(int));
    if (!rows || !*pair_len) {
        free(rows);
        return NULL;
    }
    for (size_t i = 0; i < set->n; i++) {
        const RmPair *q = &set->p[i];
        (*pair_len)[i] = q->len[0] > q->len[1] ? q->len[0] : q->len[1];
        rows[i] = i;
    }
    sort_by_length(rows, set->n, *pair_len);
    return rows;
}

// The held-out figures of the reward model (evaluate_pairs).
typedef struct {
    double loss, accuracy, gold_accuracy, label_noise, margin, reward_mean, reward_std;
    int n_gold;
} PairEval;

typedef struct {
    const Settings *s;
    Tokenizer *tok;
    GPT m;
    RmPairs train, val;
    CkptHeader h;
    PairEval ev; // the last held-out evaluation
    int *inputs, *lens, **rows; // (2B, ctx), (2B), (2B)
    float *rewards;             // (2B)
    int *pair_len; // (n train pairs) the longer response's tokens: the key of length buckets
    size_t *train_by_len, *val_by_len; // pairs shortest first, for evaluation with little padding
    size_t *perm, *idx;
    long perm_epoch;
} TrainRm;

static void train_rm_free(void *state) {
    TrainRm *p = state;
    tokenizer_free(p->tok);
    gpt_free(&p->m);
    pairs_free(&p->train), pairs_free(&p->val);
    free(p->inputs), free(p->lens), free(p->rows), free(p->rewards), free(p->pair_len), free(p->perm), free(p->idx);
    free(p->train_by_len), free(p->val_by_len);
}

static int train_rm_setup(void *state, const void *settings, TrainTarget *t, Error *err) {
    TrainRm *p = state;
    const Settings *s = settings;
    memset(p, 0, sizeof *p);
    p->s = s, p->perm_epoch = -1;
    p->ev = (PairEval){.loss = NAN, .accuracy = NAN, .gold_accuracy = NAN, .label_noise = NAN, .margin = NAN,
                       .reward_mean = NAN, .reward_std = NAN};
    if (tokenizer_load(&p->tok, s->tokenizer, err)) return -1;
    CkptHeader init;
    CkptTokenizer tk = {s->tokenizer, tokenizer_fingerprint(p->tok), tokenizer_vocab_size(p->tok)};
    if (run_load_model(&p->m, &init, s->init, 1u << CKPT_LM, &tk, err)) return -1;
    *t = (TrainTarget){&p->m, &p->h, tk, .log_every = s->eval_every};
    int ctx = p->m.config.max_seq_len, rows = 2 * s->run.batch;
    if (pairs_load(&p->train, p->tok, s->pairs, ctx, err) || pairs_load(&p->val, p->tok, s->val, ctx, err)) return -1;
    if (gpt_alloc_training(&p->m, rows, ctx, err)) return -1;
    // The head starts from zero whatever the init checkpoint holds: every
    // pair then starts at loss log 2.
    memset(p->m.params.headw, 0, (p->m.config.n_embd + 1) * sizeof(float));
    p->inputs = malloc((size_t)rows * ctx * sizeof(int));
    p->lens = malloc(rows * sizeof(int));
    p->rows = malloc(rows * sizeof(int *));
    p->rewards = malloc(rows * sizeof(float));
    p->perm = malloc(p->train.n * sizeof(size_t));
    p->idx = malloc(s->run.batch * sizeof(size_t));
    p->train_by_len = pairs_by_length(&p->train, &p->pair_len);
    int *val_len = NULL;
    p->val_by_len = pairs_by_length(&p->val, &val_len);
    free(val_len);
    if (!p->inputs || !p->lens || !p->rows || !p->rewards || !p->perm || !p->idx || !p->train_by_len ||
        !p->val_by_len)
        return error_set(err, "out of memory");
    if (ckpt_header_init(&p->h, CKPT_RM, &p->m.config, "train_rm", err)) return -1;
    p->h.tokenizer_fp = init.tokenizer_fp;
    if (ckpt_set_parent(&p->h, s->init, init.fingerprint, err)) return -1;
    printf("train_rm: %zu training pairs, %zu held-out pairs\n", p->train.n, p->val.n);
    return 0;
}

// Rewards (raw) of B pairs: rewards[i] for chosen, rewards[B + i] for rejected.
static void score_pairs(TrainRm *p, const RmPairs *set, const size_t *idx, int B) {
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < B; i++) p->rows[k * B + i] = set->p[idx[i]].ids[k], p->lens[k * B + i] = set->p[idx[i]].len[k];
    int T = rm_fill_rows(p->inputs, p->rows, p->lens, 2 * B, tokenizer_special(p->tok, TOK_PAD));
    rm_forward(&p->m, p->inputs, p->lens, 2 * B, T, p->rewards);
}

// One optimiser step's loss and gradients on B pairs; returns the mean loss
// and the fraction of pairs ranked as labelled.
static float pair_step(TrainRm *p, const Settings *s, float *accuracy) {
    int B = s->run.batch;
    score_pairs(p, &p->train, p->idx, B);
    int T = p->m.T;
    memset(p->m.bw.dhead, 0, (size_t)2 * B * T * sizeof(float));
    double loss = 0, correct = 0;
    for (int i = 0; i < B; i++) {
        double d;
        loss += bt_loss(p->rewards[i], p->rewards[B + i], s->margin, &d);
        correct += p->rewards[i] > p->rewards[B + i] ? 1.0 : p->rewards[i] == p->rewards[B + i] ? 0.5 : 0.0; // a tie is a coin flip
        p->m.bw.dhead[i * T + p->lens[i] - 1] = (float)(d / B);
        p->m.bw.dhead[(B + i) * T + p->lens[B + i] - 1] = (float)(-d / B);
    }
    gpt_zero_grad(&p->m);
    gpt_backward(&p->m, p->inputs, 0, 1);
    *accuracy = (float)(correct / B);
    return (float)(loss / B);
}

// Held-out figures: accuracy against the labels and against the noise-free
// gold ordering, how often the labels themselves disagree with gold, margins.
static PairEval evaluate_pairs(TrainRm *p, const Settings *s) {
    PairEval e = {0};
    int B = s->run.batch, n_gold_order = 0;
    for (size_t at = 0; at < p->val.n; at += B) {
        int rows = p->val.n - at < (size_t)B ? (int)(p->val.n - at) : B;
        for (int i = 0; i < rows; i++) p->idx[i] = p->val_by_len[at + i];
        score_pairs(p, &p->val, p->idx, rows);
        for (int i = 0; i < rows; i++) {
            const RmPair *q = &p->val.p[p->idx[i]];
            double rc = p->rewards[i], rr = p->rewards[rows + i];
            e.loss += bt_loss(rc, rr, 0, NULL);
            e.accuracy += rc > rr ? 1.0 : rc == rr ? 0.5 : 0.0;
            e.margin += rc - rr;
            e.reward_mean += rc + rr;
            e.reward_std += rc * rc + rr * rr;
            if (q->has_gold && q->gold[0] != q->gold[1]) {
                int gold_prefers_chosen = q->gold[0] > q->gold[1];
                e.gold_accuracy += rc == rr ? 0.5 : (rc > rr) == gold_prefers_chosen;
                e.label_noise += !gold_prefers_chosen;
                n_gold_order++;
            }
        }
    }
    e.loss /= p->val.n, e.accuracy /= p->val.n, e.margin /= p->val.n;
    e.reward_mean /= 2.0 * p->val.n;
    e.reward_std = sqrt(fmax(e.reward_std / (2.0 * p->val.n) - e.reward_mean * e.reward_mean, 0.0));
    e.n_gold = n_gold_order;
    e.gold_accuracy = n_gold_order ? e.gold_accuracy / n_gold_order : NAN;
    e.label_noise = n_gold_order ? e.label_noise / n_gold_order : NAN;
    return e;
}

// Mean and std of the raw rewards of every response in the training pairs:
// samples from the SFT policy, so a normalised reward is in units of its spread.
static void reward_stats(TrainRm *p, const Settings *s, double *mean, double *std) {
    double sum = 0, sumsq = 0;
    int B = s->run.batch;
    for (size_t at = 0; at < p->train.n; at += B) {
        int rows = p->train.n - at < (size_t)B ? (int)(p->train.n - at) : B;
        for (int i = 0; i < rows; i++) p->idx[i] = p->train_by_len[at + i];
        score_pairs(p, &p->train, p->idx, rows);
        for (int i = 0; i < 2 * rows; i++) sum += p->rewards[i], sumsq += (double)p->rewards[i] * p->rewards[i];
    }
    double n = 2.0 * p->train.n;
    *mean = sum / n;
    *std = sqrt(fmax(sumsq / n - *mean * *mean, 0.0));
    if (*std < 1e-6) *std = 1.0; // a constant reward model: leave the scale alone
}

static void print_eval(const char *when, const PairEval *e) {
    printf("train_rm: %s: held-out accuracy %.1f%% against labels, %.1f%% against the gold ordering "
           "(%d pairs; labels disagree with gold on %.1f%%), loss %.3f, mean margin %.3f\n",
           when, 100 * e->accuracy, 100 * e->gold_accuracy, e->n_gold, 100 * e->label_noise, e->loss, e->margin);
}

static int train_rm_step(void *state, uint64_t step, Rng *rng, StepReport *rep, Error *err) {
    (void)rng, (void)err;
    TrainRm *p = state;
    const Settings *s = p->s;
    for (int i = 0; i < s->run.batch; i++)
        p->idx[i] = bucketed_index(p->train.n, p->pair_len, s->run.batch, (uint64_t)s->run.seed,
                                   step * s->run.batch + i, p->perm, &p->perm_epoch);
    float acc;
    rep->loss = pair_step(p, s, &acc);
    rep->cols[0] = acc;
    rep->tokens = (double)2 * s->run.batch * p->m.T;
    return 0;
}

// The held-out columns every --eval-every steps; after the last step, the
// reward normalisation the checkpoint is saved with.
static int train_rm_after(void *state, uint64_t step, StepReport *rep, Error *err) {
    (void)err;
    TrainRm *p = state;
    const Settings *s = p->s;
    if (train_stage_due(step, s->eval_every, s->run.steps)) {
        PairEval *e = &p->ev;
        *e = evaluate_pairs(p, s);
        const double cols[] = {e->loss, e->accuracy, e->gold_accuracy, e->margin, e->reward_mean, e->reward_std};
        memcpy(rep->cols + 1, cols, sizeof cols);
    }
    snprintf(rep->status, sizeof rep->status, "loss %.3f | val acc %.1f%% | gold acc %.1f%% | %.0f tok/s", rep->loss,
             100 * p->ev.accuracy, 100 * p->ev.gold_accuracy, rep->tok_per_s);
    if ((long)step == s->run.steps) { // normalise against the SFT policy's own responses
        double mean, std;
        reward_stats(p, s, &mean, &std);
        p->h.reward_mean = (float)mean, p->h.reward_std = (float)std;
    }
    return 0;
}

static int train_rm_finish(void *state, double seconds, Error *err) {
    (void)err;
    TrainRm *p = state;
    print_eval("final", &p->ev);
    printf("train_rm: reward normalisation: raw mean %.4f, std %.4f over the %zu training responses\n",
           p->h.reward_mean, p->h.reward_std, 2 * p->train.n);
    printf("train_rm: done in %.1f s; wrote %s/model.bin\n", seconds, p->s->run.out);
    return 0;
}

int main(int argc, char **argv) {
    Settings s = {0};
    const RunOptionHelp help = {
        .out = "run folder for model.bin, metrics.csv, config.txt (--resume DIR sets it)",
        .seed = "seed for the order of pairs",
        .batch = "pairs per step",
    };
    const CliOption input_options[] = {
        {"init", CLI_STRING | CLI_REQUIRED, &s.init, 0, 0, "SFT checkpoint: the trunk to start from"},
        {"tokenizer", CLI_STRING | CLI_REQUIRED, &s.tokenizer, 0, 0, "tokenizer.bin of the init checkpoint"},
        {"pairs", CLI_STRING | CLI_REQUIRED, &s.pairs, 0, 0, "training pairs, JSONL {\"prompt\",\"chosen\",\"rejected\"}"},
        {"val", CLI_STRING | CLI_REQUIRED, &s.val, 0, 0, "held-out pairs, same format"},
    };
    const CliOption own[] = {
        {"margin", CLI_FLOAT, &s.margin, 0, 100, "Bradley-Terry margin: loss -log sigmoid(r_c - r_r - margin)"},
        {"eval-every", CLI_INT, &s.eval_every, 1, 10000000, "steps between held-out evaluations"},
    };
    TrainRm p;
    const TrainStage stage = {
        .prog = "train_rm", .summary = "Trains a Bradley-Terry reward model on preference pairs.",
        TRAIN_STAGE_COMMAND(s, help, input_options, own), .schedule = 1,
        .state = &p, .setup = train_rm_setup, .free = train_rm_free,
        .columns = "accuracy,val_loss,val_accuracy,val_gold_accuracy,margin,reward_mean,reward_std",
        .step = train_rm_step, .after = train_rm_after, .finish = train_rm_finish,
    };
    return train_stage_main(&stage, argc, argv);
}
