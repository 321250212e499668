// dpo: Direct Preference Optimisation (Rafailov et al. 2023). Trains the SFT
// policy on the preference pairs the reward model learns from, with no reward
// model and no sampling: the loss is train_rm's Bradley-Terry loss on the
// implicit rewards beta (log pi(y|x) - log pi_ref(y|x)) of the two responses
// (dpo/dpo_loss.h). The frozen reference's log-probabilities of every pair
// are computed once, before the first step. The policy is saved as a policy
// checkpoint (kind "policy", like ppo's; from an SFT model its scalar head is
// zero and stays so), which evaluate, sample and ckpt read like ppo's. A
// reward model (--rm), when given, is used for the held-out evaluation alone
// (heldout.csv and heldout.json, as ppo writes them).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bucket.h"
#include "common/data_dir.h"
#include "common/fileio.h"
#include "common/progress.h"
#include "dpo/dpo_batch.h"
#include "model/train_stage.h"
#include "ppo/heldout_log.h"
#include "ppo/policy_models.h"

typedef struct {
    RunSettings run; // the options every training stage has (model/run.h)
    const char *init, *ref, *rm, *tokenizer, *pairs, *val, *eval_prompts, *data_dir;
    float beta;
    int val_every, sample_every;
    int eval_n, eval_samples, eval_every, max_new; // held-out prompts (with --rm)
} Settings;

static int apply_config(void *settings, const char *name, Error *err) {
    Settings *s = settings;
    RunSettings *r = &s->run;
    r->config = name;
    if (!strcmp(name, "smoke")) {
        r->steps = 20, r->batch = 4, r->lr = 1e-4f, r->warmup = 2, r->save_every = 10;
        s->val_every = 10, s->sample_every = 10, s->eval_every = 10, s->eval_n = 16, s->max_new = 24;
    } else if (!strcmp(name, "tiny")) {
        r->steps = 600, r->batch = 16, r->lr = 2e-5f, r->warmup = 30, r->save_every = 200;
        s->val_every = 100, s->sample_every = 100, s->eval_every = 100, s->eval_n = 240, s->max_new = 64;
    } else if (!strcmp(name, "small")) {
        r->steps = 600, r->batch = 16, r->lr = 1e-5f, r->warmup = 30, r->save_every = 200;
        s->val_every = 100, s->sample_every = 100, s->eval_every = 100, s->eval_n = 240, s->max_new = 96;
    } else {
        return error_set(err, "--config: unknown config '%s' (expected smoke, tiny or small)", name);
    }
    return 0;
}

// A set of pairs with the reference's sequence log-probabilities of its
// responses, computed once.
typedef struct {
    DpoSet set;
    double *ref_chosen, *ref_rejected; // (n)
    size_t *by_len;                    // the pairs shortest first, for evaluation with little padding
    int *pair_len;                     // (n) the longer side's tokens: the key of length buckets
} RefPairs;

typedef struct {
    const Settings *s;
    PolicyModels m; // tokenizer, policy, reference, reward model (ppo/policy_models.h)
    Annotator *ann;
    RefPairs train, val;
    LmBatch batch;         // (2B, ctx): B chosen rows, then their B rejected ones
    double *ref_c, *ref_r; // (B) the reference log-probs of the batch's pairs
    double *seq;           // (2B) sequence log-probs of a batch's rows
    size_t *perm, *idx;
    long perm_epoch;
    KVCache kv;
    SftSet prompts; // the held-out pairs' chosen sides, whose prompts samples.txt answers (borrowed ids)
    int *gen_tokens, *gen_lens;
    float *gen_lps;
    // Held-out prompts, with --rm.
    PromptSet eval;
    ScoreScratch sc;
    HeldoutLog held;
    DpoStats first_val, last_val; // the held-out pairs' figures before the first step and at the last evaluation
} Dpo;

static void ref_pairs_free(RefPairs *rp) {
    dpo_free(&rp->set);
    free(rp->ref_chosen), free(rp->ref_rejected), free(rp->by_len), free(rp->pair_len);
}

