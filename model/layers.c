#include "model/layers.h"

#include <math.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "model/fastmath.h"
#include "model/vecmath.h"

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

// The per-row sums below are omp simd reductions: GCC keeps eight partial
// sums in a vector instead of one serial chain (which bounded these loops by
// the add latency). The order is fixed by the code, not by the thread count.
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C) {
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float m = 0.0f;
#pragma omp simd reduction(+ : m)
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        float s = 1.0f / sqrtf(v + 1e-5f);
        float *o = out + (size_t)i * C;
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * weight[c] + bias[c];
        mean[i] = m;
        rstd[i] = s;
    }
}

// One row of the LayerNorm backward: the means over its channels of
// dnorm = weight * dout and of dnorm * norm, which every dinp of the row needs.
static inline void layernorm_row_means(const float *d, const float *x, const float *weight, float m, float s,
                                       int C, float *dnorm_mean, float *dnorm_norm_mean) {
    float a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
    for (int c = 0; c < C; c++) {
        float dnorm = weight[c] * d[c];
        a += dnorm;
        b += dnorm * (x[c] - m) * s;
    }
    *dnorm_mean = a / C;
    *dnorm_norm_mean = b / C;
}

void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int N, int C) {
#pragma omp parallel
    {
#pragma omp for nowait
        for (int i = 0; i < N; i++) {
            const float *d = dout + (size_t)i * C, *x = inp + (size_t)i * C;
            float m = mean[i], s = rstd[i];
            float dnorm_mean, dnorm_norm_mean;
            layernorm_row_means(d, x, weight, m, s, C, &dnorm_mean, &dnorm_norm_mean);
            float *di = dinp + (size_t)i * C;
            for (int c = 0; c < C; c++) {
                float norm = (x[c] - m) * s;
                di[c] += (weight[c] * d[c] - dnorm_mean - norm * dnorm_norm_mean) * s;
            }
        }
        // Parameter gradients sum over rows: each thread owns a channel slice
        // (it only reads what the row loop reads, so no barrier is needed).
        int nth = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = C * id / nth, c1 = C * (id + 1) / nth;
        for (int i = 0; i < N; i++) {
            const float *d = dout + (size_t)i * C, *x = inp + (size_t)i * C;
            float m = mean[i], s = rstd[i];
            for (int c = c0; c < c1; c++) {
                dweight[c] += (x[c] - m) * s * d[c];
                dbias[c] += d[c];
            }
        }
    }
}

