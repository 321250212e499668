#include "ppo/critic_free.h"

#include <math.h>

static double group_mean(const float *r, int k) {
    double s = 0;
    for (int i = 0; i < k; i++) s += r[i];
    return s / k;
}

void rloo_advantages(float *adv, const float *r, int n_groups, int k) {
    for (int g = 0; g < n_groups; g++) {
        const float *rg = r + (long)g * k;
        double sum = group_mean(rg, k) * k;
        for (int i = 0; i < k; i++) adv[(long)g * k + i] = (float)(rg[i] - (sum - rg[i]) / (k - 1));
    }
}

void grpo_advantages(float *adv, const float *r, int n_groups, int k) {
    for (int g = 0; g < n_groups; g++) {
        const float *rg = r + (long)g * k;
        double mean = group_mean(rg, k), var = 0;
        for (int i = 0; i < k; i++) var += (rg[i] - mean) * (rg[i] - mean) / k;
        double sd = sqrt(var);
        for (int i = 0; i < k; i++) adv[(long)g * k + i] = sd > 0 ? (float)((rg[i] - mean) / sd) : 0.0f;
    }
}

void reinforce_advantages(float *adv, const float *r, int n, RunningBaseline *b) {
    double mean = group_mean(r, n);
    for (int i = 0; i < n; i++) adv[i] = (float)(r[i] - b->value);
    b->value += b->rate * (mean - b->value);
}

void sequence_advantages_to_tokens(float *token_adv, const float *adv, const int *len, int n, int stride) {
    for (int i = 0; i < n; i++)
        for (int t = 0; t < len[i]; t++) token_adv[(long)i * stride + t] = adv[i];
}
