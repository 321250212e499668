// The forward pass of generate() (see decode.h): token-major activations
// (rows, features), every matrix product a cblas_sgemm against the cache's
// transposed copy of the model's matrices.
//
// Why transposed: a decode step multiplies 16-odd rows by every weight
// matrix, and at so few rows OpenBLAS spends as long packing the weights as
// multiplying them. Given the weights as the left operand of a product of
// (out, in) layout, it packs them in panels of 16 consecutive output
// features: from the checkpoint's (out, in) layout that is a gather of 16
// rows; from an (in, out) copy, 64 contiguous bytes per input feature. The
// 16-row decode products of small ran about a quarter faster that way
// (two threads, the matrices of one step, CPU time 11-14.7 ms -> 8-10.7 ms
// per step, loaded machine). The copy is made once per generate() call.
#include "model/decode.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "model/fastmath.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define GEN_AVX2 1 // the transposition and the single-query attention have an AVX2 path
#endif

// ---- the transposed matrices ------------------------------------------------------
// c->wt holds, for each layer, (in, out) row-major copies of its matrices:
// qkv (C, 3C) with the output features grouped by head (head h's q, k and v
// at columns 3 hs h + [0, hs), + [hs, 2 hs), + [2 hs, 3 hs)), so a thread
// that owns heads [h0, h1) reads one column range; attproj (C, C); fc
// (C, 4C); fcproj (4C, C). After the layers, the LM head (C, V).
size_t decode_weight_floats(const GPTConfig *cfg) {
    size_t C = cfg->n_embd;
    return (size_t)cfg->n_layer * 12 * C * C + (size_t)cfg->vocab_size * C;
}

static float *layer_wt(const KVCache *c, int l) {
    return c->wt + (size_t)l * 12 * c->C * c->C;
}

// dst (cols, rows; row stride ldd) = src (rows, cols; row stride lds)
// transposed, in tiles of 32 x 32 (blocks of 8 x 8 in registers with AVX2);
// the team's threads share the row tiles. Called by every thread of a team
// (an orphaned worksharing loop).
enum { TILE = 32 };

#ifdef GEN_AVX2
static inline void transpose8x8(float *dst, size_t ldd, const float *src, size_t lds) {
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; i += 2) t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]), t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44), u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44), u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
        _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
    }
}
#endif

static void transpose_tile(float *dst, size_t ldd, const float *src, size_t lds, int r0, int r1, int c0, int c1) {
    int r8 = r0, c8 = c0;
#ifdef GEN_AVX2
    r8 = r0 + (r1 - r0) / 8 * 8, c8 = c0 + (c1 - c0) / 8 * 8;
    for (int r = r0; r < r8; r += 8)
        for (int c = c0; c < c8; c += 8) transpose8x8(dst + (size_t)c * ldd + r, ldd, src + (size_t)r * lds + c, lds);
#endif
    for (int c = c0; c < c1; c++) // what the 8 x 8 blocks left
        for (int r = c < c8 ? r8 : r0; r < r1; r++) dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
}

static void transpose_shared(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols) {
    int tiles = (rows + TILE - 1) / TILE;
#pragma omp for schedule(static) nowait
    for (int i = 0; i < tiles; i++) {
        int r0 = i * TILE, r1 = r0 + TILE < rows ? r0 + TILE : rows;
        for (int c0 = 0; c0 < cols; c0 += TILE)
            transpose_tile(dst, ldd, src, lds, r0, r1, c0, c0 + TILE < cols ? c0 + TILE : cols);
    }
}

void decode_load_weights(KVCache *c, const GPT *m) {
    const ParameterTensors *p = &m->params;
    int C = c->C, NH = c->NH, hs = C / NH, L = c->L, V = c->V;
    size_t CC = (size_t)C * C;
#pragma omp parallel num_threads(c->n_threads)
    {
        for (int l = 0; l < L; l++) {
            float *w = layer_wt(c, l);
            for (int k = 0; k < 3; k++)
                for (int h = 0; h < NH; h++)
                    transpose_shared(w + (size_t)h * 3 * hs + (size_t)k * hs, 3 * (size_t)C,
                                     p->qkvw + (size_t)l * 3 * CC + ((size_t)k * C + (size_t)h * hs) * C, C, hs, C);
            transpose_shared(w + 3 * CC, C, p->attprojw + l * CC, C, C, C);
            transpose_shared(w + 4 * CC, 4 * (size_t)C, p->fcw + l * 4 * CC, C, 4 * C, C);
            transpose_shared(w + 8 * CC, C, p->fcprojw + l * 4 * CC, 4 * (size_t)C, C, 4 * C);
        }
        transpose_shared(layer_wt(c, L), V, p->wte, C, V, C);
    }
    c->model = m;
}

