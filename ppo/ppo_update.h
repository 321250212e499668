// The learning half of a PPO iteration, on a batch of rollouts that
// rollout_score has scored: rewards with the KL penalty, advantages, then
// epochs of clipped updates of the policy over shuffled minibatches. ppo.c
// calls these between sampling and logging; tests/test_no_alloc.c calls the
// same functions to show that they allocate nothing.
#ifndef PPO_PPO_UPDATE_H
#define PPO_PPO_UPDATE_H

#include <stdint.h>

#include "common/error.h"
#include "common/rng.h"
#include "model/gpt.h"
#include "ppo/rollout.h"

typedef struct {
    int minibatch, epochs;       // rollouts per update; passes over each batch
    float lr, weight_decay;      // AdamW (constant learning rate)
    float clip, value_clip;      // PPO clip ranges of the ratio and of the value update
    float vf_coef, ent_coef;     // weights of the value loss and the entropy bonus
    float grad_clip;             // global gradient-norm limit (0: off)
    float gamma, lambda;         // discount and GAE lambda
    float temperature;           // of the sampler; log-probabilities use the same
    float missing_eos_penalty;   // subtracted from the score of a response with no end token
} PpoHyper;

// Buffers for one minibatch of rollouts, allocated once.
typedef struct {
    int *inputs, *lens;  // (minibatch, ctx), (minibatch): prompt + response rows
    int *order;          // (n_rollouts): rollout indices (an epoch's shuffled order, scoring's rows)
    float *flat;         // 8 arrays of minibatch * max_new floats, one per token quantity
    int pad;             // the padding token
} PpoBuffers;

// n_rollouts: the most rollouts scored at once (the batch, or the held-out
// evaluation if larger).
int ppo_buffers_alloc(PpoBuffers *b, int minibatch, int ctx, int n_rollouts, int max_new, int pad, Error *err);
void ppo_buffers_free(PpoBuffers *b);

typedef struct {
    double policy_loss, value_loss, approxkl, clipfrac, value_clipfrac, entropy; // sums over updates
    int updates;
} UpdateStats;

typedef struct {
    double score, rlhf_reward, kl, kl_k3, kl_full, entropy, length, end_rate, gold, explained_var; // batch means
    UpdateStats up;
} IterStats;

// For the first B rollouts of r: the missing-end-token penalty on r->score,
// per-token rewards (score minus beta times the KL estimate), GAE advantages
// (whitened) and returns, and the batch means of it (it is zeroed first;
// it->gold reads r->gold as it stands).
void ppo_advantages(Rollout *r, int B, const PpoHyper *hp, float beta, IterStats *it);

// One clipped PPO update of m on the rollouts idx[0..rows): forward, the
// policy and value losses over their response tokens and the entropy bonus,
// backward, AdamW at step adam_step with the gradient norm clipped.
void ppo_update(GPT *m, const Rollout *r, const PromptSet *ps, PpoBuffers *buf, const PpoHyper *hp, const int *idx,
                int rows, long adam_step, UpdateStats *st);

// hp->epochs passes over the first B rollouts, each in a fresh random order
// from rng, one ppo_update per minibatch; iteration `step` (0-based) numbers
// the AdamW steps.
void ppo_epochs(GPT *m, const Rollout *r, const PromptSet *ps, PpoBuffers *buf, const PpoHyper *hp, int B,
                uint64_t step, Rng *rng, UpdateStats *st);

#endif
