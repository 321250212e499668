#include "model/layers.h"

#include <math.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "model/fastmath.h"

void encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T,
                     int C) {
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *we = wte + (size_t)inp[b * T + t] * C;
            const float *pe = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) o[c] = we[c] + pe[c];
        }
    }
}

void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B, int T,
                      int C) {
    // Tokens repeat within a batch, so rows of dwte collide; each thread owns a
    // slice of channels instead, which keeps the sum order fixed (reproducible).
#pragma omp parallel
    {
        int nth = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = C * id / nth, c1 = C * (id + 1) / nth;
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                const float *d = dout + ((size_t)b * T + t) * C;
                float *we = dwte + (size_t)inp[b * T + t] * C;
                float *pe = dwpe + (size_t)t * C;
                for (int c = c0; c < c1; c++) {
                    we[c] += d[c];
                    pe[c] += d[c];
                }
            }
        }
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C) {
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        float v = 0.0f;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        float s = 1.0f / sqrtf(v + 1e-5f);
        float *o = out + (size_t)i * C;
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * weight[c] + bias[c];
        mean[i] = m;
        rstd[i] = s;
    }
}

void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int N, int C) {
#pragma omp parallel
    {
#pragma omp for
        for (int i = 0; i < N; i++) {
            const float *d = dout + (size_t)i * C, *x = inp + (size_t)i * C;
            float m = mean[i], s = rstd[i];
            float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
            for (int c = 0; c < C; c++) {
                float dnorm = weight[c] * d[c];
                dnorm_mean += dnorm;
                dnorm_norm_mean += dnorm * (x[c] - m) * s;
            }
            dnorm_mean /= C;
            dnorm_norm_mean /= C;
            float *di = dinp + (size_t)i * C;
            for (int c = 0; c < C; c++) {
                float norm = (x[c] - m) * s;
                di[c] += (weight[c] * d[c] - dnorm_mean - norm * dnorm_norm_mean) * s;
            }
        }
        // Parameter gradients sum over rows: each thread owns a channel slice.
        int nth = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = C * id / nth, c1 = C * (id + 1) / nth;
        for (int i = 0; i < N; i++) {
            const float *d = dout + (size_t)i * C, *x = inp + (size_t)i * C;
            for (int c = c0; c < c1; c++) {
                dweight[c] += (x[c] - mean[i]) * rstd[i] * d[c];
                dbias[c] += d[c];
            }
        }
    }
}

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                    int IC, int OC) {
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for
        for (int i = 0; i < N; i++) memcpy(out + (size_t)i * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, weight, IC,
                beta, out, OC);
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int IC, int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, weight, IC,
                0.0f, dinp, IC);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f,
                dweight, IC);
    if (dbias) {
#pragma omp parallel for
        for (int o = 0; o < OC; o++) {
            float sum = 0.0f;
            for (int i = 0; i < N; i++) sum += dout[(size_t)i * OC + o];
            dbias[o] += sum;
        }
    }
}

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    // One (b,h) pair per task; sgemm inside a parallel region runs on one
    // thread in OpenBLAS's OpenMP build, so the two levels do not fight.
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hs;
            const float *k = q + C, *v = q + 2 * C;
            float *a = att + ((size_t)b * NH + h) * T * T;
            // scores (T,T) = scale * Q K^T; the causal mask is applied below.
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, C3, k, C3,
                        0.0f, a, T);
            for (int i = 0; i < T; i++) {
                float *row = a + (size_t)i * T;
                float maxv = row[0];
                for (int j = 1; j <= i; j++) maxv = row[j] > maxv ? row[j] : maxv;
                float sum = 0.0f;
                for (int j = 0; j <= i; j++) {
                    row[j] = fast_expf(row[j] - maxv);
                    sum += row[j];
                }
                float inv = 1.0f / sum;
                for (int j = 0; j <= i; j++) row[j] *= inv;
                for (int j = i + 1; j < T; j++) row[j] = 0.0f;
            }
            // out (T,hs) = att @ V
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, v, C3,
                        0.0f, out + (size_t)b * T * C + h * hs, C);
        }
    }
}

void attention_backward(float *dqkv, float *scratch, int n_threads, const float *dout,
                        const float *qkv, const float *att, int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) num_threads(n_threads)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hs;
            const float *k = q + C, *v = q + 2 * C;
            const float *a = att + ((size_t)b * NH + h) * T * T;
            const float *d = dout + (size_t)b * T * C + h * hs;
            float *dq = dqkv + (size_t)b * T * C3 + h * hs;
            float *dk = dq + C, *dv = dq + 2 * C;
            float *datt = scratch + (size_t)omp_get_thread_num() * T * T;
            // datt (T,T) = dout @ V^T ; dV = att^T @ dout
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, d, C, v, C3, 0.0f,
                        datt, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, d, C, 0.0f,
                        dv, C3);
            // Softmax backward in place: datt becomes the gradient of the scores.
            for (int i = 0; i < T; i++) {
                const float *arow = a + (size_t)i * T;
                float *drow = datt + (size_t)i * T;
                float dot = 0.0f;
                for (int j = 0; j <= i; j++) dot += arow[j] * drow[j];
                for (int j = 0; j <= i; j++) drow[j] = arow[j] * (drow[j] - dot);
                for (int j = i + 1; j < T; j++) drow[j] = 0.0f;
            }
            // dQ = scale * dscores @ K ; dK = scale * dscores^T @ Q
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, scale, datt, T, k, C3,
                        0.0f, dq, C3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, scale, datt, T, q, C3,
                        0.0f, dk, C3);
        }
    }
}

#define GELU_SCALE 0.7978845608028654f // sqrt(2/pi)

void gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + fast_tanhf(GELU_SCALE * (x + 0.044715f * x * x * x)));
    }
}

void gelu_backward(float *dinout, const float *inp, size_t n) {
#pragma omp parallel for simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        float th = fast_tanhf(u);
        float sech2 = 1.0f - th * th;
        float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        dinout[i] *= grad;
    }
}

void residual_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void head_forward(float *out, const float *inp, const float *w, const float *b, int N, int C) {
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float s = b[0];
        for (int c = 0; c < C; c++) s += x[c] * w[c];
        out[i] = s;
    }
}

void head_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                   const float *w, int N, int C) {
    float dbsum = 0.0f;
    for (int i = 0; i < N; i++) {
        if (dout[i] == 0.0f) continue; // most positions carry no head gradient
        const float *x = inp + (size_t)i * C;
        float *dx = dinp + (size_t)i * C;
        for (int c = 0; c < C; c++) {
            dx[c] += dout[i] * w[c];
            dw[c] += dout[i] * x[c];
        }
        dbsum += dout[i];
    }
    db[0] += dbsum;
}
