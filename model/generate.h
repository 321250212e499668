// Sampling with a KV cache: a prompt runs through the model once (prefill:
// all its positions in one pass, the LM head only at its last position), then
// each new token costs one row through the model instead of a forward pass
// over the whole prefix.
#ifndef MODEL_GENERATE_H
#define MODEL_GENERATE_H

#include "common/error.h"
#include "common/rng.h"
#include "model/gpt.h"

// Everything decoding and sampling need, allocated once by kvcache_create:
// nothing allocates after that until kvcache_free. One forward call over a
// set of rows runs in one OpenMP parallel region of up to n_threads threads
// (omp_get_max_threads() at kvcache_create); results are reproducible for a
// given thread count.
typedef struct {
    int slots, max_T, C, V, NH, L;
    int Tp;        // max_T rounded up to a multiple of 8 (the key cache holds blocks of 8)
    int rows;      // most rows one forward call takes (prefill chunk), >= slots
    int n_threads; // threads the per-thread scratch is sized for
    double min_macs; // a call uses a thread per this many multiply-adds, up to n_threads (2e6; 0: all)
    float *k;      // (L, slots, NH, Tp/8, hs, 8) cached keys, in blocks of 8 positions
    float *v;      // (L, slots, NH, Tp, hs) cached values
    // The model's matrices transposed to (in, out), the layout the forward
    // pass multiplies by (see decode.c); copied from `model` by
    // kvcache_set_model.
    float *wt;
    const GPT *model;
    // Activations inside a forward call are token-major: (rows, features).
    // Per-thread scratch, n_threads blocks of thread_floats: the residual
    // stream and its LayerNorm, attention weights.
    float *thread_mem;
    size_t thread_floats;
    // Shared scratch of one forward call; threads write disjoint features.
    float *qkv;     // (rows, 3C), features grouped by head: q, k, v of head 0, then head 1, ...
    float *atty;    // (rows, C)
    float *fch;     // (rows, 4C)
    float *part;    // (2, n_threads, rows, C) per-thread partial sums of the projections
    float *logits;  // (slots, V) logits of the last step (row i)
    float *head;    // (slots) scalar head of the last step
    float *seq_logits; // (slots, V) generate: logits at each prompt's last position
    float *probs;   // (slots, V) sampler scratch, one row per row sampled at once
    int *order;     // (slots, 2V) sampler scratch, likewise
    // generate's per-sequence state, (slots) each: kept here so that neither
    // a decode step nor a call of generate allocates anything.
    int *pos, *tok, *row_seq, *row_pos, *done;
    int *ready;    // step (position) whose logits a sequence samples next
    int *samp_seq, *samp_row, *samp_tok; // one step's draws: sequence, logits row, token
    float *samp_lp;
    double *samp_u; // the uniforms of those draws, taken from the Rng in order
    int *chunk_tok, *chunk_pos, *chunk_slot; // (rows) rows of one prefill call
    int *logit_rows; // (slots) rows of one call whose logits are wanted
    float *memory;
    int *int_memory;
    double *double_memory;
} KVCache;

// Allocates a cache for `slots` sequences of up to cfg->max_seq_len tokens.
int kvcache_create(KVCache *c, const GPTConfig *cfg, int slots, Error *err);
void kvcache_free(KVCache *c);

// Copies m's matrices into c, for gpt_decode_step. generate() does this at
// every call; a caller of gpt_decode_step must do it again after changing
// m's parameters (gpt_decode_step itself does it when m is not the model
// set last).
void kvcache_set_model(KVCache *c, const GPT *m);

// One token for each of n rows (n <= c->slots): row i feeds tokens[i] at
// position pos[i] of the sequence held in cache slot slots[i], whose keys and
// values for positions 0..pos[i]-1 must already be cached or be fed by an
// earlier row of the same call. Fills c->logits and c->head (row i).
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
// holds V floats and order 2V ints of scratch. Takes one uniform from rng
// unless greedy (temperature 0), which takes none.
int sample_token(const float *logits, int V, const SamplerConfig *sc, Rng *rng, float *probs,
                 int *order, float *logprob);
// The same draw with the uniform u in [0, 1) given (ignored when greedy):
// sample_token is this with u = rng_uniform_double(rng).
int sample_token_u(const float *logits, int V, const SamplerConfig *sc, double u, float *probs,
                   int *order, float *logprob);

// Continues B prompts (prompts[b] with prompt_lens[b] tokens, at least one) by
// up to max_new tokens each, stopping a sequence at stop_token (kept in the
// output) or at the context limit. Writes tokens and their sampling
// log-probabilities to out_tokens / out_logprobs (B, max_new) and the count to
// out_lens (B). Needs a cache with at least B slots. Prompts of any lengths
// can share a call: every prompt is prefilled at once, and the draws are
// taken from rng in the order of a position-by-position run (position, then
// sequence), whatever the prompt lengths.
void generate(const GPT *m, KVCache *c, const int *const *prompts, const int *prompt_lens, int B,
              int max_new, int stop_token, const SamplerConfig *sc, Rng *rng, int *out_tokens,
              float *out_logprobs, int *out_lens);

#endif
