#include "model/generate.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "model/fastmath.h"

// Rows of one prefill pass: enough for sgemm to run near its peak, small
// enough that the scratch stays a fraction of the cache itself.
enum { PREFILL_ROWS = 256 };

static size_t round_up(size_t n, size_t m) {
    return (n + m - 1) / m * m;
}

int kvcache_create(KVCache *c, const GPTConfig *cfg, int slots, Error *err) {
    memset(c, 0, sizeof *c);
    if (slots < 1) return error_set(err, "a KV cache needs at least one slot, not %d", slots);
    int nth = omp_get_max_threads();
    nth = nth < 1 ? 1 : nth > 256 ? 256 : nth;
    size_t S = slots, T = cfg->max_seq_len, C = cfg->n_embd, L = cfg->n_layer, V = cfg->vocab_size;
    size_t Tp = round_up(T, 8), R = S * T < PREFILL_ROWS ? S * T : PREFILL_ROWS;
    if (R < S) R = S;
    size_t RP = round_up(R, 8), SP = round_up(S, 8), hs = C / cfg->n_head;
    c->slots = slots, c->max_T = cfg->max_seq_len, c->C = cfg->n_embd, c->V = cfg->vocab_size;
    c->NH = cfg->n_head, c->L = cfg->n_layer, c->Tp = (int)Tp, c->rows = (int)R, c->n_threads = nth;
    c->min_macs = 2e6;
    // Every block starts on a 64-byte line, so threads writing neighbouring
    // feature ranges of a shared buffer share as few lines as possible.
    c->thread_floats = round_up(2 * C * RP + 2 * RP + Tp + 2 * hs, 16);
    float **ptrs[] = {&c->k,    &c->v,       &c->thread_mem, &c->qkv,        &c->atty,
                      &c->fch,  &c->part,    &c->logitsT,    &c->logits,     &c->seq_logits,
                      &c->probs, &c->head,   &c->samp_lp};
    size_t sizes[] = {L * S * C * Tp, L * S * Tp * C, nth * c->thread_floats, 3 * C * RP, C * RP,
                      4 * C * RP,     2 * nth * C * RP, V * SP,               S * V,      S * V,
                      S * V,          S,              S};
    size_t total = 0, n = sizeof sizes / sizeof sizes[0];
    for (size_t i = 0; i < n; i++) total += round_up(sizes[i], 16);
    int **iptrs[] = {&c->order,    &c->pos,      &c->tok,       &c->row_seq,   &c->row_pos,
                     &c->done,     &c->ready,    &c->samp_seq,  &c->samp_row,  &c->samp_tok,
                     &c->chunk_tok, &c->chunk_pos, &c->chunk_slot, &c->logit_rows};
    size_t isizes[] = {2 * S * V, S, S, S, S, S, S, S, S, S, R, R, R, S};
    size_t itotal = 0, ni = sizeof isizes / sizeof isizes[0];
    for (size_t i = 0; i < ni; i++) itotal += isizes[i];
    // calloc: pages of the cache that a run never reaches are never touched,
    // and key blocks read past a sequence's end (then ignored) are defined.
    c->memory = calloc(total + 16, sizeof(float));
    c->int_memory = malloc(itotal * sizeof(int));
    c->double_memory = malloc(S * sizeof(double));
    if (!c->memory || !c->int_memory || !c->double_memory) {
        kvcache_free(c);
        return error_set(err, "out of memory for a KV cache of %d slots", slots);
    }
    float *p = c->memory + (16 - ((uintptr_t)c->memory / sizeof(float)) % 16) % 16;
    for (size_t i = 0; i < n; i++) {
        *ptrs[i] = p;
        p += round_up(sizes[i], 16);
    }
    int *q = c->int_memory;
    for (size_t i = 0; i < ni; i++) {
        *iptrs[i] = q;
        q += isizes[i];
    }
    c->samp_u = c->double_memory;
    return 0;
}

void kvcache_free(KVCache *c) {
    free(c->memory);
    free(c->int_memory);
    free(c->double_memory);
    memset(c, 0, sizeof *c);
}

// Sums and maxima in eight interleaved lanes: a fixed order (independent of
// alignment) that the compiler can vectorise, which it may not do for a
// plain running sum without -ffast-math.
static float sum8(const float *x, int n) {
    float s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += x[i + j];
    float tail = 0.0f;
    for (; i < n; i++) tail += x[i];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail;
}

