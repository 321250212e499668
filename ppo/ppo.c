// ppo: optimises the SFT policy against the reward model with PPO under a KL
// penalty to a frozen reference. The value head sits on the policy's own
// trunk (the scalar head, zero at the start): one forward pass yields logits
// and values, and no second model of the same size has to be trained.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/data_dir.h"
#include "common/csv.h"
#include "common/fileio.h"
#include "common/jsonl.h"
#include "common/progress.h"
#include "data/chat_template.h"
#include "model/train_stage.h"
#include "ppo/heldout_log.h"
#include "ppo/policy_models.h"
#include "ppo/ppo_core.h"
#include "ppo/ppo_update.h"
#include "ppo/rollout.h"

typedef struct {
    RunSettings run; // the options every training stage has (model/run.h); a step is an iteration
    const char *policy, *ref, *rm, *tokenizer, *prompts, *eval_prompts, *data_dir;
    int max_new, sample_every;
    int eval_n, eval_samples, eval_every, keep_every; // held-out prompts, samples each; 0: off
    float kl_coef, target_kl, horizon;
    PpoHyper hp; // what the updates use (ppo_update.h)
} Settings;

static int apply_config(void *settings, const char *name, Error *err) {
    Settings *s = settings;
    s->run.config = name;
    if (!strcmp(name, "smoke")) {
        s->run.steps = 6, s->run.batch = 8, s->hp.minibatch = 4, s->hp.epochs = 2, s->max_new = 24, s->hp.lr = 1e-4f;
        s->run.save_every = 3, s->sample_every = 3, s->eval_n = 16, s->eval_samples = 2, s->eval_every = 3;
    } else if (!strcmp(name, "tiny")) {
        s->run.steps = 120, s->run.batch = 32, s->hp.minibatch = 8, s->hp.epochs = 4, s->max_new = 64, s->hp.lr = 2e-5f;
        s->run.save_every = 40, s->sample_every = 20, s->eval_n = 240, s->eval_samples = 2, s->eval_every = 20;
    } else if (!strcmp(name, "small")) {
        s->run.steps = 200, s->run.batch = 32, s->hp.minibatch = 8, s->hp.epochs = 4, s->max_new = 96, s->hp.lr = 1e-5f;
        s->run.save_every = 50, s->sample_every = 25, s->eval_n = 240, s->eval_samples = 2, s->eval_every = 25;
    } else {
        return error_set(err, "--config: unknown config '%s' (expected smoke, tiny or small)", name);
    }
    return 0;
}

typedef struct {
    const Settings *s;
    PolicyModels m; // tokenizer, policy, reference, reward model (ppo/policy_models.h)
    Annotator *ann;
    PromptSet train, eval;
    Rollout r;
    HeldoutLog held;             // heldout.csv and heldout.json (ppo/heldout_log.h)
    ScoreScratch sc;
    KVCache kv;
    PpoBuffers buf;
    size_t *perm;
    long perm_epoch;
    int eot;
    KlController kl;
    TrainStageValues values; // the controller's beta, carried over a resume
    IterStats it;            // the last iteration's
} Ppo;

static void ppo_free(void *state) {
    Ppo *p = state;
    policy_models_free(&p->m);
    annotator_free(p->ann);
    prompts_free(&p->train), prompts_free(&p->eval);
    rollout_free(&p->r);
    heldout_log_free(&p->held);
    kvcache_free(&p->kv);
    ppo_buffers_free(&p->buf);
    free(p->perm);
}

