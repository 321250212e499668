// Rollouts for PPO and evaluation: prompts, sampled responses, and per-token
// log-probabilities, values and rewards laid out as (n, max_new) arrays.
#ifndef PPO_ROLLOUT_H
#define PPO_ROLLOUT_H

#include "common/error.h"
#include "common/rng.h"
#include "data/annotator.h"
#include "model/checkpoint.h"
#include "model/generate.h"
#include "model/gpt.h"
#include "tokenizer/tokenizer.h"

// Prompts from JSONL {"prompt", optional "category"}, chat-formatted once.
typedef struct {
    char **text;
    int **ids; // [USER] prompt [ASSISTANT]
    int *len;
    int *category; // annotator category, from the field or the prompt's wording
    size_t n;
} PromptSet;

int prompts_load(PromptSet *ps, const Tokenizer *tok, const Annotator *ann, const char *path, int ctx,
                 int max_new_min, Error *err);
void prompts_free(PromptSet *ps);

typedef struct {
    int n, max_new;
    int *prompt;     // (n) index into the PromptSet
    int *resp;       // (n, max_new) sampled tokens
    int *resp_len;   // (n)
    int *ended;      // (n) 1 if the response stopped at the end token
    // sample_logp is what the sampler reported; PPO's ratios use logp, which
    // the same forward pass as the updates recomputes, so that the first
    // ratio of every update is exactly 1 (the two agree within 1e-4:
    // test_generation_reproducible in tests/test_model.c).
    float *sample_logp, *logp, *ref_logp, *values, *entropy; // (n, max_new)
    // KL(policy || reference) over the whole vocabulary at the position that
    // drew each token, at the sampling temperature (kl_full_forward).
    float *kl_full;                                           // (n, max_new)
    float *rewards, *adv, *returns;                           // (n, max_new)
    float *score, *gold;                                      // (n): reward model, annotator
    // What the reward model reads for each response (rm_encode_generated):
    // the chat template around the response's text encoded again, end token
    // last, at most rm_ctx ids. rollout_decode fills them.
    int rm_ctx;
    int *rm_ids; // (n, rm_ctx)
    int *rm_len; // (n)
} Rollout;

// rm_ctx: the reward model's context (its max_seq_len).
int rollout_alloc(Rollout *r, int n, int max_new, int rm_ctx, Error *err);
void rollout_free(Rollout *r);

// Samples one response per rollout row (r->prompt must be set) from policy at
// the given temperature, at most r->max_new tokens and never past the context.
void rollout_generate(Rollout *r, const GPT *policy, KVCache *kv, const PromptSet *ps, float temperature,
                      int eot, Rng *rng);

// The held-out sample that ppo's final evaluation and `evaluate` both draw:
// `samples` responses to each of the first n_prompts prompts of ps (row i
// answers prompt i / samples; r->n becomes n_prompts * samples, which r must
// hold), from `from` with an RNG seeded with seed, generated kv->slots rows
// at a time. The same arguments draw the same responses, whichever program
// asks (docs/ppo.md, "Two held-out figures").
void rollout_sample_heldout(Rollout *r, int n_prompts, int samples, const GPT *from, KVCache *kv,
                            const PromptSet *ps, float temperature, int eot, uint64_t seed);

// Rows are named by an index list idx (rows entries) into the rollout.
// Lays out the rows as prompt + sampled response into inputs (rows, T),
// right-padded and cut at ctx. Returns T; lens gets lengths.
int rollout_rows(int *inputs, int *lens, const Rollout *r, const PromptSet *ps, const int *idx, int rows, int pad,
                 int ctx);

// Forward of m over the rows: per response token, its
// log-probability at the temperature into logp, and (when non-NULL) the
// value head before it into values and the entropy of the distribution it
// was drawn from into entropy. inputs holds rows * ctx ints of scratch.
// Returns T, the length of the padded rows whose logits m->acts holds.
int rollout_token_stats(GPT *m, const Rollout *r, const PromptSet *ps, const int *idx, int rows, float temperature,
                         int pad, int *inputs, int *lens, float *logp, float *values, float *entropy);

// The most rows scored in one forward pass (ScoreScratch.rows; ppo's
// --minibatch is at most this).
#define ROLLOUT_MAX_ROWS 256

// Normalised reward-model scores of the rows (at most ROLLOUT_MAX_ROWS) into
// r->score, read from r->rm_ids (rollout_decode must have run); inputs and
// lens are scratch of rows * rm_ctx and rows ints.
void rollout_rm_scores(GPT *rm, const CkptHeader *rm_header, Rollout *r, const int *idx, int rows, int pad,
                       int *inputs, int *lens);

// Scratch for scoring a rollout a minibatch of rows at a time.
typedef struct {
    int rows;      // rows per forward pass
    int *inputs;   // rows * ctx
    int *lens;     // rows
    int *order;    // n: the row indices 0..n-1
} ScoreScratch;

// Reads every response as text once (chat_response_text) and derives from
// that text what is judged: the ids the reward model reads into r->rm_ids
// (rm_encode_generated, the rule every stage scores by) and, when ann is
// not NULL, the annotator's gold score into r->gold (never used for
// training) and its parts into parts[0..n) unless parts is NULL. Text work
// allocates: it runs between generation and scoring, outside the
// allocation-free step of tests/test_no_alloc.c.
int rollout_decode(Rollout *r, const PromptSet *ps, const Tokenizer *tok, const Annotator *ann,
                   AnnotatorParts *parts, Error *err);

// For the first r->n rows: per-token log-probabilities, values, entropies and
// full-vocabulary KL to the reference under policy (skipped when policy is
// NULL), reference log-probabilities, and normalised reward-model scores into
// r->score (after rollout_decode).
void rollout_score(Rollout *r, const PromptSet *ps, GPT *policy, GPT *ref, GPT *rm, const CkptHeader *rm_header,
                   float temperature, int pad, ScoreScratch *sc);

// Mean and standard error of x over n values.
void mean_se(const float *x, int n, double *mean, double *se);

#endif