static float max8(const float *x, int n) {
    float s[8];
    for (int j = 0; j < 8; j++) s[j] = -INFINITY;
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] = x[i + j] > s[j] ? x[i + j] : s[j];
    for (; i < n; i++) s[0] = x[i] > s[0] ? x[i] : s[0];
    for (int j = 1; j < 8; j++) s[0] = s[j] > s[0] ? s[j] : s[0];
    return s[0];
}

// ---- kernels ------------------------------------------------------------------------
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define GEN_AVX2 1 // the single-query attention below has an AVX2 path
#endif

// Inside a forward call activations are feature-major, (features, NP) with
// the n rows padded to NP, a multiple of 8: a matrix product is then
// out (OC, NP) = W (OC, IC) . in (IC, NP) with W in the checkpoint's own
// (OC, IC) layout. Per-row reductions (LayerNorm) run along the features
// with the rows in the vector lanes, so they vectorise without reassociating
// anything.

// out (OC, NP) = W (OC, IC; row stride ldw) . in (IC, NP). Every matrix
// product goes through cblas_sgemm (at 16 rows OpenBLAS spends about as long
// packing each weight matrix as multiplying it: perf showed sgemm_incopy at
// 29-41% of generation, sgemm_kernel at 26-31%).
static void matmul_fm(float *out, const float *W, int ldw, const float *in, int OC, int IC, int NP) {
    if (OC <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, NP, IC, 1.0f, W, ldw, in, NP, 0.0f, out, NP);
}

// out (C, NP) = LayerNorm of each column of in (C, NP) (layers.c's formula,
// eps 1e-5); out may be in. mean and rstd hold NP floats of scratch.
static void layernorm_fm(float *out, const float *in, const float *w, const float *b, int C, int NP,
                         float *mean, float *rstd) {
    for (int j = 0; j < NP; j++) mean[j] = 0.0f, rstd[j] = 0.0f;
    for (int c = 0; c < C; c++)
        for (int j = 0; j < NP; j++) mean[j] += in[(size_t)c * NP + j];
    for (int j = 0; j < NP; j++) mean[j] /= C;
    for (int c = 0; c < C; c++)
        for (int j = 0; j < NP; j++) {
            float d = in[(size_t)c * NP + j] - mean[j];
            rstd[j] += d * d;
        }
    for (int j = 0; j < NP; j++) rstd[j] = 1.0f / sqrtf(rstd[j] / C + 1e-5f);
    for (int c = 0; c < C; c++)
        for (int j = 0; j < NP; j++)
            out[(size_t)c * NP + j] = (in[(size_t)c * NP + j] - mean[j]) * rstd[j] * w[c] + b[c];
}

#define GELU_SCALE 0.7978845608028654f // sqrt(2/pi), as in layers.c

// Keys of (layer l, slot s, head h): Tp/8 blocks of 8 positions, each (hs, 8):
// key d of position t is at (t / 8) * 8 hs + 8 d + t % 8. A block is what the
// score loop reads, contiguously; writing one position touches hs/2 lines.
static float *key_block(const KVCache *c, int l, int s, int h) {
    size_t hs = c->C / c->NH;
    return c->k + (((size_t)l * c->slots + s) * c->NH + h) * hs * c->Tp;
}

static size_t key_at(int hs, int t, int d) {
    return (size_t)(t / 8) * 8 * hs + 8 * d + t % 8;
}

// Values of (layer l, slot s, head h): Tp rows of hs.
static float *value_block(const KVCache *c, int l, int s, int h) {
    size_t hs = c->C / c->NH;
    return c->v + (((size_t)l * c->slots + s) * c->NH + h) * c->Tp * hs;
}

#ifdef GEN_AVX2
// out (8 NV) = sum over t < np of w[t] v[t] (rows of 8 NV floats), in registers.
static inline __attribute__((always_inline)) void weighted_sum(float *out, const float *w,
                                                               const float *v, int np, const int NV) {
    __m256 o[8];
    for (int k = 0; k < NV; k++) o[k] = _mm256_setzero_ps();
    for (int t = 0; t < np; t++) {
        __m256 wt = _mm256_broadcast_ss(w + t);
        for (int k = 0; k < NV; k++) o[k] = _mm256_fmadd_ps(wt, _mm256_loadu_ps(v + (size_t)t * 8 * NV + 8 * k), o[k]);
    }
    for (int k = 0; k < NV; k++) _mm256_storeu_ps(out + 8 * k, o[k]);
}
#endif