// ---- kernels ------------------------------------------------------------------------
// out (n, OC; row stride ldo) = in (n, IC; row stride ldi) . W (IC, OC; row
// stride ldw).
static void matmul_tm(float *out, int ldo, const float *in, int ldi, const float *W, int ldw, int n, int OC,
                      int IC) {
    if (n <= 0 || OC <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, OC, IC, 1.0f, in, ldi, W, ldw, 0.0f, out, ldo);
}

// out (C) = LayerNorm of in (C) (layers.c's formula, eps 1e-5).
static void layernorm_row(float *out, const float *in, const float *w, const float *b, int C) {
    float mean = sum8(in, C) / C, s[8] = {0}, tail = 0.0f;
    int k = 0;
    for (; k + 8 <= C; k += 8)
        for (int j = 0; j < 8; j++) {
            float d = in[k + j] - mean;
            s[j] += d * d;
        }
    for (; k < C; k++) tail += (in[k] - mean) * (in[k] - mean);
    float var = (((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail) / C;
    float rstd = 1.0f / sqrtf(var + 1e-5f);
    for (k = 0; k < C; k++) out[k] = (in[k] - mean) * rstd * w[k] + b[k];
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

// x (n, C) += the partial sums of the team's threads u that made one (has(u)),
// in thread order, then bias: the same operations on every thread, so every
// thread's copy of the residual stream stays identical.
static void add_partials(float *x, const float *part, size_t part_stride, const float *bias, int C, int n,
                         int nth, int NH, int F) {
    size_t nc = (size_t)n * C;
    for (int u = 0; u < nth; u++) {
        int has = NH ? NH * (u + 1) / nth > NH * u / nth : split_at(F, u + 1, nth, 16) > split_at(F, u, nth, 16);
        if (!has) continue;
        const float *pu = part + u * part_stride;
        for (size_t i = 0; i < nc; i++) x[i] += pu[i];
    }
    for (int j = 0; j < n; j++)
        for (int k = 0; k < C; k++) x[(size_t)j * C + k] += bias[k];
}

static void team_barrier(int nth) {
    if (nth > 1) {
#pragma omp barrier
    }
}

// What thread t of a team of nth owns in a pass: its copy of the residual
// stream and scratch, its heads and MLP features, its partial sums.
typedef struct {
    float *x, *ln, *att;   // (rows, C) residual stream, (rows, C) LayerNorm output, (Tp) scores
    float *my_a, *my_f;    // (rows, C) partial sums of the attention and MLP projections
    int h0, h1, c0, nc;    // heads [h0, h1): features [c0, c0 + nc) of Q, K, V and the attention output
    int f0, nf;            // MLP hidden features [f0, f0 + nf)
} Share;

static Share thread_share(const KVCache *c, int t, int nth) {
    int C = c->C, hs = C / c->NH;
    size_t RC = (size_t)c->rows * C;
    Share sh;
    sh.x = c->thread_mem + (size_t)t * c->thread_floats, sh.ln = sh.x + RC, sh.att = sh.ln + RC;
    sh.my_a = c->part + t * RC, sh.my_f = c->part + (size_t)nth * RC + t * RC;
    sh.h0 = c->NH * t / nth, sh.h1 = c->NH * (t + 1) / nth, sh.c0 = sh.h0 * hs, sh.nc = (sh.h1 - sh.h0) * hs;
    sh.f0 = split_at(4 * C, t, nth, 16), sh.nf = split_at(4 * C, t + 1, nth, 16) - sh.f0;
    return sh;
}

// The cache lines layer l's keys and values of this thread's heads go to,
// fetched for writing: they arrive while the products run (cold, their
// stores stalled the loop that writes them).
static void prefetch_kv_rows(const Pass *P, const Share *sh, int l) {
    const KVCache *c = P->c;
    int hs = c->C / c->NH;
    for (int j = 0; j < P->n; j++)
        for (int h = sh->h0; h < sh->h1; h++) {
            float *kb = key_block(c, l, P->slot[j], h) + key_at(hs, P->pos[j], 0);
            float *vb = value_block(c, l, P->slot[j], h) + (size_t)P->pos[j] * hs;
            for (int d = 0; d < 8 * hs; d += 16) __builtin_prefetch(kb + d, 1, 3);
            for (int d = 0; d < hs; d += 16) __builtin_prefetch(vb + d, 1, 3);
        }
}

// Layer l's attention for this thread's heads: LayerNorm of the n rows, their
// Q, K, V (K and V into the cache for all n rows), single-query attention for
// the first na of them (row lrows[j] when na < n), and the output
// projection's partial sum over the thread's features into sh->my_a (na, C).
static void attention_share(const Pass *P, const Share *sh, int l, int n, int na, const int *lrows) {
    const ParameterTensors *p = &P->m->params;
    KVCache *c = P->c;
    int C = c->C, C3 = 3 * C, hs = C / c->NH;
    size_t lC = (size_t)l * C;
    const float *w = layer_wt(c, l), *qkvb = p->qkvb + 3 * lC;
    float scale = 1.0f / sqrtf((float)hs);
    for (int j = 0; j < n; j++) layernorm_row(sh->ln + (size_t)j * C, sh->x + (size_t)j * C, p->ln1w + lC, p->ln1b + lC, C);
    if (sh->nc == 0) return;
    matmul_tm(c->qkv + 3 * sh->c0, C3, sh->ln, C, w + 3 * sh->c0, C3, n, 3 * sh->nc, C);
    // Biases; Q scaled; K and V into the cache (every row first: a row may
    // attend to a position fed by a later row of this call).
    for (int j = 0; j < n; j++)
        for (int h = sh->h0; h < sh->h1; h++) {
            float *q = c->qkv + (size_t)j * C3 + 3 * h * hs, *kr = q + hs, *vr = kr + hs;
            const float *qb = qkvb + h * hs, *kb = qb + C, *vb = kb + C;
            float *kc = key_block(c, l, P->slot[j], h), *vc = value_block(c, l, P->slot[j], h) + (size_t)P->pos[j] * hs;
            for (int d = 0; d < hs; d++) {
                q[d] = (q[d] + qb[d]) * scale;
                kc[key_at(hs, P->pos[j], d)] = kr[d] + kb[d];
                vc[d] = vr[d] + vb[d];
            }
        }
    for (int j = 0; j < na; j++) {
        int r = na < n ? lrows[j] : j;
        for (int h = sh->h0; h < sh->h1; h++)
            attend(c, l, P->slot[r], P->pos[r], h, c->qkv + (size_t)r * C3 + 3 * h * hs, c->atty + (size_t)j * C + h * hs,
                   sh->att);
    }
    matmul_tm(sh->my_a, C, c->atty + sh->c0, C, w + 3 * (size_t)C * C + (size_t)sh->c0 * C, C, na, C, sh->nc);
}

// Layer l's MLP for this thread's hidden features: LayerNorm of the n rows,
// fc, GELU, and fcproj's partial sum over those features into sh->my_f.
static void mlp_share(const Pass *P, const Share *sh, int l, int n) {
    const ParameterTensors *p = &P->m->params;
    KVCache *c = P->c;
    int C = c->C, C4 = 4 * C;
    size_t lC = (size_t)l * C, CC = (size_t)C * C;
    const float *w = layer_wt(c, l);
    for (int j = 0; j < n; j++) layernorm_row(sh->ln + (size_t)j * C, sh->x + (size_t)j * C, p->ln2w + lC, p->ln2b + lC, C);
    if (sh->nf == 0) return;
    const float *fcb = p->fcb + 4 * lC + sh->f0;
    float *fch = c->fch + sh->f0;
    matmul_tm(fch, C4, sh->ln, C, w + 4 * CC + sh->f0, C4, n, sh->nf, C);
    for (int j = 0; j < n; j++) {
        float *r = fch + (size_t)j * C4;
        for (int f = 0; f < sh->nf; f++) {
            float u = r[f] + fcb[f];
            r[f] = 0.5f * u * (1.0f + fast_tanhf(GELU_SCALE * (u + 0.044715f * u * u * u)));
        }
    }
    matmul_tm(sh->my_f, C, fch, C4, w + 8 * CC + (size_t)sh->f0 * C, C, n, C, sh->nf);
}

// Each thread keeps its own copy of the residual stream and LayerNorms it;
// thread t owns heads [h0,h1) (their Q/K/V features, keys and values in the
// cache, attention, and the rows of the transposed output projection that
// read them, as a partial sum over its input features) and MLP hidden
// features [f0,f1) (the fc columns, GELU, and the fcproj rows reading them,
// again a partial sum). After each barrier every thread adds all partial
// sums to its copy. Every weight is read by one thread only. (Sharing a
// call by rows instead, each thread on its own sequences with no barrier,
// measured slower on small: 985 ms CPU a generate() call against 801, two
// threads, with an earlier hand-written matrix kernel; each thread streams
// every weight matrix, and with sgemm it would also pack every one.)
void decode_forward(const Pass *P, int t, int nth) {
    const ParameterTensors *p = &P->m->params;
    KVCache *c = P->c;
    int C = c->C, NH = c->NH, V = c->V, n = P->n;
    size_t RC = (size_t)c->rows * C;
    Share sh = thread_share(c, t, nth);
    float *x = sh.x, *ln = sh.ln;
    for (int j = 0; j < n; j++) { // x (n, C) = wte[token] + wpe[pos]
        const float *we = p->wte + (size_t)P->tok[j] * C, *pe = p->wpe + (size_t)P->pos[j] * C;
        for (int k = 0; k < C; k++) x[(size_t)j * C + k] = we[k] + pe[k];
    }
    // The last layer only needs the keys and values of rows whose logits
    // are not wanted (prefill): its attention and MLP run on the wanted rows.
    const int *lrows = P->lrows;
    for (int l = 0; l < c->L; l++) {
        size_t lC = (size_t)l * C;
        int na = l == c->L - 1 && lrows ? P->nl : n; // rows that go on past the keys and values
        prefetch_kv_rows(P, &sh, l);
        attention_share(P, &sh, l, n, na, lrows);
        if (na < n) { // from here on, rows 0..na-1 are the wanted ones (lrows ascending)
            for (int j = 0; j < na; j++)
                if (lrows[j] != j) memcpy(x + (size_t)j * C, x + (size_t)lrows[j] * C, C * sizeof(float));
            n = na, lrows = NULL;
        }
        team_barrier(nth);
        add_partials(x, c->part, RC, p->attprojb + lC, C, n, nth, NH, 0);
        mlp_share(P, &sh, l, n);
        team_barrier(nth);
        add_partials(x, c->part + (size_t)nth * RC, RC, p->fcprojb + lC, C, n, nth, 0, 4 * C);
    }
    // Final LayerNorm of the wanted rows into ln (nl, C); the LM head's
    // columns [v0,v1) of this thread straight into c->logits (slots, V); the
    // scalar head on thread 0.
    int nl = P->nl;
    if (nl == 0) return;
    for (int j = 0; j < nl; j++)
        layernorm_row(ln + (size_t)j * C, x + (size_t)(lrows ? lrows[j] : j) * C, p->lnfw, p->lnfb, C);
    int v0 = split_at(V, t, nth, 16), v1 = split_at(V, t + 1, nth, 16);
    matmul_tm(c->logits + v0, V, ln, C, layer_wt(c, c->L) + v0, V, nl, v1 - v0, C);
    if (t == 0)
        for (int j = 0; j < nl; j++) {
            float h = p->headb[0];
            for (int k = 0; k < C; k++) h += ln[(size_t)j * C + k] * p->headw[k];
            c->head[j] = h;
        }
}