static void dpo_state_free(void *state) {
    Dpo *p = state;
    policy_models_free(&p->m);
    annotator_free(p->ann);
    ref_pairs_free(&p->train), ref_pairs_free(&p->val);
    lm_batch_free(&p->batch);
    free(p->ref_c), free(p->ref_r), free(p->seq), free(p->perm), free(p->idx);
    kvcache_free(&p->kv);
    free(p->prompts.ex), free(p->gen_tokens), free(p->gen_lens), free(p->gen_lps);
    prompts_free(&p->eval);
    free(p->sc.inputs), free(p->sc.lens), free(p->sc.order);
    heldout_log_free(&p->held);
}

// The reference's sequence log-probabilities of every pair of rp, B pairs at
// a time, shortest first.
static void reference_logps(Dpo *p, RefPairs *rp) {
    int B = p->s->run.batch, pad = tokenizer_special(p->m.tok, TOK_PAD);
    GPT *trained = p->batch.m;
    p->batch.m = &p->m.ref; // the batch's buffers serve the reference's forward pass
    for (size_t at = 0; at < rp->set.n; at += B) {
        int rows = rp->set.n - at < (size_t)B ? (int)(rp->set.n - at) : B;
        int T = dpo_fill_rows(&p->batch, &rp->set, rp->by_len + at, rows, pad);
        dpo_sequence_logps(&p->batch, 2 * rows, T, p->seq);
        for (int i = 0; i < rows; i++) {
            rp->ref_chosen[rp->by_len[at + i]] = p->seq[i];
            rp->ref_rejected[rp->by_len[at + i]] = p->seq[rows + i];
        }
    }
    p->batch.m = trained;
}

static int ref_pairs_load(Dpo *p, RefPairs *rp, const char *path, Error *err) {
    memset(rp, 0, sizeof *rp);
    if (dpo_load(&rp->set, p->m.tok, path, p->m.policy.config.max_seq_len, err)) return -1;
    size_t n = rp->set.n;
    rp->ref_chosen = malloc(n * sizeof(double)), rp->ref_rejected = malloc(n * sizeof(double));
    rp->by_len = malloc(n * sizeof(size_t)), rp->pair_len = malloc(n * sizeof(int));
    if (!rp->ref_chosen || !rp->ref_rejected || !rp->by_len || !rp->pair_len) return error_set(err, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const DpoPair *q = &rp->set.pairs[i];
        rp->pair_len[i] = q->chosen.n > q->rejected.n ? q->chosen.n : q->rejected.n;
        rp->by_len[i] = i;
    }
    sort_by_length(rp->by_len, n, rp->pair_len);
    return 0;
}

// The held-out prompts' sample (with --rm): kv->slots responses at a time,
// read as ppo reads its own (ppo/heldout_log.h).
static int heldout_setup(Dpo *p, const Settings *s, Error *err) {
    int ctx = p->m.policy.config.max_seq_len, rows = 2 * s->run.batch;
    if (annotator_load(&p->ann, s->data_dir, err) ||
        prompts_load(&p->eval, p->m.tok, p->ann, s->eval_prompts, ctx, 1, err) ||
        gpt_alloc_activations(&p->m.rm, rows, p->m.rm.config.max_seq_len, err))
        return -1;
    int n_prompts = s->eval_n < (int)p->eval.n ? s->eval_n : (int)p->eval.n, n = n_prompts * s->eval_samples;
    p->sc = (ScoreScratch){rows, malloc((size_t)rows * ctx * sizeof(int)), malloc(rows * sizeof(int)),
                           malloc(n * sizeof(int))};
    if (!p->sc.inputs || !p->sc.lens || !p->sc.order) return error_set(err, "out of memory");
    // The held-out seed is not the training seed, whose draws pick the pairs.
    const Heldout held = {&p->m.policy, &p->m.ref, &p->m.rm, &p->m.rm_h, p->m.tok, p->ann, &p->eval, &p->kv, &p->sc, n_prompts,
                          s->eval_samples, 1.0f, (uint64_t)s->run.seed + 1};
    return heldout_log_alloc(&p->held, &held, s->max_new, err);
}