// Single-query attention of head h at position p of slot s over the cached
// positions 0..p; q (hs) is already scaled by 1/sqrt(hs); out (hs). att
// holds Tp floats. Scores are computed a block of 8 positions at a time; the
// last block reads keys past p, which are zero or stale but finite, and unused.
static void attend(const KVCache *c, int l, int s, int p, int h, const float *q, float *out, float *att) {
    int hs = c->C / c->NH, np = p + 1;
    const float *kt = key_block(c, l, s, h), *v = value_block(c, l, s, h);
#ifdef GEN_AVX2
    int t = 0;
    for (; t + 16 <= np; t += 16) { // two blocks: two independent chains
        const float *k0 = kt + (size_t)t * hs, *k1 = k0 + 8 * hs;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
        int d = 0;
        for (; d + 2 <= hs; d += 2) {
            __m256 q0 = _mm256_broadcast_ss(q + d), q1 = _mm256_broadcast_ss(q + d + 1);
            a0 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(k0 + 8 * d), a0);
            b0 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(k1 + 8 * d), b0);
            a1 = _mm256_fmadd_ps(q1, _mm256_loadu_ps(k0 + 8 * d + 8), a1);
            b1 = _mm256_fmadd_ps(q1, _mm256_loadu_ps(k1 + 8 * d + 8), b1);
        }
        for (; d < hs; d++) {
            __m256 q0 = _mm256_broadcast_ss(q + d);
            a0 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(k0 + 8 * d), a0);
            b0 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(k1 + 8 * d), b0);
        }
        _mm256_storeu_ps(att + t, _mm256_add_ps(a0, a1));
        _mm256_storeu_ps(att + t + 8, _mm256_add_ps(b0, b1));
    }
    for (; t < np; t += 8) {
        const float *k0 = kt + (size_t)t * hs;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        int d = 0;
        for (; d + 2 <= hs; d += 2) {
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(q + d), _mm256_loadu_ps(k0 + 8 * d), a0);
            a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(q + d + 1), _mm256_loadu_ps(k0 + 8 * d + 8), a1);
        }
        for (; d < hs; d++) a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(q + d), _mm256_loadu_ps(k0 + 8 * d), a0);
        _mm256_storeu_ps(att + t, _mm256_add_ps(a0, a1));
    }
#else
    for (int t = 0; t < np; t++) {
        float a = 0.0f;
        for (int d = 0; d < hs; d++) a += q[d] * kt[key_at(hs, t, d)];
        att[t] = a;
    }
#endif
    float mx = max8(att, np);
    for (int t = 0; t < np; t++) att[t] = fast_expf(att[t] - mx);
    float inv = 1.0f / sum8(att, np);
#ifdef GEN_AVX2
    switch (hs) { // the output in registers: a constant count of vectors
    case 8: weighted_sum(out, att, v, np, 1); break;
    case 16: weighted_sum(out, att, v, np, 2); break;
    case 32: weighted_sum(out, att, v, np, 4); break;
    case 64: weighted_sum(out, att, v, np, 8); break;
    default:
#else
    {
#endif
        for (int d = 0; d < hs; d++) out[d] = 0.0f;
        for (int t = 0; t < np; t++)
            for (int d = 0; d < hs; d++) out[d] += att[t] * v[(size_t)t * hs + d];
    }
    for (int d = 0; d < hs; d++) out[d] *= inv;
}

// Start of thread t's share of n items split over nth threads, rounded to a
// multiple of align (nondecreasing in t; n at t = nth).
static int split_at(int n, int t, int nth, int align) {
    if (t >= nth) return n;
    long s = ((long)n * t / nth + align / 2) / align * align;
    return s > n ? n : (int)s;
}

// One forward call over n rows (a prefill chunk or a decode step).
typedef struct {
    const GPT *m;
    KVCache *c;
    const int *tok, *pos, *slot;
    int n;
    const int *lrows; // rows whose logits are wanted (row lrows[j] -> logits row j), ascending; NULL: all
    int nl;
    const SamplerConfig *sc; // then, when ns > 0, the draws listed in c->samp_*
    int ns;
} Pass;

// Logits row r of a draw: r < slots is c->logits row r, slots + b is
// c->seq_logits row b.
static const float *logits_row(const KVCache *c, int r) {
    return r < c->slots ? c->logits + (size_t)r * c->V : c->seq_logits + (size_t)(r - c->slots) * c->V;
}