static int ppo_setup(void *state, const void *settings, TrainTarget *t, Error *err) {
    Ppo *p = state;
    const Settings *s = settings;
    memset(p, 0, sizeof *p);
    p->s = s, p->perm_epoch = -1;
    if (policy_models_load(&p->m, s->tokenizer, s->policy, s->ref, s->rm, "ppo", err) ||
        annotator_load(&p->ann, s->data_dir, err))
        return -1;
    *t = (TrainTarget){&p->m.policy, &p->m.h, p->m.tk, p->m.ref_in, p->m.rm_in, HELDOUT_REPORT, &p->values,
                       s->sample_every};
    int ctx = p->m.policy.config.max_seq_len, mb = s->hp.minibatch;
    if (prompts_load(&p->train, p->m.tok, p->ann, s->prompts, ctx, 1, err) ||
        prompts_load(&p->eval, p->m.tok, p->ann, s->eval_prompts, ctx, 1, err))
        return -1;
    if (gpt_alloc_training(&p->m.policy, mb, ctx, err) || gpt_alloc_activations(&p->m.ref, mb, ctx, err) ||
        gpt_alloc_activations(&p->m.rm, mb, ctx, err) || kvcache_create(&p->kv, &p->m.policy.config, s->run.batch, err))
        return -1;
    int n_prompts = s->eval_n < (int)p->eval.n ? s->eval_n : (int)p->eval.n, n_held = n_prompts * s->eval_samples;
    int n_roll = s->run.batch > n_held ? s->run.batch : n_held, rm_ctx = p->m.rm.config.max_seq_len;
    if (rollout_alloc(&p->r, s->run.batch, s->max_new, rm_ctx, err) ||
        ppo_buffers_alloc(&p->buf, mb, ctx, n_roll, s->max_new, tokenizer_special(p->m.tok, TOK_PAD), err))
        return -1;
    p->sc = (ScoreScratch){mb, p->buf.inputs, p->buf.lens, p->buf.order};
    // The held-out seed is not the training seed, whose draws the rollouts used.
    const Heldout held = {&p->m.policy, &p->m.ref,   &p->m.rm, &p->m.rm_h,      p->m.tok,
                          p->ann,       &p->eval,    &p->kv,   &p->sc,          n_prompts,
                          s->eval_samples, s->hp.temperature, (uint64_t)s->run.seed + 1};
    if (heldout_log_alloc(&p->held, &held, s->max_new, err)) return -1;
    p->perm = malloc(p->train.n * sizeof(size_t));
    if (!p->perm) return error_set(err, "out of memory");
    p->eot = tokenizer_special(p->m.tok, TOK_ENDOFTEXT);
    p->kl = (KlController){s->kl_coef, s->target_kl, s->horizon};
    p->values.kl_beta = p->kl.beta;
    return 0;
}


// One PPO iteration: a batch of rollouts, their rewards and advantages, then
// several epochs of clipped updates over shuffled minibatches.
static int ppo_iteration(Ppo *p, const Settings *s, uint64_t step, Rng *rng, IterStats *it, Error *err) {
    Rollout *r = &p->r;
    int B = s->run.batch;
    for (int i = 0; i < B; i++)
        r->prompt[i] = (int)shuffled_index(p->train.n, (uint64_t)s->run.seed, step * B + i, p->perm, &p->perm_epoch);
    rollout_generate(r, &p->m.policy, &p->kv, &p->train, s->hp.temperature, p->eot, rng);
    if (rollout_decode(r, &p->train, p->m.tok, p->ann, NULL, err)) return -1;
    rollout_score(r, &p->train, &p->m.policy, &p->m.ref, &p->m.rm, &p->m.rm_h, s->hp.temperature, p->buf.pad, &p->sc);
    ppo_advantages(r, B, &s->hp, (float)p->kl.beta, it);
    ppo_epochs(&p->m.policy, r, &p->train, &p->buf, &s->hp, B, step, rng, &it->up);
    kl_controller_update(&p->kl, it->kl, B);
    return 0;
}

// --keep-every: the policy at `step` as DIR/model_step<step>.bin, kept.
static int keep_checkpoint(Ppo *p, const Settings *s, uint64_t step, Error *err) {
    char name[64], path[4096];
    snprintf(name, sizeof name, "model_step%llu.bin", (unsigned long long)step);
    if (path_join(path, sizeof path, s->run.out, name, err)) return -1;
    CkptHeader h = p->m.h;
    h.step = step;
    return ckpt_save(path, &h, p->m.policy.params_memory, err);
}