// The held-out pairs' chosen sides as an SftSet, whose prompts samples.txt
// answers; the ids stay the pairs'.
static int sample_prompts(Dpo *p, Error *err) {
    size_t n = p->val.set.n;
    int ctx = p->m.policy.config.max_seq_len;
    p->prompts = (SftSet){malloc(n * sizeof(SftExample)), n, 0};
    p->gen_tokens = malloc((size_t)4 * ctx * sizeof(int));
    p->gen_lens = malloc(4 * sizeof(int));
    p->gen_lps = malloc((size_t)p->kv.slots * ctx * sizeof(float));
    if (!p->prompts.ex || !p->gen_tokens || !p->gen_lens || !p->gen_lps) return error_set(err, "out of memory");
    for (size_t i = 0; i < n; i++) p->prompts.ex[i] = p->val.set.pairs[i].chosen;
    return 0;
}

static DpoStats evaluate_pairs(Dpo *p, RefPairs *rp);

static int dpo_setup(void *state, const void *settings, TrainTarget *t, Error *err) {
    Dpo *p = state;
    const Settings *s = settings;
    memset(p, 0, sizeof *p);
    p->s = s, p->perm_epoch = -1;
    if (policy_models_load(&p->m, s->tokenizer, s->init, s->ref, s->rm, "dpo", err)) return -1;
    *t = (TrainTarget){&p->m.policy, &p->m.h, p->m.tk, p->m.ref_in, p->m.rm_in, s->rm ? HELDOUT_REPORT : NULL,
                       NULL, s->sample_every};
    int ctx = p->m.policy.config.max_seq_len, B = s->run.batch;
    if (gpt_alloc_training(&p->m.policy, 2 * B, ctx, err) || gpt_alloc_activations(&p->m.ref, 2 * B, ctx, err) ||
        lm_batch_alloc(&p->batch, &p->m.policy, 2 * B, ctx, err) || kvcache_create(&p->kv, &p->m.policy.config, 2 * B, err))
        return -1;
    p->ref_c = malloc(B * sizeof(double)), p->ref_r = malloc(B * sizeof(double));
    p->seq = malloc(2 * B * sizeof(double)), p->idx = malloc(B * sizeof(size_t));
    if (!p->ref_c || !p->ref_r || !p->seq || !p->idx) return error_set(err, "out of memory");
    if (ref_pairs_load(p, &p->train, s->pairs, err) || ref_pairs_load(p, &p->val, s->val, err)) return -1;
    if (!(p->perm = malloc(p->train.set.n * sizeof(size_t)))) return error_set(err, "out of memory");
    if (sample_prompts(p, err) || (s->rm && heldout_setup(p, s, err))) return -1;
    printf("dpo: %zu training pairs, %zu held-out (%zu and %zu longer than the context skipped); beta %g\n",
           p->train.set.n, p->val.set.n, p->train.set.skipped_long, p->val.set.skipped_long, s->beta);
    printf("dpo: the reference's log-probabilities of every pair...\n");
    fflush(stdout);
    reference_logps(p, &p->train);
    reference_logps(p, &p->val);
    p->first_val = p->last_val = evaluate_pairs(p, &p->val); // before any step (the reference, without --ref)
    return 0;
}

// The DPO figures of every pair of rp under the policy as it is now, B
// pairs at a time (means over the pairs).
static DpoStats evaluate_pairs(Dpo *p, RefPairs *rp) {
    int B = p->s->run.batch, pad = tokenizer_special(p->m.tok, TOK_PAD);
    DpoStats sum = {0};
    for (size_t at = 0; at < rp->set.n; at += B) {
        int rows = rp->set.n - at < (size_t)B ? (int)(rp->set.n - at) : B;
        for (int i = 0; i < rows; i++)
            p->ref_c[i] = rp->ref_chosen[rp->by_len[at + i]], p->ref_r[i] = rp->ref_rejected[rp->by_len[at + i]];
        int T = dpo_fill_rows(&p->batch, &rp->set, rp->by_len + at, rows, pad);
        DpoStats b = dpo_batch_loss(&p->batch, rows, T, p->ref_c, p->ref_r, p->s->beta, 0);
        sum.loss += b.loss * rows, sum.reward_chosen += b.reward_chosen * rows;
        sum.reward_rejected += b.reward_rejected * rows, sum.margin += b.margin * rows;
        sum.accuracy += b.accuracy * rows, sum.logp_chosen += b.logp_chosen * rows;
        sum.logp_rejected += b.logp_rejected * rows;
    }
    double n = (double)rp->set.n;
    return (DpoStats){sum.loss / n, sum.reward_chosen / n, sum.reward_rejected / n, sum.margin / n,
                      sum.accuracy / n, sum.logp_chosen / n, sum.logp_rejected / n};
}