static void sample_one(KVCache *c, const SamplerConfig *sc, int j) {
    int V = c->V;
    c->samp_tok[j] = sample_token_u(logits_row(c, c->samp_row[j]), V, sc, c->samp_u[j],
                                    c->probs + (size_t)j * V, c->order + (size_t)j * 2 * V,
                                    &c->samp_lp[j]);
}

// x (C, NP) += bias + the partial sums of the team's threads u that made
// one (has(u)), in thread order: the same operations on every thread, so
// every thread's copy of the residual stream stays identical.
static void add_partials(float *x, const float *part, size_t part_stride, const float *bias, int C,
                         int NP, int nth, int NH, int F) {
    size_t n = (size_t)C * NP;
    for (int u = 0; u < nth; u++) {
        int has = NH ? NH * (u + 1) / nth > NH * u / nth : split_at(F, u + 1, nth, 8) > split_at(F, u, nth, 8);
        if (!has) continue;
        const float *pu = part + u * part_stride;
        for (size_t i = 0; i < n; i++) x[i] += pu[i];
    }
    for (int k = 0; k < C; k++)
        for (int j = 0; j < NP; j++) x[(size_t)k * NP + j] += bias[k];
}

static void team_barrier(int nth) {
    if (nth > 1) {
#pragma omp barrier
    }
}

