// The forward pass behind generate(): rows (prompt positions or one new token
// per sequence) through the model with the KV cache. Internal to model/;
// generate.h is the interface.
#ifndef MODEL_DECODE_H
#define MODEL_DECODE_H

#include <math.h>
#include <stddef.h>

#include "model/generate.h"

// One forward call over n rows (a prefill chunk or a decode step).
typedef struct {
    const GPT *m;
    KVCache *c;
    const int *tok, *pos, *slot;
    int n;
    const int *lrows; // rows whose logits are wanted (row lrows[j] -> logits row j), ascending; NULL: all
    int nl;
    const SamplerConfig *sc; // then, when ns > 0, the draws listed in c->samp_*
    int ns;
} Pass;

// Floats of the cache's copy of a model's matrices (KVCache.wt).
size_t decode_weight_floats(const GPTConfig *cfg);

// Copies m's matrices into c->wt in the layout the forward pass reads,
// on up to c->n_threads threads.
void decode_load_weights(KVCache *c, const GPT *m);

// Thread t's part of the forward pass of P's rows in a team of nth threads
// (the team shares the work by features and meets at two barriers a layer);
// nth = 1 is the whole pass. Fills c->logits rows 0..P->nl-1 and c->head.
void decode_forward(const Pass *P, int t, int nth);

// Start of thread t's share of n items split over nth threads, rounded to a
// multiple of align (nondecreasing in t; n at t = nth).
static inline int split_at(int n, int t, int nth, int align) {
    if (t >= nth) return n;
    long s = ((long)n * t / nth + align / 2) / align * align;
    return s > n ? n : (int)s;
}

// Sums and maxima in eight interleaved lanes: a fixed order (independent of
// alignment) that the compiler can vectorise, which it may not do for a
// plain running sum without -ffast-math.
static inline float sum8(const float *x, int n) {
    float s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += x[i + j];
    float tail = 0.0f;
    for (; i < n; i++) tail += x[i];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail;
}

static inline float max8(const float *x, int n) {
    float s[8];
    for (int j = 0; j < 8; j++) s[j] = -INFINITY;
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] = x[i + j] > s[j] ? x[i + j] : s[j];
    for (; i < n; i++) s[0] = x[i] > s[0] ? x[i] : s[0];
    for (int j = 1; j < 8; j++) s[0] = s[j] > s[0] ? s[j] : s[0];
    return s[0];
}

#endif
