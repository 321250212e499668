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
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt_param_sizes(&m->config, sizes);
    float b1c = 1.0f - powf(cfg->beta1, (float)t), b2c = 1.0f - powf(cfg->beta2, (float)t);
    size_t offset = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        float wd = tensor_is_decayed(k) ? cfg->weight_decay : 0.0f;
        float *p = m->params_memory + offset, *g = m->grads_memory + offset;
        float *mm = m->m_memory + offset, *vv = m->v_memory + offset;
        size_t n = sizes[k];
#pragma omp parallel for
        for (size_t i = 0; i < n; i++) {
            float gi = g[i];
            mm[i] = cfg->beta1 * mm[i] + (1.0f - cfg->beta1) * gi;
            vv[i] = cfg->beta2 * vv[i] + (1.0f - cfg->beta2) * gi * gi;
            float mhat = mm[i] / b1c, vhat = vv[i] / b2c;
            p[i] -= lr * (mhat / (sqrtf(vhat) + cfg->eps) + wd * p[i]);
        }
        offset += n;
    }
}

float gpt_grad_norm(const GPT *m) {
    // Fixed chunks summed in order, not an OpenMP reduction whose combining
    // order may vary: the norm feeds clipping, so it must be bit-reproducible.
    enum { CHUNKS = 64 };
    double partial[CHUNKS];
    size_t n = m->num_params;
    const float *g = m->grads_memory;
#pragma omp parallel for
    for (int c = 0; c < CHUNKS; c++) {
        size_t lo = n * c / CHUNKS, hi = n * (c + 1) / CHUNKS;
        double s = 0.0;
        for (size_t i = lo; i < hi; i++) s += (double)g[i] * g[i];
        partial[c] = s;
    }
    double total = 0.0;
    for (int c = 0; c < CHUNKS; c++) total += partial[c];
    return (float)sqrt(total);
}

float gpt_clip_grad_norm(GPT *m, float max_norm) {
    float norm = gpt_grad_norm(m);
    if (max_norm > 0.0f && norm > max_norm) {
        float scale = max_norm / (norm + 1e-6f);
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