// The forward pass of a call's rows by thread t of a team of nth threads
// that share it by features: a layer needs two barriers. Each thread keeps
// its own copy of the residual stream and LayerNorms it; thread t owns heads
// [h0,h1) (their Q/K/V features, keys and values in the cache, attention,
// and the slice of the output projection that reads them, as a partial sum
// over its input features) and MLP hidden features [f0,f1) (the fc slice,
// GELU, and the slice of fcproj reading them, again a partial sum). After
// each barrier every thread adds all partial sums to its copy. With nth = 1
// this is the whole forward pass on one thread. (Sharing a call by rows
// instead, each thread on its own sequences with no barrier, measured
// slower on small: 985 ms CPU a generate() call against 801, two threads,
// with the earlier hand-written matrix kernel; each thread streams every
// weight matrix, and with sgemm it would also pack every one.)
static void forward_rows(const Pass *P, int t, int nth) {
    const ParameterTensors *p = &P->m->params;
    KVCache *c = P->c;
    int C = c->C, C4 = 4 * C, NH = c->NH, hs = C / NH, V = c->V, n = P->n;
    const int *tok = P->tok, *pos = P->pos, *slot = P->slot;
    int NP = (int)round_up(n, 8);
    size_t RP = round_up(c->rows, 8), CR = (size_t)C * RP, CNP = (size_t)C * NP;
    float *x = c->thread_mem + (size_t)t * c->thread_floats, *ln = x + CR, *mean = ln + CR;
    float *rstd = mean + RP, *att = rstd + RP, *qv = att + c->Tp, *ov = qv + hs;
    float *part_a = c->part, *part_f = c->part + (size_t)nth * CR, *my_a = part_a + t * CR, *my_f = part_f + t * CR;
    int h0 = NH * t / nth, h1 = NH * (t + 1) / nth, c0 = h0 * hs, nc = (h1 - h0) * hs;
    int f0 = split_at(C4, t, nth, 8), f1 = split_at(C4, t + 1, nth, 8), nf = f1 - f0;
    float scale = 1.0f / sqrtf((float)hs);
    for (int j = 0; j < NP; j++) { // x (C, NP) = wte[token] + wpe[pos]; padding rows 0
        if (j >= n) {
            for (int k = 0; k < C; k++) x[(size_t)k * NP + j] = 0.0f;
            continue;
        }
        const float *we = p->wte + (size_t)tok[j] * C, *pe = p->wpe + (size_t)pos[j] * C;
        for (int k = 0; k < C; k++) x[(size_t)k * NP + j] = we[k] + pe[k];
    }
    for (int l = 0; l < c->L; l++) {
        size_t lC = (size_t)l * C;
        const float *qkvw = p->qkvw + lC * 3 * C, *qkvb = p->qkvb + 3 * lC;
        // The cache lines this layer's keys and values go to, for writing:
        // they arrive while the products below run (cold, their stores
        // stalled the loop that writes them).
        for (int j = 0; j < n; j++)
            for (int h = h0; h < h1; h++) {
                float *kb = key_block(c, l, slot[j], h) + key_at(hs, pos[j], 0);
                float *vb = value_block(c, l, slot[j], h) + (size_t)pos[j] * hs;
                for (int d = 0; d < 8 * hs; d += 16) __builtin_prefetch(kb + d, 1, 3);
                for (int d = 0; d < hs; d += 16) __builtin_prefetch(vb + d, 1, 3);
            }
        layernorm_fm(ln, x, p->ln1w + lC, p->ln1b + lC, C, NP, mean, rstd);
        if (nc > 0) {
            for (int k = 0; k < 3; k++)
                matmul_fm(c->qkv + ((size_t)k * C + c0) * NP, qkvw + ((size_t)k * C + c0) * C, C, ln,
                          nc, C, NP);
            for (int f = c0; f < c0 + nc; f++) { // biases; Q scaled; K and V into the cache
                float *qr = c->qkv + (size_t)f * NP;
                const float *kr = qr + CNP, *vr = kr + CNP;
                float qb = qkvb[f], kb = qkvb[C + f], vb = qkvb[2 * C + f];
                int h = f / hs, d = f % hs;
                for (int j = 0; j < NP; j++) qr[j] = (qr[j] + qb) * scale;
                for (int j = 0; j < n; j++) {
                    key_block(c, l, slot[j], h)[key_at(hs, pos[j], d)] = kr[j] + kb;
                    value_block(c, l, slot[j], h)[(size_t)pos[j] * hs + d] = vr[j] + vb;
                }
            }
            for (int h = h0; h < h1; h++) {
                const float *q = c->qkv + (size_t)h * hs * NP;
                float *y = c->atty + (size_t)h * hs * NP;
                for (int j = 0; j < NP; j++) {
                    if (j < n) {
                        for (int d = 0; d < hs; d++) qv[d] = q[(size_t)d * NP + j];
                        attend(c, l, slot[j], pos[j], h, qv, ov, att);
                    } else {
                        for (int d = 0; d < hs; d++) ov[d] = 0.0f;
                    }
                    for (int d = 0; d < hs; d++) y[(size_t)d * NP + j] = ov[d];
                }
            }
            matmul_fm(my_a, p->attprojw + lC * C + c0, C, c->atty + (size_t)c0 * NP, C, nc, NP);
        }
        team_barrier(nth);
        add_partials(x, part_a, CR, p->attprojb + lC, C, NP, nth, NH, 0);
        layernorm_fm(ln, x, p->ln2w + lC, p->ln2b + lC, C, NP, mean, rstd);
        if (nf > 0) {
            const float *fcb = p->fcb + 4 * lC;
            float *h = c->fch + (size_t)f0 * NP;
            matmul_fm(h, p->fcw + (lC * 4 + f0) * C, C, ln, nf, C, NP);
            for (int f = 0; f < nf; f++) {
                float *r = h + (size_t)f * NP, b = fcb[f0 + f];
                for (int j = 0; j < NP; j++) {
                    float u = r[j] + b;
                    r[j] = 0.5f * u * (1.0f + fast_tanhf(GELU_SCALE * (u + 0.044715f * u * u * u)));
                }
            }
            matmul_fm(my_f, p->fcprojw + lC * C4 + f0, C4, h, C, nf, NP);
        }
        team_barrier(nth);
        add_partials(x, part_f, CR, p->fcprojb + lC, C, NP, nth, 0, C4);
    }
    // Final LayerNorm of the wanted rows, gathered into ln (C, NL); LM head
    // features [v0,v1) of this thread, transposed into c->logits rows; the
    // scalar head on thread 0.
    int nl = P->nl, NL = (int)round_up(nl, 8);
    if (nl == 0) return;
    for (int k = 0; k < C; k++)
        for (int j = 0; j < NL; j++)
            ln[(size_t)k * NL + j] = j < nl ? x[(size_t)k * NP + (P->lrows ? P->lrows[j] : j)] : 0.0f;
    layernorm_fm(ln, ln, p->lnfw, p->lnfb, C, NL, mean, rstd);
    float *logits = c->logits;
    int v0 = split_at(V, t, nth, 16), v1 = split_at(V, t + 1, nth, 16);
    if (v1 > v0) {
        matmul_fm(c->logitsT + (size_t)v0 * NL, p->wte + (size_t)v0 * C, C, ln, v1 - v0, C, NL);
        // Tiles of 32 logits: rows of c->logits lie V floats apart, a stride
        // that maps them all to one L1 set, so write each row's tile in turn.
        for (int vt = v0; vt < v1; vt += 32) {
            int ve = vt + 32 < v1 ? vt + 32 : v1;
            for (int j = 0; j < nl; j++)
                for (int v = vt; v < ve; v++) logits[(size_t)j * V + v] = c->logitsT[(size_t)v * NL + j];
        }
    }
    if (t == 0) {
        for (int j = 0; j < nl; j++) mean[j] = p->headb[0];
        for (int k = 0; k < C; k++)
            for (int j = 0; j < nl; j++) mean[j] += ln[(size_t)k * NL + j] * p->headw[k];
        for (int j = 0; j < nl; j++) c->head[j] = mean[j];
    }
}