void layernorm_backward_sums(float *dinp, float *dweight, float *dbias, float *dsum, const float *dout,
                             const float *inp, const float *weight, const float *mean, const float *rstd,
                             int N, int C, float *partials, int n_threads) {
    // One pass over the rows: each thread takes a contiguous range of rows and
    // sums their parameter gradients (and the column sums of the updated
    // dinp) into its own 3C partials, which are then added in thread order,
    // channel slices split over the threads. layernorm_backward read dout
    // and inp twice, and the bias gradient of the next projection read dinp
    // once more.
#pragma omp parallel num_threads(n_threads)
    {
        int nth = omp_get_num_threads(), id = omp_get_thread_num();
        int i0 = (int)((long long)N * id / nth), i1 = (int)((long long)N * (id + 1) / nth);
        float *pw = partials + (size_t)id * 3 * C, *pb = pw + C, *ps = pb + C;
        for (int c = 0; c < 3 * C; c++) pw[c] = 0.0f;
        for (int i = i0; i < i1; i++) {
            const float *d = dout + (size_t)i * C, *x = inp + (size_t)i * C;
            float m = mean[i], s = rstd[i];
            float dnorm_mean, dnorm_norm_mean;
            layernorm_row_means(d, x, weight, m, s, C, &dnorm_mean, &dnorm_norm_mean);
            float *di = dinp + (size_t)i * C;
            // omp simd: the partials never alias the rows (GCC would otherwise
            // not vectorise this loop for fear that they might).
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float norm = (x[c] - m) * s;
                di[c] += (weight[c] * d[c] - dnorm_mean - norm * dnorm_norm_mean) * s;
                pw[c] += norm * d[c];
                pb[c] += d[c];
            }
            if (dsum) {
#pragma omp simd
                for (int c = 0; c < C; c++) ps[c] += di[c];
            }
        }
#pragma omp barrier
        int c0 = C * id / nth, c1 = C * (id + 1) / nth;
        for (int c = c0; c < c1; c++) {
            float w = 0.0f, b = 0.0f, t = 0.0f;
            for (int k = 0; k < nth; k++) {
                const float *q = partials + (size_t)k * 3 * C;
                w += q[c], b += q[C + c], t += q[2 * C + c];
            }
            dweight[c] += w;
            dbias[c] += b;
            if (dsum) dsum[c] += t;
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

void matmul_residual_forward(float *out, const float *residual, const float *inp, const float *weight,
                             const float *bias, int N, int IC, int OC) {
    // One pass writes residual + bias, and sgemm adds the product onto it
    // (beta 1): no separate buffer for the product, no separate residual pass.
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float *r = residual + (size_t)i * OC;
        float *o = out + (size_t)i * OC;
        for (int c = 0; c < OC; c++) o[c] = r[c] + bias[c];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, weight, IC, 1.0f,
                out, OC);
}

// dbias[o] += column sum o of dout (N,OC), for blocks k0 <= k < k1 of 32
// columns. Each task owns a block of columns and reads the rows in order,
// contiguously (the old loop ran down one column at a time, a stride of OC
// floats per load); every column is still summed row by row from zero and
// then added, so the result is bit for bit the same.
enum { BIAS_BLK = 32 };

static void bias_backward_blocks(float *dbias, const float *dout, int N, int OC, int k0, int k1) {
#pragma omp parallel for
    for (int k = k0; k < k1; k++) {
        int o0 = k * BIAS_BLK, n = OC - o0 < BIAS_BLK ? OC - o0 : BIAS_BLK;
        float acc[BIAS_BLK] = {0};
        for (int i = 0; i < N; i++) {
            const float *row = dout + (size_t)i * OC + o0;
            for (int o = 0; o < n; o++) acc[o] += row[o];
        }
        for (int o = 0; o < n; o++) dbias[o0 + o] += acc[o];
    }
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int IC, int OC) {
    int nblk = (OC + BIAS_BLK - 1) / BIAS_BLK;
    // The two products cost the same (2 N IC OC flops each) and are
    // independent. On two threads each runs whole on one thread (OpenBLAS is
    // single-threaded inside a parallel region) instead of both being split
    // in halves that synchronise inside OpenBLAS, and each thread then sums
    // half of the bias columns; on other counts OpenBLAS splits each product.
    if (omp_get_max_threads() == 2 && !omp_in_parallel()) {
#pragma omp parallel sections num_threads(2)
        {
#pragma omp section
            {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, weight,
                            IC, 0.0f, dinp, IC);
                if (dbias) bias_backward_blocks(dbias, dout, N, OC, 0, nblk / 2);
            }
#pragma omp section
            {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, inp, IC,
                            1.0f, dweight, IC);
                if (dbias) bias_backward_blocks(dbias, dout, N, OC, nblk / 2, nblk);
            }
        }
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, weight, IC,
                0.0f, dinp, IC);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f,
                dweight, IC);
    if (dbias) bias_backward_blocks(dbias, dout, N, OC, 0, nblk);
}

// ---- causal attention ---------------------------------------------------------------
// Per (b,h) pair, with P the (T,T) softmax weights (zero above the diagonal):
//   forward   S = scale Q K^T (j <= i only), P = softmax(S), out = P V
//   backward  dP = dout V^T, dV = P^T dout, dS = P * (dP - rowsum(P * dP)),
//             dQ = scale dS K, dK = scale dS^T Q.
// Three small kernels cover the six products, each computing only the lower
// triangle (half the work of a full T x T product) and packing nothing; they
// replace per-(b,h) cblas_sgemm calls that computed the whole square and spent
// much of their time copying panels and zeroing outputs (sgemm_beta, *copy in
// the profile). The simple sgemm version is kept in tests/test_layers.c as the
// reference these are compared with.
//
// The kernels rely on P[i][j] = 0 for i < j <= i + 3 (they run over tiles of
// four rows and multiply the few entries just above the diagonal by those
// zeros); attention_forward zeroes the whole upper triangle of att, backward
// the three entries past the diagonal of its scratch dS.
#ifdef VECMATH_AVX2
#define LAYERS_AVX2 1
// Keeps a loaded vector in a register: GCC otherwise folds the load into each
// of the FMAs that use it, and the tile runs at the load ports' pace (one
// third slower in these kernels).
#define IN_REGISTER(v) __asm__("" : "+x"(v))
#endif

