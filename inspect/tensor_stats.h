// Statistics of checkpoint tensors for `ckpt info` and `ckpt diff`, computed
// in double precision straight from the loaded payload (no copies).
#ifndef INSPECT_TENSOR_STATS_H
#define INSPECT_TENSOR_STATS_H

#include <stddef.h>

// Summary of one tensor. mean, std (population, ddof 0), min and max cover
// the finite values only, so that one NaN does not hide the rest; nonfinite
// counts the NaNs and infinities. With no finite value the four are NaN.
typedef struct {
    size_t count;
    double mean, std, min, max;
    size_t nonfinite;
} TensorStats;

void tensor_stats(const float *x, size_t n, TensorStats *out);

// Sums from which `ckpt diff` derives its figures; they add up across
// tensors, which gives the whole-model figures.
typedef struct {
    double sq_a, sq_b;  // squared norms of A and B
    double sq_diff;     // ||A - B||^2
    double dot;         // <A, B>
    double max_abs_diff;
} DiffSums;

void diff_sums(const float *a, const float *b, size_t n, DiffSums *out);
void diff_sums_add(DiffSums *total, const DiffSums *part);
// ||A - B|| / ||A||: 0 when both are zero, infinity when only A is zero.
double diff_relative_change(const DiffSums *d);
// <A, B> / (||A|| ||B||): NaN (undefined) when either tensor is all zeros.
double diff_cosine(const DiffSums *d);

#endif