// Threads for a pass: at most one per c->min_macs multiply-adds of its
// matrix products, so that a pass too small for two barriers a layer to pay
// runs on one thread (a row of the tiny model is about 1M multiply-adds,
// 25 us, and a barrier costs 1-10 us).
static int pass_threads(const Pass *P) {
    const KVCache *c = P->c;
    double macs = (double)P->n * c->L * 12.0 * c->C * c->C + (double)P->nl * c->V * c->C;
    double nth = c->min_macs > 0 ? macs / c->min_macs : c->n_threads;
    return nth < 1 ? 1 : nth < c->n_threads ? (int)nth : c->n_threads;
}

static void pass_thread(const Pass *P, int t, int nth) {
    forward_rows(P, t, nth);
    if (P->ns > 0) { // the draws, shared out once every logit is there
        team_barrier(nth);
        for (int j = t; j < P->ns; j += nth) sample_one(P->c, P->sc, j);
    }
}

static void run_pass(const Pass *P) {
    int nth = pass_threads(P);
    if (nth == 1 && omp_get_max_threads() > 1) {
        // One thread, and OpenBLAS single-threaded as well: outside a parallel
        // region it would split each small product over omp_get_max_threads()
        // threads (16 rows, loaded machine: 2.4 GFLOP/s against 34 on one).
        // The ICV set here belongs to this one-thread region's task only.
#pragma omp parallel num_threads(1)
        {
            omp_set_num_threads(1);
            pass_thread(P, 0, 1);
        }
        return;
    }
    if (nth == 1) {
        pass_thread(P, 0, 1);
        return;
    }
#pragma omp parallel num_threads(nth)
    pass_thread(P, omp_get_thread_num(), omp_get_num_threads());
}

void gpt_decode_step(const GPT *m, KVCache *c, const int *tokens, const int *pos, const int *slots,
                     int n) {
    Pass P = {.m = m, .c = c, .tok = tokens, .pos = pos, .slot = slots, .n = n, .nl = n};
    run_pass(&P);
}

// ---- sampling ---------------------------------------------------------------------
// Descending probability, ties by id, so sampling is reproducible.
static int before(int a, int b, const float *probs) {
    return probs[a] != probs[b] ? probs[a] > probs[b] : a < b;
}

// Merge sort of token ids by probability (qsort has no context argument in
// standard C); tmp holds n ints.
static void sort_by_prob(int *order, int *tmp, int n, const float *probs) {
    if (n < 2) return;
    int h = n / 2;
    sort_by_prob(order, tmp, h, probs);
    sort_by_prob(order + h, tmp, n - h, probs);
    int i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = before(order[j], order[i], probs) ? order[j++] : order[i++];
    while (i < h) tmp[k++] = order[i++];
    while (j < n) tmp[k++] = order[j++];
    memcpy(order, tmp, n * sizeof(int));
}

// The sampler as it was first written: libm expf, a double sum,
// probabilities normalised before the search. sample_token_u returns what
// this returns; for plain sampling it gets there faster (below).
static int sample_exact(const float *logits, int V, const SamplerConfig *sc, double u, float *probs,
                        int *order, float *logprob) {
    float inv_t = 1.0f / sc->temperature, maxv = -INFINITY;
    for (int v = 0; v < V; v++) maxv = fmaxf(maxv, logits[v] * inv_t);
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += probs[v] = expf(logits[v] * inv_t - maxv);
    for (int v = 0; v < V; v++) probs[v] = (float)(probs[v] / sum);
    int n = V;
    int truncate = (sc->top_k > 0 && sc->top_k < V) || sc->top_p < 1.0f;
    if (truncate) {
        for (int v = 0; v < V; v++) order[v] = v;
        sort_by_prob(order, order + V, V, probs); // order holds 2V ints
        if (sc->top_k > 0 && sc->top_k < n) n = sc->top_k;
        if (sc->top_p < 1.0f) {
            double cum = 0.0;
            for (int i = 0; i < n; i++) {
                cum += probs[order[i]];
                if (cum >= sc->top_p) {
                    n = i + 1;
                    break;
                }
            }
        }
    }
    double mass = 0.0;
    for (int i = 0; i < n; i++) mass += probs[truncate ? order[i] : i];
    double x = u * mass, cum = 0.0;
    int pick = truncate ? order[n - 1] : n - 1;
    for (int i = 0; i < n; i++) {
        int id = truncate ? order[i] : i;
        cum += probs[id];
        if (x < cum) {
            pick = id;
            break;
        }
    }
    *logprob = (float)log(probs[pick] / mass);
    return pick;
}