enum { ATT_TP = 16 }; // the transposed operand's rows are padded to a multiple of this

static int round_up_int(int n, int m) { return (n + m - 1) / m * m; }

// Row stride of the scratch matrices (K or V transposed, dS): a multiple of
// 16 floats plus 16 more, so that consecutive rows do not all fall into the
// same few L1 sets (a stride of 256 floats, T = 256, mapped 64 rows onto 4
// sets: the transpose took as long as the score kernel, which ran at 3/4 speed).
static int scratch_stride(int T) { return round_up_int(T, ATT_TP) + ATT_TP; }

size_t attention_scratch_floats(int T, int C, int NH) {
    size_t hs = (size_t)(C / NH), Tp = (size_t)scratch_stride(T);
    return ((size_t)T + hs) * Tp + ATT_TP;
}

#ifdef LAYERS_AVX2
// dst rows 0..7 (stride ldd) = columns 0..7 of src rows 0..7 (stride lds).
static inline void transpose8x8(float *dst, int ldd, const float *src, int lds) {
    __m256 r[8], t[8];
    for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(src + (size_t)k * lds);
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
    }
    for (int k = 0; k < 8; k += 4) {
        r[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
        r[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xEE);
        r[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
        r[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
    }
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_ps(dst + (size_t)k * ldd, _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
        _mm256_storeu_ps(dst + (size_t)(k + 4) * ldd, _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
    }
}
#endif

// Bt (hs, Tp) = B^T for B (T, hs) with row stride ldb; columns T..Tp-1 zero.
static void transpose_pad(float *Bt, const float *B, int ldb, int T, int Tp, int hs) {
    int j0 = 0;
#ifdef LAYERS_AVX2
    // 8x8 blocks through registers; the rows and columns past the last full
    // block are left to the loops below.
    for (; j0 + 8 <= T; j0 += 8)
        for (int d0 = 0; d0 + 8 <= hs; d0 += 8)
            transpose8x8(Bt + (size_t)d0 * Tp + j0, Tp, B + (size_t)j0 * ldb + d0, ldb);
    for (int d = hs - hs % 8; d < hs; d++)
        for (int j = 0; j < j0; j++) Bt[(size_t)d * Tp + j] = B[(size_t)j * ldb + d];
#endif
    // Rows of B in order; the hs rows of Bt being written stay in L1.
    for (int j = j0; j < T; j++) {
        const float *b = B + (size_t)j * ldb;
        for (int d = 0; d < hs; d++) Bt[(size_t)d * Tp + j] = b[d];
    }
    for (int d = 0; d < hs; d++)
        for (int j = T; j < Tp; j++) Bt[(size_t)d * Tp + j] = 0.0f;
}

#ifdef LAYERS_AVX2
// S rows [i0, i0+R) x columns [j0, j0+16) = alpha A B^T, storing the first
// ncols columns of the block.
static inline __attribute__((always_inline)) void abt_tile(float *S, int lds, const float *A, int lda,
                                                          const float *Bt, int Tp, int hs, float alpha,
                                                          int i0, int j0, int ncols, const int R) {
    __m256 acc[4][2];
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int d = 0; d < hs; d++) {
        __m256 b0 = _mm256_loadu_ps(Bt + (size_t)d * Tp + j0);
        __m256 b1 = _mm256_loadu_ps(Bt + (size_t)d * Tp + j0 + 8);
        IN_REGISTER(b0);
        IN_REGISTER(b1);
        for (int r = 0; r < R; r++) {
            __m256 a = _mm256_broadcast_ss(A + (size_t)(i0 + r) * lda + d);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha);
    for (int r = 0; r < R; r++) {
        float *s = S + (size_t)(i0 + r) * lds + j0;
        __m256 s0 = _mm256_mul_ps(va, acc[r][0]), s1 = _mm256_mul_ps(va, acc[r][1]);
        if (ncols == 16) {
            _mm256_storeu_ps(s, s0);
            _mm256_storeu_ps(s + 8, s1);
        } else {
            float tmp[16];
            _mm256_storeu_ps(tmp, s0);
            _mm256_storeu_ps(tmp + 8, s1);
            memcpy(s, tmp, (size_t)ncols * sizeof(float));
        }
    }
}
#endif

// S[i][j] = alpha A[i,:] . B[j,:] for 0 <= j <= i < T; A (T, hs) has row
// stride lda, Bt (hs, Tp) is B transposed and zero-padded. Entries above the
// diagonal may be overwritten with junk up to the end of the row's 16-block.
static void tril_abt(float *S, int lds, const float *A, int lda, const float *Bt, int Tp, int T,
                     int hs, float alpha) {
#ifdef LAYERS_AVX2
    for (int i0 = 0; i0 < T; i0 += 4) {
        int R = T - i0 < 4 ? T - i0 : 4;
        for (int j0 = 0; j0 < i0 + R; j0 += 16) {
            int ncols = T - j0 < 16 ? T - j0 : 16;
            if (R == 4) abt_tile(S, lds, A, lda, Bt, Tp, hs, alpha, i0, j0, ncols, 4);
            else
                for (int r = 0; r < R; r++) abt_tile(S, lds, A, lda, Bt, Tp, hs, alpha, i0 + r, j0, ncols, 1);
        }
    }
#else
    for (int i = 0; i < T; i++) {
        float *s = S + (size_t)i * lds;
        for (int j = 0; j <= i; j++) s[j] = 0.0f;
        for (int d = 0; d < hs; d++) {
            float a = A[(size_t)i * lda + d];
            const float *bt = Bt + (size_t)d * Tp;
            for (int j = 0; j <= i; j++) s[j] += a * bt[j];
        }
        for (int j = 0; j <= i; j++) s[j] *= alpha;
    }
#endif
}

#ifdef LAYERS_AVX2
// Y rows [i0, i0+R) x columns [c0, c0+8NV) = alpha P[:, 0:jend] X[0:jend, :].
static inline __attribute__((always_inline)) void px_tile(float *Y, int ldy, const float *P, int ldp,
                                                         const float *X, int ldx, int i0, int jend,
                                                         int c0, float alpha, const int R, const int NV) {
    __m256 acc[4][2];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
    for (int j = 0; j < jend; j++) {
        __m256 x[2];
        for (int v = 0; v < NV; v++) {
            x[v] = _mm256_loadu_ps(X + (size_t)j * ldx + c0 + 8 * v);
            IN_REGISTER(x[v]);
        }
        for (int r = 0; r < R; r++) {
            __m256 p = _mm256_broadcast_ss(P + (size_t)(i0 + r) * ldp + j);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(p, x[v], acc[r][v]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha);
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++)
            _mm256_storeu_ps(Y + (size_t)(i0 + r) * ldy + c0 + 8 * v, _mm256_mul_ps(va, acc[r][v]));
}

// Y rows [j0, j0+R) x columns [c0, c0+8NV) = alpha P[j0:T, j0:j0+R]^T X[j0:T, :].
static inline __attribute__((always_inline)) void ptx_tile(float *Y, int ldy, const float *P, int ldp,
                                                          const float *X, int ldx, int j0, int T,
                                                          int c0, float alpha, const int R, const int NV) {
    __m256 acc[4][2];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
    for (int i = j0; i < T; i++) {
        __m256 x[2];
        for (int v = 0; v < NV; v++) {
            x[v] = _mm256_loadu_ps(X + (size_t)i * ldx + c0 + 8 * v);
            IN_REGISTER(x[v]);
        }
        for (int r = 0; r < R; r++) {
            __m256 p = _mm256_broadcast_ss(P + (size_t)i * ldp + j0 + r);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(p, x[v], acc[r][v]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha);
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++)
            _mm256_storeu_ps(Y + (size_t)(j0 + r) * ldy + c0 + 8 * v, _mm256_mul_ps(va, acc[r][v]));
}
#endif

// Y (T, hs; row stride ldy) = alpha P X for P (T, T; row stride ldp) lower
// triangular and X (T, hs; row stride ldx).
static void tril_px(float *Y, int ldy, const float *P, int ldp, const float *X, int ldx, int T, int hs,
                    float alpha) {
    int c0 = 0;
#ifdef LAYERS_AVX2
    for (int i0 = 0; i0 < T; i0 += 4) {
        int R = T - i0 < 4 ? T - i0 : 4;
        for (c0 = 0; c0 + 16 <= hs; c0 += 16) {
            if (R == 4) px_tile(Y, ldy, P, ldp, X, ldx, i0, i0 + 4, c0, alpha, 4, 2);
            else
                for (int r = 0; r < R; r++) px_tile(Y, ldy, P, ldp, X, ldx, i0 + r, i0 + r + 1, c0, alpha, 1, 2);
        }
        for (; c0 + 8 <= hs; c0 += 8) {
            if (R == 4) px_tile(Y, ldy, P, ldp, X, ldx, i0, i0 + 4, c0, alpha, 4, 1);
            else
                for (int r = 0; r < R; r++) px_tile(Y, ldy, P, ldp, X, ldx, i0 + r, i0 + r + 1, c0, alpha, 1, 1);
        }
    }
    c0 = hs - hs % 8;
#endif
    if (c0 == hs) return;
    for (int i = 0; i < T; i++) {
        const float *p = P + (size_t)i * ldp;
        float *y = Y + (size_t)i * ldy;
        for (int c = c0; c < hs; c++) y[c] = 0.0f;
        for (int j = 0; j <= i; j++) {
            const float *x = X + (size_t)j * ldx;
            for (int c = c0; c < hs; c++) y[c] += p[j] * x[c];
        }
        for (int c = c0; c < hs; c++) y[c] *= alpha;
    }
}

// Y (T, hs) = alpha P^T X for P lower triangular: Y[j] = alpha sum_{i>=j} P[i][j] X[i].
static void tril_ptx(float *Y, int ldy, const float *P, int ldp, const float *X, int ldx, int T, int hs,
                     float alpha) {
    int c0 = 0;
#ifdef LAYERS_AVX2
    for (int j0 = 0; j0 < T; j0 += 4) {
        int R = T - j0 < 4 ? T - j0 : 4;
        for (c0 = 0; c0 + 16 <= hs; c0 += 16) {
            if (R == 4) ptx_tile(Y, ldy, P, ldp, X, ldx, j0, T, c0, alpha, 4, 2);
            else
                for (int r = 0; r < R; r++) ptx_tile(Y, ldy, P, ldp, X, ldx, j0 + r, T, c0, alpha, 1, 2);
        }
        for (; c0 + 8 <= hs; c0 += 8) {
            if (R == 4) ptx_tile(Y, ldy, P, ldp, X, ldx, j0, T, c0, alpha, 4, 1);
            else
                for (int r = 0; r < R; r++) ptx_tile(Y, ldy, P, ldp, X, ldx, j0 + r, T, c0, alpha, 1, 1);
        }
    }
    c0 = hs - hs % 8;
#endif
    if (c0 == hs) return;
    for (int j = 0; j < T; j++) {
        float *y = Y + (size_t)j * ldy;
        for (int c = c0; c < hs; c++) y[c] = 0.0f;
        for (int i = j; i < T; i++) {
            float p = P[(size_t)i * ldp + j];
            const float *x = X + (size_t)i * ldx;
            for (int c = c0; c < hs; c++) y[c] += p * x[c];
        }
        for (int c = c0; c < hs; c++) y[c] *= alpha;
    }
}

// Softmax over the first n entries of a row of T scores, in place; the rest
// of the row becomes 0. Rows are short (1 to T long, T/2 on average), so the
// AVX2 path works in whole vectors of 8 with the last one masked, rather than
// a vector loop plus up to 7 scalar iterations in each of four loops.
static inline void softmax_causal_row(float *row, int n, int T) {
#ifdef LAYERS_AVX2
    int nfull = n / 8 * 8, rest = n - nfull;
    __m256i mask = lanes_below(rest);
    __m256 vmax = _mm256_set1_ps(-INFINITY), ninf = vmax;
    for (int j = 0; j < nfull; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(row + j));
    __m256 last = rest ? _mm256_blendv_ps(ninf, _mm256_maskload_ps(row + nfull, mask), _mm256_castsi256_ps(mask)) : ninf;
    float maxv = hmax8(_mm256_max_ps(vmax, last));
    __m256 vm = _mm256_set1_ps(maxv), vsum = _mm256_setzero_ps();
    for (int j = 0; j < nfull; j += 8) {
        __m256 e = fast_exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), vm));
        _mm256_storeu_ps(row + j, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    __m256 elast = _mm256_setzero_ps();
    if (rest) elast = _mm256_and_ps(fast_exp8(_mm256_sub_ps(last, vm)), _mm256_castsi256_ps(mask));
    float sum = hsum8(_mm256_add_ps(vsum, elast));
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (int j = 0; j < nfull; j += 8) _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), inv));
    // The masked lanes of the last vector are stored as 0 with it; the rest of
    // the row in whole vectors (a memset call per row cost more than this).
    int j = nfull;
    if (rest) {
        __m256 last_out = _mm256_mul_ps(elast, inv); // lanes from rest on are 0
        if (nfull + 8 <= T) _mm256_storeu_ps(row + nfull, last_out);
        else _mm256_maskstore_ps(row + nfull, lanes_below(T - nfull), last_out);
        j = nfull + 8;
    }
    for (; j + 8 <= T; j += 8) _mm256_storeu_ps(row + j, _mm256_setzero_ps());
    for (; j < T; j++) row[j] = 0.0f;
#else
    float maxv = row[0];
    for (int j = 1; j < n; j++) maxv = row[j] > maxv ? row[j] : maxv;
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        row[j] = fast_expf(row[j] - maxv);
        sum += row[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++) row[j] *= inv;
    for (int j = n; j < T; j++) row[j] = 0.0f;
#endif
}

// Softmax backward for one row: ds (first n entries) = p * (ds - p . ds), with
// p the row of softmax weights; the three entries of ds past the diagonal
// (within the row), which the tile kernels read, become 0.
static inline void softmax_causal_row_backward(float *ds, const float *p, int n, int T) {
#ifdef LAYERS_AVX2
    int nfull = n / 8 * 8, rest = n - nfull;
    __m256i mask = lanes_below(rest);
    __m256 vdot = _mm256_setzero_ps(), pl = _mm256_setzero_ps(), dl = _mm256_setzero_ps();
    for (int j = 0; j < nfull; j += 8)
        vdot = _mm256_add_ps(vdot, _mm256_mul_ps(_mm256_loadu_ps(p + j), _mm256_loadu_ps(ds + j)));
    if (rest) {
        pl = _mm256_maskload_ps(p + nfull, mask);
        dl = _mm256_maskload_ps(ds + nfull, mask);
    }
    float dot = hsum8(_mm256_add_ps(vdot, _mm256_mul_ps(pl, dl)));
    __m256 vd = _mm256_set1_ps(dot);
    for (int j = 0; j < nfull; j += 8)
        _mm256_storeu_ps(ds + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), _mm256_sub_ps(_mm256_loadu_ps(ds + j), vd)));
    if (rest) _mm256_maskstore_ps(ds + nfull, mask, _mm256_mul_ps(pl, _mm256_sub_ps(dl, vd)));
