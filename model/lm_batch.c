#include "model/lm_batch.h"

#include <stdlib.h>
#include <string.h>

#include "model/loss.h"

int lm_batch_alloc(LmBatch *b, GPT *m, int max_B, int max_T, Error *err) {
    memset(b, 0, sizeof *b);
    size_t n = (size_t)max_B * max_T;
    b->m = m, b->max_B = max_B, b->max_T = max_T, b->V = m->config.vocab_size;
    b->inputs = calloc(n, sizeof(int));
    b->targets = calloc(n, sizeof(int));
    b->weights = calloc(n, sizeof(float));
    b->logp = calloc(n, sizeof(float));
    b->dlogp = calloc(n, sizeof(float));
    if (!b->inputs || !b->targets || !b->weights || !b->logp || !b->dlogp) {
        lm_batch_free(b);
        return error_set(err, "out of memory for a batch of %d x %d tokens", max_B, max_T);
    }
    return 0;
}

void lm_batch_free(LmBatch *b) {
    free(b->inputs), free(b->targets), free(b->weights), free(b->logp), free(b->dlogp);
    memset(b, 0, sizeof *b);
}

float lm_batch_loss(LmBatch *b, int B, int T, int backward) {
    int N = B * T;
    gpt_forward(b->m, b->inputs, B, T, 1);
    if (!backward) {
        logprob_forward(b->logp, b->m->acts.logits, b->targets, N, b->V, 1.0f);
        return masked_nll(b->logp, b->weights, N, NULL);
    }
    // The gradient of the mean NLL does not depend on logp, so the loss and
    // dlogits come from one pass over the logits (the same values as
    // logprob_forward, masked_nll and logprob_backward in turn).
    masked_nll_grad(b->weights, N, b->dlogp);
    logprob_forward_backward(b->logp, b->m->bw.dlogits, b->m->acts.logits, b->targets, b->dlogp, N, b->V, 1.0f);
    float loss = masked_nll(b->logp, b->weights, N, NULL);
    gpt_zero_grad(b->m);
    gpt_backward(b->m, b->inputs, 1, 0);
    return loss;
}