// Appends a table of a few rollouts (prompt, response, score, KL, gold).
static void write_samples(Ppo *p, const Settings *s, long step) {
    char path[4096];
    Error err;
    if (path_join(path, sizeof path, s->run.out, "samples.txt", &err)) return;
    FILE *fp = fopen(path, "a");
    if (!fp) return;
    Rollout *r = &p->r;
    fprintf(fp, "== step %ld: kl_coef %.4f ==\n%-8s %-8s %-7s %s\n", step, p->kl.beta, "score", "kl", "gold", "prompt | response");
    for (int i = 0; i < 4 && i < s->run.batch; i++) {
        char *text = NULL;
        double kl = 0;
        for (int k = 0; k < r->resp_len[i]; k++) kl += r->logp[(size_t)i * r->max_new + k] - r->ref_logp[(size_t)i * r->max_new + k];
        if (chat_response_text(p->m.tok, r->resp + (size_t)i * r->max_new, r->resp_len[i], &text, &err) == 0)
            fprintf(fp, "%-8.3f %-8.3f %-7.3f %s | %s%s\n", r->score[i], kl, r->gold[i], p->train.text[r->prompt[i]], text,
                    r->ended[i] ? "" : " [no end token]");
        free(text);
    }
    fclose(fp);
}

// The held-out evaluation after the last step (heldout_log_finish).
static int ppo_finish(void *state, double seconds, Error *err) {
    Ppo *p = state;
    const Settings *s = p->s;
    double t0 = now_seconds();
    int rc = heldout_log_finish(&p->held, s->run.steps, err);
    if (rc) return rc;
    printf("ppo: done in %.1f s; wrote %s/model.bin, %s/%s and %s/%s\n", seconds + now_seconds() - t0, s->run.out,
           s->run.out, HELDOUT_CSV, s->run.out, HELDOUT_REPORT);
    return 0;
}

// The start of the run, fresh or resumed: the controller's beta as it was,
// heldout.csv, and the policy's held-out row before the first step (and
// where a resumed run stopped): the row a curve starts from.
static int ppo_begin(void *state, uint64_t step, Error *err) {
    Ppo *p = state;
    const Settings *s = p->s;
    p->kl.beta = p->values.kl_beta;
    printf("ppo: %zu training prompts, %zu held-out; kl_coef %.4f", p->train.n, p->eval.n, p->kl.beta);
    if (s->target_kl > 0) printf(" (adaptive: target %g, horizon %g samples)", p->kl.target, p->kl.horizon);
    printf("\n");
    if (heldout_log_open(&p->held, "ppo", s->run.out, step, err)) return -1;
    if (s->eval_every && (long)step % s->eval_every == 0 && (long)step < s->run.steps)
        return heldout_log_row(&p->held, (long)step, err);
    return 0;
}

static int ppo_step(void *state, uint64_t step, Rng *rng, StepReport *rep, Error *err) {
    Ppo *p = state;
    IterStats *it = &p->it;
    double beta = p->kl.beta; // the row records the beta the iteration used
    if (ppo_iteration(p, p->s, step, rng, it, err)) return -1;
    if (!isfinite(it->up.policy_loss) || !isfinite(it->up.value_loss))
        return error_set(err, "non-finite loss at step %llu; the last checkpoint in %s is untouched",
                         (unsigned long long)step + 1, p->s->run.out);
    double u = it->up.updates ? it->up.updates : 1;
    const double cols[] = {it->score, it->rlhf_reward, it->kl, it->kl_k3, it->kl_full, beta, it->entropy,
                           it->up.policy_loss / u, it->up.value_loss / u, it->up.approxkl / u, it->up.clipfrac / u,
                           it->up.value_clipfrac / u, it->explained_var, it->length, it->end_rate, it->gold};
    memcpy(rep->cols, cols, sizeof cols);
    rep->tokens = it->length * p->s->run.batch;
    return 0;
}

