#include "inspect/tensor_stats.h"

#include <math.h>

void tensor_stats(const float *x, size_t n, TensorStats *out) {
    // Two passes (mean first, then squared deviations) because a one-pass
    // sum of squares loses the std of small weights to cancellation.
    double sum = 0, lo = INFINITY, hi = -INFINITY;
    size_t nonfinite = 0;
#pragma omp parallel for reduction(+ : sum, nonfinite) reduction(min : lo) reduction(max : hi)
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        if (!isfinite(v)) {
            nonfinite++;
            continue;
        }
        sum += v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    size_t finite = n - nonfinite;
    double mean = finite ? sum / (double)finite : NAN, dev = 0;
#pragma omp parallel for reduction(+ : dev)
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        if (isfinite(v)) dev += (v - mean) * (v - mean);
    }
    out->count = n;
    out->nonfinite = nonfinite;
    out->mean = mean;
    out->std = finite ? sqrt(dev / (double)finite) : NAN;
    out->min = finite ? lo : NAN;
    out->max = finite ? hi : NAN;
}

void diff_sums(const float *a, const float *b, size_t n, DiffSums *out) {
    double sq_a = 0, sq_b = 0, sq_diff = 0, dot = 0, max_abs = 0;
#pragma omp parallel for reduction(+ : sq_a, sq_b, sq_diff, dot) reduction(max : max_abs)
    for (size_t i = 0; i < n; i++) {
        double x = a[i], y = b[i], d = x - y;
        sq_a += x * x;
        sq_b += y * y;
        sq_diff += d * d;
        dot += x * y;
        max_abs = fabs(d) > max_abs ? fabs(d) : max_abs;
    }
    *out = (DiffSums){sq_a, sq_b, sq_diff, dot, max_abs};
}

void diff_sums_add(DiffSums *total, const DiffSums *part) {
    total->sq_a += part->sq_a;
    total->sq_b += part->sq_b;
    total->sq_diff += part->sq_diff;
    total->dot += part->dot;
    if (part->max_abs_diff > total->max_abs_diff) total->max_abs_diff = part->max_abs_diff;
}

double diff_relative_change(const DiffSums *d) {
    if (d->sq_a == 0) return d->sq_diff == 0 ? 0.0 : INFINITY;
    return sqrt(d->sq_diff) / sqrt(d->sq_a);
}

double diff_cosine(const DiffSums *d) {
    if (d->sq_a == 0 || d->sq_b == 0) return NAN;
    return d->dot / (sqrt(d->sq_a) * sqrt(d->sq_b));
}
