// AVX2 + FMA forms of model/fastmath.h for the hand-vectorised loops of
// layers.c and loss.c. GCC vectorises fast_expf by itself, but in strict C11
// it may not contract a * b + c into an FMA, so its polynomial is a chain of
// twice as many dependent operations; in GELU that chain, not the arithmetic,
// set the pace (the out-of-order window covers only a few iterations of it).
// The scalar functions stay the reference: tests compare the kernels that use
// these with simple versions built on fastmath.h or libm.
#ifndef MODEL_VECMATH_H
#define MODEL_VECMATH_H

#if defined(__AVX2__) && defined(__FMA__)
#define VECMATH_AVX2 1
#include <immintrin.h>

// fast_expf on 8 lanes: the same range reduction and polynomial, with FMAs
// (as accurate as the scalar form or more: each FMA rounds once).
static inline __m256 fast_exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 k = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fmadd_ps(k, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
}

// fast_tanhf on 8 lanes: 1 - 2 / (exp(2x) + 1).
static inline __m256 fast_tanh8(__m256 x) {
    __m256 e = fast_exp8(_mm256_add_ps(x, x));
    return _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
}

// Largest and sum of the 8 lanes.
static inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline float hsum8(__m256 v) {
    __m128 m = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_add_ps(m, _mm_movehl_ps(m, m));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

// Lanes j < m set (0 <= m <= 8), for masked loads and stores.
static inline __m256i lanes_below(int m) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#endif

#endif