// The figures in metrics.csv's column order (reward_chosen .. logp_rejected).
static void stats_columns(const DpoStats *d, double *cols) {
    const double v[] = {d->reward_chosen, d->reward_rejected, d->margin, d->accuracy, d->logp_chosen,
                        d->logp_rejected};
    memcpy(cols, v, sizeof v);
}

static int dpo_begin(void *state, uint64_t step, Error *err) {
    Dpo *p = state;
    const Settings *s = p->s;
    if (!s->rm) {
        printf("dpo: no --rm: no held-out evaluation on prompts (heldout.csv, heldout.json)\n");
        return 0;
    }
    if (heldout_log_open(&p->held, "dpo", s->run.out, step, err)) return -1;
    if (s->eval_every && (long)step % s->eval_every == 0 && (long)step < s->run.steps)
        return heldout_log_row(&p->held, (long)step, err);
    return 0;
}

static int dpo_step(void *state, uint64_t step, Rng *rng, StepReport *rep, Error *err) {
    (void)rng, (void)err;
    Dpo *p = state;
    const Settings *s = p->s;
    int B = s->run.batch;
    for (int i = 0; i < B; i++) {
        p->idx[i] = bucketed_index(p->train.set.n, p->train.pair_len, B, (uint64_t)s->run.seed,
                                   step * B + i, p->perm, &p->perm_epoch);
        p->ref_c[i] = p->train.ref_chosen[p->idx[i]], p->ref_r[i] = p->train.ref_rejected[p->idx[i]];
    }
    int T = dpo_fill_rows(&p->batch, &p->train.set, p->idx, B, tokenizer_special(p->m.tok, TOK_PAD));
    DpoStats d = dpo_batch_loss(&p->batch, B, T, p->ref_c, p->ref_r, s->beta, 1);
    rep->loss = (float)d.loss;
    stats_columns(&d, rep->cols);
    rep->tokens = 2.0 * B * T;
    return 0;
}

// The held-out pairs' columns every --val-every steps, samples, and with
// --rm the held-out prompts' row of heldout.csv every --eval-every steps (a
// signal stops it without a row: the driver saves, the resumed run evaluates).
static int dpo_after(void *state, uint64_t step, StepReport *rep, Error *err) {
    Dpo *p = state;
    const Settings *s = p->s;
    if (train_stage_due(step, s->val_every, s->run.steps)) {
        p->last_val = evaluate_pairs(p, &p->val);
        rep->cols[6] = p->last_val.loss;
        stats_columns(&p->last_val, rep->cols + 7);
    }
    if (train_stage_due(step, s->sample_every, s->run.steps))
        sft_append_samples(s->run.out, (long)step, &p->m.policy, &p->kv, p->m.tok, &p->prompts,
                           (uint64_t)s->run.seed + (uint64_t)step, p->gen_tokens, p->gen_lens, p->gen_lps);
    snprintf(rep->status, sizeof rep->status, "loss %.3f | margin %.2f | acc %.0f%% | val acc %.1f%% | %.0f tok/s",
             rep->loss, rep->cols[2], 100 * rep->cols[3], 100 * p->last_val.accuracy, rep->tok_per_s);
    if (s->rm && s->eval_every && step % s->eval_every == 0 && (long)step < s->run.steps &&
        heldout_log_row(&p->held, (long)step, err) < 0)
        return -1;
    return 0;
}