#else
    float dot = 0.0f;
    for (int j = 0; j < n; j++) dot += p[j] * ds[j];
    for (int j = 0; j < n; j++) ds[j] = p[j] * (ds[j] - dot);
#endif
    for (int j = n; j < T && j < n + 3; j++) ds[j] = 0.0f;
}

void attention_forward(float *out, float *att, const float *qkv, float *scratch, int n_threads, int B,
                       int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C, Tp = scratch_stride(T);
    float scale = 1.0f / sqrtf((float)hs);
    size_t per_thread = attention_scratch_floats(T, C, NH);
#pragma omp parallel for collapse(2) num_threads(n_threads)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hs;
            const float *k = q + C, *v = q + 2 * C;
            float *a = att + ((size_t)b * NH + h) * T * T;
            float *kt = scratch + (size_t)omp_get_thread_num() * per_thread;
            transpose_pad(kt, k, C3, T, Tp, hs);
            tril_abt(a, T, q, C3, kt, Tp, T, hs, scale); // scores, lower triangle
            for (int i = 0; i < T; i++) softmax_causal_row(a + (size_t)i * T, i + 1, T);
            tril_px(out + (size_t)b * T * C + h * hs, C, a, T, v, C3, T, hs, 1.0f); // att @ V
        }
    }
}

