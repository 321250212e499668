#include "model/adamw.h"

#include <math.h>
#include <string.h>

#include <omp.h>

AdamWConfig adamw_defaults(void) {
    AdamWConfig c = {0.9f, 0.95f, 1e-8f, 0.1f};
    return c;
}

static int tensor_is_decayed(int i) {
    const char *n = gpt_param_name(i);
    return !strcmp(n, "qkvw") || !strcmp(n, "attprojw") || !strcmp(n, "fcw") || !strcmp(n, "fcprojw");
}

void adamw_update(GPT *m, const AdamWConfig *cfg, float lr, long t) {
    adamw_update_scaled(m, cfg, lr, t, 1.0f);
}

void adamw_update_scaled(GPT *m, const AdamWConfig *cfg, float lr, long t, float grad_scale) {
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt_param_sizes(&m->config, sizes);
    const float b1 = cfg->beta1, b2 = cfg->beta2, eps = cfg->eps;
    const float b1c = 1.0f - powf(b1, (float)t), b2c = 1.0f - powf(b2, (float)t);
    float *p = m->params_memory, *g = m->grads_memory, *mm = m->m_memory, *vv = m->v_memory;
    // One parallel region for the whole buffer (it was one per tensor: 18
    // fork/joins a step, several for tensors of C floats); each tensor is a
    // worksharing loop without a barrier, with its own weight decay. Every
    // element's update is the same arithmetic as before, whatever thread runs it.
#pragma omp parallel
    {
        size_t offset = 0;
        for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
            const float wd = tensor_is_decayed(k) ? cfg->weight_decay : 0.0f;
            const size_t lo = offset, hi = offset + sizes[k];
#pragma omp for schedule(static) nowait
            for (size_t i = lo; i < hi; i++) {
                float gi = g[i] * grad_scale;
                mm[i] = b1 * mm[i] + (1.0f - b1) * gi;
                vv[i] = b2 * vv[i] + (1.0f - b2) * gi * gi;
                float mhat = mm[i] / b1c, vhat = vv[i] / b2c;
                p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
            }
            offset = hi;
        }
    }
}

float gpt_grad_norm(const GPT *m) {
    // Fixed chunks summed in order, not an OpenMP reduction whose combining
    // order may vary: the norm feeds clipping, so it must be bit-reproducible.
    // Within a chunk, 16 running sums (four vectors of doubles) instead of
    // one serial chain, which bounded the loop by the latency of an add.
    enum { CHUNKS = 64, LANES = 16 };
    double partial[CHUNKS];
    size_t n = m->num_params;
    const float *g = m->grads_memory;
#pragma omp parallel for
    for (int c = 0; c < CHUNKS; c++) {
        size_t lo = n * c / CHUNKS, hi = n * (c + 1) / CHUNKS, i = lo;
        double lane[LANES] = {0};
        for (; i + LANES <= hi; i += LANES)
            for (int k = 0; k < LANES; k++) lane[k] += (double)g[i + k] * g[i + k];
        double s = 0.0;
        for (; i < hi; i++) s += (double)g[i] * g[i];
        for (int k = 0; k < LANES; k++) s += lane[k];
        partial[c] = s;
    }
    double total = 0.0;
    for (int c = 0; c < CHUNKS; c++) total += partial[c];
    return (float)sqrt(total);
}

float gpt_clip_scale(float norm, float max_norm) {
    return max_norm > 0.0f && norm > max_norm ? max_norm / (norm + 1e-6f) : 1.0f;
}

float gpt_clip_grad_norm(GPT *m, float max_norm) {
    float norm = gpt_grad_norm(m);
    if (max_norm > 0.0f && norm > max_norm) {
        float scale = gpt_clip_scale(norm, max_norm);
        float *g = m->grads_memory;
#pragma omp parallel for
        for (size_t i = 0; i < m->num_params; i++) g[i] *= scale;
    }
    return norm;
}

float lr_warmup_cosine(long step, long warmup, long total, float max_lr, float min_lr) {
    if (step < warmup) return max_lr * (float)(step + 1) / (float)warmup;
    if (step >= total) return min_lr;
    double progress = (double)(step - warmup) / (double)(total - warmup > 0 ? total - warmup : 1);
    return min_lr + 0.5f * (max_lr - min_lr) * (float)(1.0 + cos(M_PI * progress));
}