// Sum of n floats in double, eight interleaved lanes.
static double sum8_double(const float *x, int n) {
    double s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += x[i + j];
    double tail = 0.0;
    for (; i < n; i++) tail += x[i];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail;
}

// Blocks of the inverse-CDF search: the total is a sum of block sums, the
// search skips whole blocks and walks token by token inside one.
enum { SAMPLE_BLOCK = 64 };

// Plain sampling (no top-k/top-p) computes exp with fast_expf (vectorised;
// libm expf over the vocabulary took more time than the rest of a tiny
// decode step) on unnormalised weights. Normalised, every weight is within
// 6e-7 (relative; fast_expf 2e-7, libm expf and float rounding) of
// sample_exact's probability, so are the ends of every token's interval of
// [0,1), and a draw whose point lies more than 1e-6 from both ends of its
// token's interval picks the same token there; one that does not (about one
// draw in a million) is redone by sample_exact. Either way the token is
// sample_exact's.
int sample_token_u(const float *logits, int V, const SamplerConfig *sc, double u, float *probs,
                   int *order, float *logprob) {
    if (sc->temperature <= 0.0f) { // greedy
        int best = 0;
        for (int v = 1; v < V; v++) best = logits[v] > logits[best] ? v : best;
        *logprob = 0.0f;
        return best;
    }
    if ((sc->top_k > 0 && sc->top_k < V) || sc->top_p < 1.0f) // sorts anyway: no shortcut
        return sample_exact(logits, V, sc, u, probs, order, logprob);
    float inv_t = 1.0f / sc->temperature;
    for (int v = 0; v < V; v++) probs[v] = logits[v] * inv_t;
    float maxv = max8(probs, V);
    for (int v = 0; v < V; v++) probs[v] = fast_expf(probs[v] - maxv); // unnormalised
    double total = 0.0;
    for (int v = 0; v < V; v += SAMPLE_BLOCK) total += sum8_double(probs + v, V - v < SAMPLE_BLOCK ? V - v : SAMPLE_BLOCK);
    double target = u * total, cum = 0.0, lo = 0.0, hi = 0.0;
    int pick = -1;
    for (int v = 0; v < V; v += SAMPLE_BLOCK) {
        int nb = V - v < SAMPLE_BLOCK ? V - v : SAMPLE_BLOCK;
        double block = sum8_double(probs + v, nb);
        if (target < cum + block) {
            hi = cum;
            for (int i = v; i < v + nb; i++) {
                lo = hi;
                hi += probs[i];
                if (target < hi) {
                    pick = i;
                    break;
                }
            }
            break;
        }
        cum += block;
    }
    double tol = 1e-6 * total;
    if (pick < 0 || target - lo < tol || hi - target < tol)
        return sample_exact(logits, V, sc, u, probs, order, logprob);
    *logprob = (float)((double)(logits[pick] * inv_t - maxv) - log(total));
    return pick;
}

int sample_token(const float *logits, int V, const SamplerConfig *sc, Rng *rng, float *probs,
                 int *order, float *logprob) {
    double u = sc->temperature > 0.0f ? rng_uniform_double(rng) : 0.0;
    return sample_token_u(logits, V, sc, u, probs, order, logprob);
}

// The draws listed in c->samp_* (ns of them), on the cache's threads.
static void sample_listed(KVCache *c, const SamplerConfig *sc, int ns) {
    if (c->n_threads == 1 || ns < 2) {
        for (int j = 0; j < ns; j++) sample_one(c, sc, j);
        return;
    }
#pragma omp parallel for num_threads(c->n_threads) schedule(static, 1)
    for (int j = 0; j < ns; j++) sample_one(c, sc, j);
}