void attention_backward(float *dqkv, float *scratch, int n_threads, const float *dout,
                        const float *qkv, const float *att, int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C, Tp = scratch_stride(T);
    float scale = 1.0f / sqrtf((float)hs);
    size_t per_thread = attention_scratch_floats(T, C, NH);
#pragma omp parallel for collapse(2) num_threads(n_threads)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hs;
            const float *k = q + C, *v = q + 2 * C;
            const float *a = att + ((size_t)b * NH + h) * T * T;
            const float *d = dout + (size_t)b * T * C + h * hs;
            float *dq = dqkv + (size_t)b * T * C3 + h * hs;
            float *dk = dq + C, *dv = dq + 2 * C;
            float *datt = scratch + (size_t)omp_get_thread_num() * per_thread; // (T, Tp)
            float *vt = datt + (size_t)T * Tp;
            transpose_pad(vt, v, C3, T, Tp, hs);
            tril_abt(datt, Tp, d, C, vt, Tp, T, hs, 1.0f); // dP = dout V^T, lower triangle
            tril_ptx(dv, C3, a, T, d, C, T, hs, 1.0f);     // dV = P^T dout
            // Softmax backward in place: datt becomes dS, zero just past the diagonal.
            for (int i = 0; i < T; i++) softmax_causal_row_backward(datt + (size_t)i * Tp, a + (size_t)i * T, i + 1, T);
            tril_px(dq, C3, datt, Tp, k, C3, T, hs, scale);  // dQ = scale dS K
            tril_ptx(dk, C3, datt, Tp, q, C3, T, hs, scale); // dK = scale dS^T Q
        }
    }
}