static int dpo_finish(void *state, double seconds, Error *err) {
    Dpo *p = state;
    const Settings *s = p->s;
    const DpoStats *a = &p->first_val, *b = &p->last_val;
    printf("dpo: held-out pairs: loss %.3f (at the start %.3f), accuracy %.1f%%, margin %.3f; implicit rewards "
           "chosen %.3f, rejected %.3f\n", b->loss, a->loss, 100 * b->accuracy, b->margin, b->reward_chosen,
           b->reward_rejected);
    printf("dpo: held-out log-probabilities per response: chosen %.2f -> %.2f, rejected %.2f -> %.2f\n",
           a->logp_chosen, b->logp_chosen, a->logp_rejected, b->logp_rejected);
    double t0 = now_seconds();
    if (s->rm) {
        int rc = heldout_log_finish(&p->held, s->run.steps, err);
        if (rc) return rc;
    }
    printf("dpo: done in %.1f s; wrote %s/model.bin%s\n", seconds + now_seconds() - t0, s->run.out,
           s->rm ? ", heldout.csv and heldout.json" : "");
    return 0;
}

// Without --rm there is no held-out evaluation on prompts: config.txt then
// records --eval-every 0, whatever the config's default.
static int dpo_check(void *settings, Error *err) {
    (void)err;
    Settings *s = settings;
    if (!s->rm) s->eval_every = 0;
    return 0;
}

int main(int argc, char **argv) {
    char eval_prompts[4096];
    Error err;
    if (data_dir_file(eval_prompts, sizeof eval_prompts, "prompts_eval.jsonl", &err)) error_exit("dpo", &err);
    Settings s = {.eval_prompts = eval_prompts, .data_dir = data_dir_default(), .beta = 0.1f, .eval_samples = 2};
    const RunOptionHelp help = {
        .out = "run folder for model.bin, metrics.csv, config.txt, samples.txt, heldout.csv (--resume DIR sets it)",
        .seed = "seed for the order of pairs and sampling",
        .batch = "pairs per step (2 x batch sequences)",
        .batch_max = 128,
    };
    const CliOption input_options[] = {
        {"init", CLI_STRING | CLI_REQUIRED, &s.init, 0, 0, "SFT checkpoint: the policy to start from"},
        {"ref", CLI_STRING, &s.ref, 0, 0, "frozen reference (none: the --init checkpoint)"},
        {"rm", CLI_STRING, &s.rm, 0, 0, "reward model for the held-out evaluation on prompts only (none: no heldout.csv, --eval-every 0)"},
        {"tokenizer", CLI_STRING | CLI_REQUIRED, &s.tokenizer, 0, 0, "tokenizer.bin of these checkpoints"},
        {"pairs", CLI_STRING | CLI_REQUIRED, &s.pairs, 0, 0, "training pairs, JSONL {\"prompt\",\"chosen\",\"rejected\"}"},
        {"val", CLI_STRING | CLI_REQUIRED, &s.val, 0, 0, "held-out pairs, same format"},
        {"eval-prompts", CLI_STRING, &s.eval_prompts, 0, 0, "held-out prompts for the evaluation with --rm"},
        {"data-dir", CLI_STRING, &s.data_dir, 0, 0, "folder of the annotator's files (gold is measured only) " DATA_DIR_HELP},
    };
    const CliOption own[] = {
        {"beta", CLI_FLOAT, &s.beta, 1e-6, 100, "beta: the implicit reward's scale, as the KL coefficient of RLHF"},
        {"val-every", CLI_INT, &s.val_every, 1, 10000000, "steps between figures on the held-out pairs"},
        HELDOUT_LOG_OPTIONS(&s.eval_n, &s.eval_samples, &s.eval_every, "steps"),
        {"max-new", CLI_INT, &s.max_new, 1, 8192, "longest sampled response in tokens (held-out evaluation)"},
        {"sample-every", CLI_INT, &s.sample_every, 1, 10000000, "steps between samples in samples.txt"},
    };
    Dpo p;
    const TrainStage stage = {
        .prog = "dpo", .summary = "Trains a policy on preference pairs with Direct Preference Optimisation.",
        TRAIN_STAGE_COMMAND(s, help, input_options, own), .schedule = 1, .check = dpo_check,
        .state = &p, .setup = dpo_setup, .free = dpo_state_free,
        .columns = "reward_chosen,reward_rejected,margin,accuracy,logp_chosen,logp_rejected,val_loss,"
                   "val_reward_chosen,val_reward_rejected,val_margin,val_accuracy,val_logp_chosen,val_logp_rejected",
        .begin = dpo_begin, .step = dpo_step, .after = dpo_after, .finish = dpo_finish,
    };
    return train_stage_main(&stage, argc, argv);
}
