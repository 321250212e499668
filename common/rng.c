#include "common/rng.h"

#include <math.h>

void rng_seed(Rng *r, uint64_t seed) {
    r->state = seed ^ 0x9E3779B97F4A7C15ull;
}

uint64_t rng_u64(Rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float rng_uniform(Rng *r) {
    return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

double rng_uniform_double(Rng *r) {
    return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

float rng_normal(Rng *r) {
    double u1 = rng_uniform_double(r), u2 = rng_uniform_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint64_t rng_below(Rng *r, uint64_t n) {
    // Rejection sampling removes the modulo bias.
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = rng_u64(r);
    } while (x >= limit);
    return x % n;
}

size_t shuffled_index(size_t n, uint64_t seed, uint64_t g, size_t *perm, long *perm_epoch) {
    long epoch = (long)(g / n);
    if (epoch != *perm_epoch) { // Fisher–Yates
        Rng rng;
        rng_seed(&rng, seed * 7919u + (uint64_t)epoch);
        for (size_t i = 0; i < n; i++) perm[i] = i;
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = rng_below(&rng, i + 1), t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        *perm_epoch = epoch;
    }
    return perm[g % n];
}
