#include "common/bucket.h"

#include <stdlib.h>

#include "common/rng.h"

_Static_assert(sizeof(size_t) >= 8, "bucketed_index packs a length and an index into one size_t");

static int compare_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

// Ties are broken by index, so the result does not depend on qsort's stability.
void sort_by_length(size_t *rows, size_t n, const int *length) {
    for (size_t i = 0; i < n; i++) rows[i] |= (size_t)(unsigned)length[rows[i]] << 32;
    qsort(rows, n, sizeof *rows, compare_size);
    for (size_t i = 0; i < n; i++) rows[i] &= 0xffffffffu;
}

// Sorts rows [lo, hi) of order by length, then shuffles whole batches of the range.
static void sort_pool(size_t *order, size_t lo, size_t hi, const int *length, int batch, Rng *rng) {
    sort_by_length(order + lo, hi - lo, length);
    size_t n_batches = (hi - lo) / (size_t)batch; // a trailing part batch stays last
    for (size_t i = n_batches; i > 1; i--) {
        size_t j = rng_below(rng, i), a = lo + (i - 1) * batch, b = lo + j * batch;
        for (int k = 0; k < batch && j != i - 1; k++) {
            size_t t = order[a + k];
            order[a + k] = order[b + k], order[b + k] = t;
        }
    }
}

size_t bucketed_index(size_t n, const int *length, int batch, uint64_t seed, uint64_t g, size_t *order,
                      long *epoch) {
    long e = (long)(g / n);
    if (e != *epoch) {
        long fresh = -1; // fills order with the epoch's plain shuffle
        shuffled_index(n, seed, (uint64_t)e * n, order, &fresh);
        Rng rng;
        rng_seed(&rng, seed * 104729u + (uint64_t)e);
        size_t pool = (size_t)batch * BUCKET_POOL_BATCHES;
        for (size_t lo = 0; lo < n; lo += pool) sort_pool(order, lo, lo + pool < n ? lo + pool : n, length, batch, &rng);
        *epoch = e;
    }
    return order[g % n];
}
