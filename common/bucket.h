// Length-bucketed batches: a batch is padded to its longest row, so a batch
// of rows of similar length wastes little work on padding.
#ifndef COMMON_BUCKET_H
#define COMMON_BUCKET_H

#include <stddef.h>
#include <stdint.h>

// Like shuffled_index (common/rng.h), but with rows of similar length in a
// batch: each epoch's shuffle is cut into pools of BUCKET_POOL_BATCHES batches;
// a pool is sorted by length[] and its batches are visited in a seeded random
// order. Batches of consecutive positions g (g = step * batch + i) are then
// near-uniform in length, while which rows meet in a batch, and the order of
// batches, still change every epoch. As with shuffled_index the position alone
// says where a run is, so a resumed run needs no saved state. order (n
// entries) caches the current epoch's walk and *epoch which epoch that is
// (start with -1). n must be below 2^32.
// Sorts the row indices rows[0..n) (each below 2^32) by length[row], shortest first.
void sort_by_length(size_t *rows, size_t n, const int *length);

enum { BUCKET_POOL_BATCHES = 32 };
size_t bucketed_index(size_t n, const int *length, int batch, uint64_t seed, uint64_t g, size_t *order,
                      long *epoch);

#endif
