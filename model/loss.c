#include "model/loss.h"

#include <math.h>
#include <stddef.h>

#include "model/fastmath.h"

#include "model/vecmath.h"

#ifdef VECMATH_AVX2
// Largest of row[v] * inv_temp over a row of V logits.
static float row_max8(const float *row, int V, float inv_temp) {
    int Vf = V / 8 * 8, rest = V - Vf;
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (int v = 0; v < Vf; v += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(row + v));
    if (rest) {
        __m256i mask = lanes_below(rest);
        vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_maskload_ps(row + Vf, mask),
                                                     _mm256_castsi256_ps(mask)));
    }
    // inv_temp > 0, so the largest logit gives the largest scaled logit.
    return hmax8(vmax) * inv_temp;
}

// Sum of exp(row[v] * inv_temp - maxv); when out is not NULL each term is
// also stored in out[v].
static float row_expsum8(float *out, const float *row, int V, float inv_temp, float maxv) {
    int Vf = V / 8 * 8, rest = V - Vf;
    __m256 vt = _mm256_set1_ps(inv_temp), vm = _mm256_set1_ps(maxv);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int v = 0;
    for (; v + 16 <= Vf; v += 16) {
        __m256 e0 = fast_exp8(_mm256_fmsub_ps(_mm256_loadu_ps(row + v), vt, vm));
        __m256 e1 = fast_exp8(_mm256_fmsub_ps(_mm256_loadu_ps(row + v + 8), vt, vm));
        if (out) _mm256_storeu_ps(out + v, e0), _mm256_storeu_ps(out + v + 8, e1);
        s0 = _mm256_add_ps(s0, e0);
        s1 = _mm256_add_ps(s1, e1);
    }
    for (; v < Vf; v += 8) {
        __m256 e = fast_exp8(_mm256_fmsub_ps(_mm256_loadu_ps(row + v), vt, vm));
        if (out) _mm256_storeu_ps(out + v, e);
        s0 = _mm256_add_ps(s0, e);
    }
    if (rest) {
        __m256i mask = lanes_below(rest);
        __m256 e = fast_exp8(_mm256_fmsub_ps(_mm256_maskload_ps(row + Vf, mask), vt, vm));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
        if (out) _mm256_maskstore_ps(out + Vf, mask, e);
        s1 = _mm256_add_ps(s1, e);
    }
    return hsum8(_mm256_add_ps(s0, s1));
}
#endif

// Sum of exp(row[v] * inv_temp - max) over a row, the max in *maxv_out; the
// exponentials are stored in out[0..V) when out is not NULL.
static float row_expsum(float *out, const float *row, int V, float inv_temp, float *maxv_out) {
#ifdef VECMATH_AVX2
    float maxv = row_max8(row, V, inv_temp);
    float sum = row_expsum8(out, row, V, inv_temp, maxv);
#else
    float maxv = row[0] * inv_temp;
#pragma omp simd reduction(max : maxv)
    for (int v = 1; v < V; v++) maxv = row[v] * inv_temp > maxv ? row[v] * inv_temp : maxv;
    float sum = 0.0f;
    if (out) {
#pragma omp simd reduction(+ : sum)
        for (int v = 0; v < V; v++) {
            float e = fast_expf(row[v] * inv_temp - maxv);
            out[v] = e;
            sum += e;
        }
    } else {
#pragma omp simd reduction(+ : sum)
        for (int v = 0; v < V; v++) sum += fast_expf(row[v] * inv_temp - maxv);
    }
#endif
    *maxv_out = maxv;
    return sum;
}

// Max and log of the softmax normaliser of one row of logits/temperature.
static float row_logsumexp(const float *row, int V, float inv_temp, float *maxv_out) {
    float sum = row_expsum(NULL, row, V, inv_temp, maxv_out);
    return *maxv_out + logf(sum);
}

void logprob_forward(float *logp, const float *logits, const int *targets, int N, int V,
                     float temperature) {
    float inv_temp = 1.0f / temperature;
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float *row = logits + (size_t)i * V;
        float maxv;
        float lse = row_logsumexp(row, V, inv_temp, &maxv);
        logp[i] = row[targets[i]] * inv_temp - lse;
    }
}

// dlogits row from the exponentials stored in it and their sum.
static void logprob_row_backward(float *drow, int target, float dlogp, float sum, int V, float inv_temp) {
    float scale = dlogp * inv_temp, k = -scale / sum;
    for (int v = 0; v < V; v++) drow[v] *= k;
    drow[target] += scale;
}

