#include "ppo/ppo_core.h"

#include <math.h>

void kl_penalty_rewards(float *rewards, const float *score, const float *logp,
                        const float *ref_logp, const int *len, int n, int stride, float beta) {
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < len[i]; k++) {
            int j = i * stride + k;
            rewards[j] = -beta * (logp[j] - ref_logp[j]);
        }
        if (len[i] > 0) rewards[i * stride + len[i] - 1] += score[i];
    }
}

void kl_estimates(const float *logp, const float *ref_logp, const int *len, int n, int stride,
                  double *k1, double *k3) {
    double s1 = 0, s3 = 0;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < len[i]; k++) {
            int j = i * stride + k;
            double log_rho = (double)ref_logp[j] - logp[j];
            s1 -= log_rho;
            s3 += expm1(log_rho) - log_rho;
        }
    }
    *k1 = n ? s1 / n : 0;
    *k3 = n ? s3 / n : 0;
}

double mean_sequence_sum(const float *x, const int *len, int n, int stride) {
    double s = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < len[i]; k++) s += x[i * stride + k];
    return n ? s / n : 0;
}

void gae_advantages(float *adv, float *returns, const float *rewards, const float *values,
                    const int *len, int n, int stride, float gamma, float lambda) {
    for (int i = 0; i < n; i++) {
        float next_value = 0.0f, next_adv = 0.0f;
        for (int k = len[i] - 1; k >= 0; k--) {
            int j = i * stride + k;
            float delta = rewards[j] + gamma * next_value - values[j];
            next_adv = delta + gamma * lambda * next_adv;
            adv[j] = next_adv;
            returns[j] = next_adv + values[j];
            next_value = values[j];
        }
    }
}

void whiten(float *x, const int *len, int n, int stride) {
    double sum = 0, sumsq = 0, count = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < len[i]; k++) {
            double v = x[i * stride + k];
            sum += v, sumsq += v * v, count++;
        }
    if (count < 2) return;
    double mean = sum / count, var = sumsq / count - mean * mean;
    double inv = 1.0 / sqrt(var > 0 ? var + 1e-8 : 1e-8);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < len[i]; k++) x[i * stride + k] = (float)((x[i * stride + k] - mean) * inv);
}

PolicyLossStats ppo_policy_loss(const float *logp, const float *old_logp, const float *adv, int m,
                                float eps, float *dlogp) {
    PolicyLossStats s = {0, 0, 0};
    for (int j = 0; j < m; j++) {
        double log_ratio = (double)logp[j] - old_logp[j];
        double ratio = exp(log_ratio);
        double clipped = ratio < 1 - eps ? 1 - eps : ratio > 1 + eps ? 1 + eps : ratio;
        double unclipped_loss = -adv[j] * ratio, clipped_loss = -adv[j] * clipped;
        int clip_active = clipped_loss > unclipped_loss;
        s.loss += clip_active ? clipped_loss : unclipped_loss;
        s.clipfrac += clip_active;
        s.approxkl += 0.5 * log_ratio * log_ratio;
        // d(-A rho)/dlogp = -A rho; the clipped branch is constant in logp.
        if (dlogp) dlogp[j] = clip_active ? 0.0f : (float)(-adv[j] * ratio / m);
    }
    if (m) s.loss /= m, s.clipfrac /= m, s.approxkl /= m;
    return s;
}

ValueLossStats ppo_value_loss(const float *value, const float *old_value, const float *returns,
                              int m, float eps, float *dvalue) {
    ValueLossStats s = {0, 0};
    for (int j = 0; j < m; j++) {
        double d = value[j] - old_value[j];
        double clipped_value = old_value[j] + (d < -eps ? -eps : d > eps ? eps : d);
        double e1 = value[j] - returns[j], e2 = clipped_value - returns[j];
        int clip_active = e2 * e2 > e1 * e1;
        s.loss += 0.5 * (clip_active ? e2 * e2 : e1 * e1);
        s.clipfrac += clip_active;
        // The clipped term wins only when V - old_V is outside the clip range,
        // where it no longer depends on V.
        if (dvalue) dvalue[j] = clip_active ? 0.0f : (float)(e1 / m);
    }
    if (m) s.loss /= m, s.clipfrac /= m;
    return s;
}

double explained_variance(const float *values, const float *returns, const int *len, int n, int stride) {
    double sr = 0, srr = 0, se = 0, see = 0, count = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < len[i]; k++) {
            int j = i * stride + k;
            double r = returns[j], e = returns[j] - values[j];
            sr += r, srr += r * r, se += e, see += e * e, count++;
        }
    if (count < 2) return NAN;
    double var_r = srr / count - (sr / count) * (sr / count), var_e = see / count - (se / count) * (se / count);
    return var_r > 0 ? 1 - var_e / var_r : NAN;
}

void kl_controller_update(KlController *c, double kl, int n_samples) {
    if (c->target <= 0) return;
    double error = kl / c->target - 1;
    error = error < -0.2 ? -0.2 : error > 0.2 ? 0.2 : error;
    // A horizon shorter than the batch would make the step larger than the
    // error itself: with --horizon 1 and 32 samples, 1 - 0.2 * 32 turns beta
    // negative (a KL bonus). At most one horizon per update keeps the factor
    // within [0.8, 1.2], so beta stays positive for every allowed setting.
    double fraction = n_samples / c->horizon;
    if (fraction > 1) fraction = 1;
    c->beta *= 1 + error * fraction;
}

double kl_controller_auto_horizon(long steps, int batch) {
    double h = floor((double)steps * batch / KL_AUTO_HORIZONS + 0.5);
    return h < batch ? batch : h;
}
