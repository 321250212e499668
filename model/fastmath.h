// exp and tanh written so that GCC vectorises the loops that call them: libm's
// expf and tanhf are opaque calls, one element at a time, and took more time
// than all matrix products together in a tiny training step (perf, see
// BENCHMARKS.md). tests/test_fastmath.c compares both with libm.
#ifndef MODEL_FASTMATH_H
#define MODEL_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

// exp(x) with relative error below 2e-7 on [-87, 88]; inputs beyond are
// clamped (exp(-87) is near the smallest normal float, exp(88) near the
// largest), so the result is never inf or a denormal.
static inline float fast_expf(float x) {
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    // x = k ln2 + r with |r| <= ln2/2; ln2 split in two for an exact k*ln2.
    float k = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - k * 0.693359375f + k * 2.12194440e-4f;
    // Cephes' minimax polynomial for exp(r) on that interval.
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)k + 127) << 23; // 2^k
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

// tanh(x) = 1 - 2 / (exp(2x) + 1); absolute error below 1e-6 everywhere.
static inline float fast_tanhf(float x) {
    return 1.0f - 2.0f / (fast_expf(2.0f * x) + 1.0f);
}

#endif
