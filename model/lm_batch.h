// A batch for language-model training: inputs, next-token targets and a
// per-token loss weight (0 masks a token out), with the buffers the loss
// needs, allocated once per run so a step allocates nothing.
#ifndef MODEL_LM_BATCH_H
#define MODEL_LM_BATCH_H

#include "common/error.h"
#include "model/gpt.h"

typedef struct {
    GPT *m;
    int max_B, max_T, V;
    int *inputs, *targets; // (B,T)
    float *weights;        // (B,T)
    float *logp, *dlogp;   // (B,T)
} LmBatch;

int lm_batch_alloc(LmBatch *b, GPT *m, int max_B, int max_T, Error *err);
void lm_batch_free(LmBatch *b);

// Weighted mean next-token loss of the first B rows of T tokens (rows laid
// out with stride T); with backward set, also zeroes the gradients and runs
// backward, leaving them in m->grads.
float lm_batch_loss(LmBatch *b, int B, int T, int backward);

#endif