// Samples, kept checkpoints and held-out rows along training. An evaluation
// cut short by a signal writes no row; the driver then saves this step, and
// the resumed run evaluates it again.
static int ppo_after(void *state, uint64_t step, StepReport *rep, Error *err) {
    Ppo *p = state;
    const Settings *s = p->s;
    const IterStats *it = &p->it;
    if (train_stage_due(step, s->sample_every, s->run.steps)) write_samples(p, s, (long)step);
    snprintf(rep->status, sizeof rep->status, "score %.3f | kl %.3f | gold %.3f | len %.0f | %.0f tok/s", it->score,
             it->kl, it->gold, it->length, rep->tok_per_s);
    p->values.kl_beta = p->kl.beta;
    if (s->keep_every && step % s->keep_every == 0 && keep_checkpoint(p, s, step, err)) return -1;
    if (s->eval_every && step % s->eval_every == 0 && (long)step < s->run.steps && heldout_log_row(&p->held, (long)step, err) < 0)
        return -1;
    return 0;
}

// Usage errors of the settings together, and the horizon resolved here so
// that config.txt records the number and a resumed run (even with --steps
// raised) continues with the same horizon.
static int ppo_check(void *settings, Error *err) {
    Settings *s = settings;
    if (s->hp.minibatch > s->run.batch)
        return usage_error(err, "--minibatch %d exceeds --batch %d", s->hp.minibatch, s->run.batch);
    if (s->target_kl > 0 && s->kl_coef == 0)
        return usage_error(err, "--target-kl needs a positive --kl-coef: the controller multiplies beta, and a beta "
                           "of 0 stays 0 (give the starting beta, e.g. --kl-coef 0.05)");
    if (s->horizon == 0) s->horizon = (float)kl_controller_auto_horizon(s->run.steps, s->run.batch);
    return 0;
}