void logprob_backward(float *dlogits, const float *logits, const int *targets, const float *dlogp,
                      int N, int V, float temperature) {
    // d logp / d logit_v = (1[v = target] - softmax_v) / temperature. The
    // exponentials are written into the output row as they are summed, then
    // scaled: one exp per logit instead of two (a log-sum-exp pass and then
    // exp(logit - lse) again).
    float inv_temp = 1.0f / temperature;
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float *row = logits + (size_t)i * V;
        float *drow = dlogits + (size_t)i * V;
        if (dlogp[i] == 0.0f) {
            for (int v = 0; v < V; v++) drow[v] = 0.0f;
            continue;
        }
        float maxv, sum = row_expsum(drow, row, V, inv_temp, &maxv);
        logprob_row_backward(drow, targets[i], dlogp[i], sum, V, inv_temp);
    }
}

void logprob_forward_backward(float *logp, float *dlogits, const float *logits, const int *targets,
                              const float *dlogp, int N, int V, float temperature) {
    // row_logsumexp is maxv + logf(sum) with the same max and sum as here.
    float inv_temp = 1.0f / temperature;
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float *row = logits + (size_t)i * V;
        float *drow = dlogits + (size_t)i * V;
        int keep = dlogp[i] != 0.0f;
        float maxv, sum = row_expsum(keep ? drow : NULL, row, V, inv_temp, &maxv);
        logp[i] = row[targets[i]] * inv_temp - (maxv + logf(sum));
        if (keep) logprob_row_backward(drow, targets[i], dlogp[i], sum, V, inv_temp);
        else
            for (int v = 0; v < V; v++) drow[v] = 0.0f;
    }
}

float masked_nll(const float *logp, const float *weights, int N, float *dlogp) {
    double wsum = 0.0, loss = 0.0;
    for (int i = 0; i < N; i++) {
        double w = weights ? weights[i] : 1.0;
        wsum += w;
        loss -= w * logp[i];
    }
    if (dlogp) {
        for (int i = 0; i < N; i++) {
            float w = weights ? weights[i] : 1.0f;
            dlogp[i] = wsum > 0 ? (float)(-w / wsum) : 0.0f;
        }
    }
    return wsum > 0 ? (float)(loss / wsum) : 0.0f;
}

void masked_nll_grad(const float *weights, int N, float *dlogp) {
    double wsum = 0.0;
    for (int i = 0; i < N; i++) wsum += weights ? weights[i] : 1.0;
    for (int i = 0; i < N; i++) {
        float w = weights ? weights[i] : 1.0f;
        dlogp[i] = wsum > 0 ? (float)(-w / wsum) : 0.0f;
    }
}

// log sum_v exp(row[v] * inv_temp), in double.
static double row_logsumexp_double(const float *row, int V, double inv_temp) {
    double maxv = -INFINITY, sum = 0;
    for (int v = 0; v < V; v++) maxv = row[v] * inv_temp > maxv ? row[v] * inv_temp : maxv;
    for (int v = 0; v < V; v++) sum += exp(row[v] * inv_temp - maxv);
    return maxv + log(sum);
}

void kl_full_forward(float *kl, const float *logits_p, const float *logits_q, int N, int V, float temperature) {
    double inv_temp = 1.0 / temperature;
    // In double with exp, not fast_expf: the KL of close distributions is a
    // sum of tiny differences of logs, which float rounding would swamp.
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float *rp = logits_p + (size_t)i * V, *rq = logits_q + (size_t)i * V;
        double lse_p = row_logsumexp_double(rp, V, inv_temp), lse_q = row_logsumexp_double(rq, V, inv_temp);
        double sum = 0;
        for (int v = 0; v < V; v++) {
            double lp = rp[v] * inv_temp - lse_p, lq = rq[v] * inv_temp - lse_q;
            sum += exp(lp) * (lp - lq);
        }
        kl[i] = sum > 0 ? (float)sum : 0.0f; // rounding can leave -1e-17 where p = q
    }
}

void entropy_forward(float *ent, const float *logits, int N, int V, float temperature) {
    float inv_temp = 1.0f / temperature;
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float *row = logits + (size_t)i * V;
        float maxv;
        float lse = row_logsumexp(row, V, inv_temp, &maxv);
        float h = 0.0f;
        for (int v = 0; v < V; v++) {
            float lp = row[v] * inv_temp - lse;
            h -= fast_expf(lp) * lp;
        }
        ent[i] = h;
    }
}

void entropy_backward_accumulate(float *dlogits, const float *logits, const float *dent, int N,
                                 int V, float temperature) {
    // H = -sum p log p; dH/dz_v = -p_v (log p_v + H) / temperature.
    float inv_temp = 1.0f / temperature;
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        if (dent[i] == 0.0f) continue;
        const float *row = logits + (size_t)i * V;
        float *drow = dlogits + (size_t)i * V;
        float maxv;
        float lse = row_logsumexp(row, V, inv_temp, &maxv);
        float h = 0.0f;
        for (int v = 0; v < V; v++) {
            float lp = row[v] * inv_temp - lse;
            h -= fast_expf(lp) * lp;
        }
        for (int v = 0; v < V; v++) {
            float lp = row[v] * inv_temp - lse;
            drow[v] += dent[i] * (-fast_expf(lp) * (lp + h)) * inv_temp;
        }
    }
}
