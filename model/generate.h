// Sampling with a KV cache: each new token costs one row through the model
// instead of a forward pass over the whole prefix.
#ifndef MODEL_GENERATE_H
#define MODEL_GENERATE_H

#include "common/error.h"
#include "common/rng.h"
#include "model/gpt.h"

typedef struct {
    int slots, max_T, C, V, NH;
    float *k, *v; // (L, slots, max_T, C) cached keys and values
    // Scratch for one decode step over up to `slots` rows.
    float *x, *ln, *mean, *rstd, *qkv, *atty, *proj, *fch, *fch_gelu, *att;
    float *logits; // (slots, V) logits of the last step
    float *head;   // (slots) scalar head of the last step
    float *probs;  // (V) sampler scratch
    int *order;    // (2V) sampler scratch
    // generate's per-sequence state, (slots) each: kept here so that neither
    // a decode step nor a call of generate allocates anything.
    int *pos, *tok, *row_seq, *row_pos, *done;
    float *memory;
    int *int_memory;
} KVCache;

// Everything decoding and sampling need, allocated once: nothing allocates
// after this until kvcache_free.
int kvcache_create(KVCache *c, const GPTConfig *cfg, int slots, Error *err);
void kvcache_free(KVCache *c);

// One token for each of n rows: row i feeds tokens[i] at position pos[i] of the
// sequence held in cache slot slots[i], whose keys and values for positions
// 0..pos[i]-1 must already be cached. Fills c->logits and c->head (row i).
void gpt_decode_step(const GPT *m, KVCache *c, const int *tokens, const int *pos, const int *slots,
                     int n);

typedef struct {
    float temperature; // 0 = greedy
    int top_k;         // 0 = off
    float top_p;       // 1 = off
} SamplerConfig;

// Draws a token from softmax(logits / temperature) restricted to the top_k
// most likely tokens and the smallest set with mass >= top_p; *logprob is the
// token's log-probability under that (renormalised) distribution. probs
// holds V floats and order 2V ints of scratch.
int sample_token(const float *logits, int V, const SamplerConfig *sc, Rng *rng, float *probs,
                 int *order, float *logprob);

// Continues B prompts (prompts[b] with prompt_lens[b] tokens, at least one) by
// up to max_new tokens each, stopping a sequence at stop_token (kept in the
// output) or at the context limit. Writes tokens and their sampling
// log-probabilities to out_tokens / out_logprobs (B, max_new) and the count to
// out_lens (B). Needs a cache with at least B slots.
void generate(const GPT *m, KVCache *c, const int *const *prompts, const int *prompt_lens, int B,
              int max_new, int stop_token, const SamplerConfig *sc, Rng *rng, int *out_tokens,
              float *out_logprobs, int *out_lens);

#endif