#define GELU_SCALE 0.7978845608028654f // sqrt(2/pi)
#define GELU_CUBIC 0.044715f

// Both GELU loops run over 8-float blocks (AVX2 with FMAs when available),
// and the last n % 8 elements through the scalar formula.
void gelu_forward(float *out, const float *inp, size_t n) {
    size_t n8 = n / 8 * 8;
#ifdef LAYERS_AVX2
#pragma omp parallel for
    for (size_t i = 0; i < n8; i += 8) {
        __m256 x = _mm256_loadu_ps(inp + i);
        __m256 x2 = _mm256_mul_ps(x, x);
        __m256 u = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(GELU_SCALE), x),
                                 _mm256_fmadd_ps(_mm256_set1_ps(GELU_CUBIC), x2, _mm256_set1_ps(1.0f)));
        __m256 hx = _mm256_mul_ps(_mm256_set1_ps(0.5f), x);
        _mm256_storeu_ps(out + i, _mm256_fmadd_ps(hx, fast_tanh8(u), hx));
    }
#else
    n8 = 0;
#endif
#pragma omp parallel for simd if (n - n8 > 4096)
    for (size_t i = n8; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + fast_tanhf(GELU_SCALE * (x + GELU_CUBIC * x * x * x)));
    }
}

// The GELU derivative at x from the forward output out = x (1 + tanh u) / 2:
// tanh(u) is recovered from it instead of being computed again (a division
// instead of an exp and a division). Near x = 0, where that quotient loses
// precision, tanh u = u to within u^3/3 < 1e-12.
#ifdef LAYERS_AVX2
static inline __m256 gelu_grad8(__m256 x, __m256 y) {
    __m256 one = _mm256_set1_ps(1.0f);
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 u = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(GELU_SCALE), x),
                             _mm256_fmadd_ps(_mm256_set1_ps(GELU_CUBIC), x2, one));
    __m256 q = _mm256_sub_ps(_mm256_div_ps(_mm256_add_ps(y, y), x), one);
    __m256 small = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), _mm256_set1_ps(1e-4f), _CMP_LT_OQ);
    __m256 th = _mm256_blendv_ps(q, u, small);
    __m256 sech2 = _mm256_fnmadd_ps(th, th, one);
    __m256 hx = _mm256_mul_ps(_mm256_set1_ps(0.5f), x);
    // 0.5 (1 + th) + 0.5 x sech2 GELU_SCALE (1 + 3 GELU_CUBIC x^2)
    __m256 slope = _mm256_mul_ps(_mm256_set1_ps(GELU_SCALE), _mm256_fmadd_ps(_mm256_set1_ps(3.0f * GELU_CUBIC), x2, one));
    return _mm256_fmadd_ps(_mm256_mul_ps(hx, sech2), slope, _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_add_ps(one, th)));
}
#endif