// ---- generate ---------------------------------------------------------------------
// Runs the prefill rows collected so far and keeps each finished prompt's
// last-position logits in c->seq_logits.
static void flush_prefill(const GPT *m, KVCache *c, int n, int nl) {
    if (n == 0) return;
    Pass P = {.m = m, .c = c, .tok = c->chunk_tok, .pos = c->chunk_pos, .slot = c->chunk_slot,
              .n = n, .lrows = c->logit_rows, .nl = nl};
    run_pass(&P);
    for (int j = 0; j < nl; j++)
        memcpy(c->seq_logits + (size_t)c->chunk_slot[c->logit_rows[j]] * c->V,
               c->logits + (size_t)j * c->V, (size_t)c->V * sizeof(float));
}

void generate(const GPT *m, KVCache *c, const int *const *prompts, const int *prompt_lens, int B,
              int max_new, int stop_token, const SamplerConfig *sc, Rng *rng, int *out_tokens,
              float *out_logprobs, int *out_lens) {
    // The draws happen in the order of a run that feeds every sequence one
    // position per step (a step is a position; within it, sequences in
    // order): sequence b draws at step s once its logits at position s are
    // known, i.e. from s = prompt_lens[b] - 1 on. All prompt positions are
    // prefilled first, PREFILL_ROWS rows per pass; then each step feeds the
    // tokens drawn at the step before, and its pass draws the next ones.
    int T = c->max_T, S = c->slots;
    int *done = c->done, *ready = c->ready;
    int n = 0, nl = 0, first = T;
    for (int b = 0; b < B; b++) {
        out_lens[b] = 0;
        int P = prompt_lens[b];
        done[b] = P < 1 || P >= T; // no room to continue
        if (done[b]) continue;
        ready[b] = P - 1;
        first = P - 1 < first ? P - 1 : first;
        for (int p = 0; p < P; p++) {
            c->chunk_tok[n] = prompts[b][p], c->chunk_pos[n] = p, c->chunk_slot[n] = b;
            if (p == P - 1) c->logit_rows[nl++] = n;
            if (++n == c->rows) {
                flush_prefill(m, c, n, nl);
                n = nl = 0;
            }
        }
    }
    flush_prefill(m, c, n, nl);
    float temperature = sc->temperature;
    // The draws of step s: sequences whose prompt ends at s, from the
    // prefill's logits (samp_row slots + b).
    int s = first, ns = 0;
    for (int b = 0; b < B; b++) {
        if (done[b] || ready[b] != s) continue;
        c->samp_seq[ns] = b, c->samp_row[ns] = S + b;
        c->samp_u[ns++] = temperature > 0.0f ? rng_uniform_double(rng) : 0.0;
    }
    sample_listed(c, sc, ns);
    for (;;) {
        // Record step s's draws; the sequences that go on feed their token
        // at position s + 1 (rows in sequence order).
        n = 0;
        for (int j = 0; j < ns; j++) {
            int b = c->samp_seq[j], t = c->samp_tok[j], k = out_lens[b];
            out_tokens[(size_t)b * max_new + k] = t;
            out_logprobs[(size_t)b * max_new + k] = c->samp_lp[j];
            out_lens[b] = k + 1;
            if (t == stop_token || k + 1 >= max_new || s + 1 >= T) {
                done[b] = 1;
                continue;
            }
            c->tok[n] = t, c->row_pos[n] = s + 1, c->row_seq[n] = b;
            ready[b] = s + 1;
            n++;
        }
        s++;
        // Step s's draws, taken from rng in sequence order: the rows fed now
        // (logits row = their row) and prompts ending at s.
        int live = 0, row = 0;
        ns = 0;
        for (int b = 0; b < B; b++) {
            if (done[b]) continue;
            live = 1;
            if (ready[b] != s) continue;
            c->samp_seq[ns] = b;
            c->samp_row[ns] = out_lens[b] > 0 ? row++ : S + b;
            c->samp_u[ns++] = temperature > 0.0f ? rng_uniform_double(rng) : 0.0;
        }
        if (!live) break;
        if (n > 0) {
            Pass P = {.m = m, .c = c, .tok = c->tok, .pos = c->row_pos, .slot = c->row_seq, .n = n,
                      .nl = n, .sc = sc, .ns = ns};
            run_pass(&P);
        } else {
            sample_listed(c, sc, ns);
        }
    }
}