int main(int argc, char **argv) {
    char train_prompts[4096], eval_prompts[4096];
    Error err;
    if (data_dir_file(train_prompts, sizeof train_prompts, "prompts_train.jsonl", &err) ||
        data_dir_file(eval_prompts, sizeof eval_prompts, "prompts_eval.jsonl", &err))
        error_exit("ppo", &err);
    Settings s = {.prompts = train_prompts, .eval_prompts = eval_prompts, .data_dir = data_dir_default(),
                  .kl_coef = 0.05f, .horizon = 0,
                  .hp = {.gamma = 1.0f, .lambda = 0.95f, .clip = 0.2f, .value_clip = 0.2f, .vf_coef = 0.1f,
                         .grad_clip = 1.0f, .temperature = 1.0f, .missing_eos_penalty = 1.0f}};
    const RunOptionHelp help = {
        .config = "defaults: smoke, tiny or small (the shape comes from --policy)",
        .out = "run folder for model.bin, metrics.csv, config.txt, samples.txt (--resume DIR sets it)",
        .seed = "seed for prompts, sampling and minibatches",
        .steps = "PPO iterations (rollout + updates)",
        .batch = "rollouts per iteration",
        .batch_max = 256,
        .save_every = "iterations between checkpoints",
        .stop_after = "stop (as on SIGINT) after this iteration, exit status 3; 0: off",
    };
    const CliOption input_options[] = {
        {"policy", CLI_STRING | CLI_REQUIRED, &s.policy, 0, 0, "SFT checkpoint to optimise"},
        {"ref", CLI_STRING, &s.ref, 0, 0, "frozen reference for the KL penalty (none: the --policy checkpoint)"},
        {"rm", CLI_STRING | CLI_REQUIRED, &s.rm, 0, 0, "reward-model checkpoint from train_rm"},
        {"tokenizer", CLI_STRING | CLI_REQUIRED, &s.tokenizer, 0, 0, "tokenizer.bin of these checkpoints"},
        {"prompts", CLI_STRING, &s.prompts, 0, 0, "training prompts, JSONL {\"prompt\", optional \"category\"}"},
        {"eval-prompts", CLI_STRING, &s.eval_prompts, 0, 0, "held-out prompts for the final evaluation"},
        {"data-dir", CLI_STRING, &s.data_dir, 0, 0, "folder of the annotator's files (gold scores are logged only) " DATA_DIR_HELP},
    };
    const CliOption own[] = {
        {"minibatch", CLI_INT, &s.hp.minibatch, 1, 256, "rollouts per gradient update"},
        {"epochs", CLI_INT, &s.hp.epochs, 1, 100, "passes over each batch of rollouts"},
        {"max-new", CLI_INT, &s.max_new, 1, 8192, "longest response in tokens"},
        {"lr", CLI_FLOAT, &s.hp.lr, 1e-9, 1, "learning rate (constant)"},
        {"kl-coef", CLI_FLOAT, &s.kl_coef, 0, 100, "beta: weight of the per-token KL penalty (initial value if adaptive)"},
        {"target-kl", CLI_FLOAT, &s.target_kl, 0, 1e6, "adapt beta towards this KL per response (0: fixed beta)"},
        {"horizon", CLI_FLOAT, &s.horizon, 0, 1e9, "horizon of the adaptive KL controller, in samples (0: auto, steps x batch / 30, at least one batch; config.txt records the number)"},
        {"gamma", CLI_FLOAT, &s.hp.gamma, 0, 1, "discount"},
        {"lambda", CLI_FLOAT, &s.hp.lambda, 0, 1, "GAE lambda"},
        {"clip", CLI_FLOAT, &s.hp.clip, 0, 10, "PPO clip range of the probability ratio"},
        {"value-clip", CLI_FLOAT, &s.hp.value_clip, 0, 1e6, "clip range of the value update"},
        {"vf-coef", CLI_FLOAT, &s.hp.vf_coef, 0, 100, "weight of the value loss"},
        {"ent-coef", CLI_FLOAT, &s.hp.ent_coef, 0, 100, "weight of the entropy bonus"},
        {"grad-clip", CLI_FLOAT, &s.hp.grad_clip, 0, 1e6, "global gradient-norm limit (0: off)"},
        {"weight-decay", CLI_FLOAT, &s.hp.weight_decay, 0, 10, "AdamW weight decay (block matrices only)"},
        {"temperature", CLI_FLOAT, &s.hp.temperature, 0.01, 10, "sampling temperature; log-probabilities use the same"},
        {"missing-eos-penalty", CLI_FLOAT, &s.hp.missing_eos_penalty, 0, 100, "subtracted from the score of a response with no end token"},
        HELDOUT_LOG_OPTIONS(&s.eval_n, &s.eval_samples, &s.eval_every, "iterations"),
        {"keep-every", CLI_INT, &s.keep_every, 0, 10000000, "keep the policy every this many iterations as model_step<N>.bin (0: none)"},
        {"sample-every", CLI_INT, &s.sample_every, 1, 10000000, "iterations between sample tables in samples.txt"},
    };
    Ppo p;
    const TrainStage stage = {
        .prog = "ppo", .summary = "Optimises a policy against a reward model with PPO under a KL penalty.",
        TRAIN_STAGE_COMMAND(s, help, input_options, own), .check = ppo_check,
        .state = &p, .setup = ppo_setup, .free = ppo_free,
        .columns = "score,rlhf_reward,kl,kl_k3,kl_full,kl_coef,entropy,policy_loss,value_loss,approxkl,clipfrac,"
                   "value_clipfrac,explained_var,response_length,end_rate,gold",
        .begin = ppo_begin, .step = ppo_step, .after = ppo_after, .finish = ppo_finish,
    };
    return train_stage_main(&stage, argc, argv);
}