static inline float gelu_grad1(float x, float y) {
    float u = GELU_SCALE * (x + GELU_CUBIC * x * x * x);
    float th = fabsf(x) < 1e-4f ? u : 2.0f * y / x - 1.0f;
    float sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * GELU_CUBIC * x * x);
}

void gelu_backward(float *dinout, const float *inp, const float *out, size_t n) {
    size_t n8 = n / 8 * 8;
#ifdef LAYERS_AVX2
#pragma omp parallel for
    for (size_t i = 0; i < n8; i += 8) {
        __m256 grad = gelu_grad8(_mm256_loadu_ps(inp + i), _mm256_loadu_ps(out + i));
        _mm256_storeu_ps(dinout + i, _mm256_mul_ps(_mm256_loadu_ps(dinout + i), grad));
    }
#else
    n8 = 0;
#endif
#pragma omp parallel for simd if (n - n8 > 4096)
    for (size_t i = n8; i < n; i++) dinout[i] *= gelu_grad1(inp[i], out[i]);
}

void gelu_backward_sums(float *dinout, float *dbias, const float *inp, const float *out, int N, int OC,
                        float *partials, int n_threads) {
    // Each thread takes a contiguous range of rows, applies the derivative
    // row by row and adds each finished row (still in L1) to its own OC
    // partial column sums; the partials are then added in thread order,
    // column slices split over the threads. This replaces the separate pass
    // over dinout that summed the bias gradient of the product before GELU.
#pragma omp parallel num_threads(n_threads)
    {
        int nth = omp_get_num_threads(), id = omp_get_thread_num();
        int i0 = (int)((long long)N * id / nth), i1 = (int)((long long)N * (id + 1) / nth);
        float *ps = partials + (size_t)id * OC;
        for (int c = 0; c < OC; c++) ps[c] = 0.0f;
        for (int i = i0; i < i1; i++) {
            float *d = dinout + (size_t)i * OC;
            const float *x = inp + (size_t)i * OC, *y = out + (size_t)i * OC;
            int c = 0;
#ifdef LAYERS_AVX2
            for (; c + 8 <= OC; c += 8) {
                __m256 g = _mm256_mul_ps(_mm256_loadu_ps(d + c), gelu_grad8(_mm256_loadu_ps(x + c), _mm256_loadu_ps(y + c)));
                _mm256_storeu_ps(d + c, g);
                _mm256_storeu_ps(ps + c, _mm256_add_ps(_mm256_loadu_ps(ps + c), g));
            }
#endif
            for (; c < OC; c++) {
                d[c] *= gelu_grad1(x[c], y[c]);
                ps[c] += d[c];
            }
        }
#pragma omp barrier
        int c0 = OC * id / nth, c1 = OC * (id + 1) / nth;
        for (int c = c0; c < c1; c++) {
            float t = 0.0f;
            for (int k = 0; k < nth; k++) t += partials[(size_t)k * OC + c];
            dbias[c] += t;
        }
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
