// AdamW with decoupled weight decay, global gradient-norm clipping and a
// warm-up + cosine learning-rate schedule.
#ifndef MODEL_ADAMW_H
#define MODEL_ADAMW_H

#include "model/gpt.h"

typedef struct {
    float beta1, beta2, eps, weight_decay;
} AdamWConfig;

// Defaults of GPT-2 style training: betas (0.9, 0.95), eps 1e-8, decay 0.1.
AdamWConfig adamw_defaults(void);

// One AdamW step at step t (1-based) with learning rate lr. Weight decay
// applies to the four matrix weights of each block only; embeddings (the
// tied wte is also the LM head), LayerNorm, biases and the scalar head are
// not decayed.
void adamw_update(GPT *m, const AdamWConfig *cfg, float lr, long t);
// adamw_update with every gradient multiplied by grad_scale as it is read
// (the gradients in memory are left as they are): with grad_scale =
// gpt_clip_scale(gpt_grad_norm(m), max_norm) the same update, bit for bit, as
// gpt_clip_grad_norm(m, max_norm) followed by adamw_update, without the pass
// that writes the clipped gradients back.
void adamw_update_scaled(GPT *m, const AdamWConfig *cfg, float lr, long t, float grad_scale);

// L2 norm of all parameter gradients (summed in a fixed order, so the result
// is the same on every run with the same thread count).
float gpt_grad_norm(const GPT *m);
// Scales gradients so their norm is at most max_norm (if max_norm > 0);
// returns the norm before clipping.
float gpt_clip_grad_norm(GPT *m, float max_norm);
// The factor gpt_clip_grad_norm applies for a gradient norm `norm`: 1 when
// max_norm <= 0 or norm <= max_norm.
float gpt_clip_scale(float norm, float max_norm);

// Linear warm-up over `warmup` steps to max_lr, then cosine decay to min_lr
// at step `total`; step is 0-based.
float lr_warmup_cosine(long step, long warmup, long total, float max_lr, float min_lr);

#endif
