// A seeded random number generator whose whole state is one 64-bit word, so
// it can be saved with a checkpoint and a resumed run continues the stream.
#ifndef COMMON_RNG_H
#define COMMON_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t state;
} Rng;

void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_u64(Rng *r);          // splitmix64
float rng_uniform(Rng *r);         // [0, 1)
double rng_uniform_double(Rng *r); // [0, 1)
float rng_normal(Rng *r);          // N(0, 1), Box–Muller
uint64_t rng_below(Rng *r, uint64_t n); // uniform in [0, n), n > 0, unbiased

// Index at global position g of a walk through n items in a fresh seeded
// shuffle each epoch (epoch = g / n), so a resumed run needs no saved state:
// the position alone says where it is. perm (n entries) caches the current
// epoch's order and *perm_epoch which epoch that is (start with -1).
size_t shuffled_index(size_t n, uint64_t seed, uint64_t g, size_t *perm, long *perm_epoch);

#endif
