// Best-of-n from a pool: the exact expectation over all n-subsets of a pool
// of m samples of one prompt (not one random subset) of a value of the
// sample a selection score ranks first, and the KL of that selection.
//
// Sort the pool by score. The sample of rank i (1 = lowest) is the best of
// an n-subset when it is in the subset and the other n - 1 come from the
// i - 1 below it: C(i-1, n-1) of the C(m, n) subsets. Ties are broken
// uniformly at random: a group of tied samples at ranks a..b holds the best
// of C(b, n) - C(a-1, n) subsets, shared equally among its members. The
// weights w (one per sample, summing to 1) are then the best-of-n policy on
// the pool, and any expectation under it is a weighted mean.
#ifndef BON_BON_ESTIMATOR_H
#define BON_BON_ESTIMATOR_H

#include <stddef.h>

// w[i] = the probability that sample i is the best of a uniformly drawn
// n-subset of the m samples, by score (1 <= n <= m). Exact up to rounding;
// works in log-binomials, so m of thousands is fine. Returns 0, or -1 when
// out of memory (w untouched).
int bon_weights(const double *score, int m, int n, double *w);

// sum_i w[i] x[i].
double bon_expect(const double *w, const double *x, int m);

// The analytic KL of best-of-n from its reference, log n - (n - 1)/n
// (Stiennon et al. 2020; Beirami et al. 2024 show it is an upper bound, tight
// when no two rewards tie).
double bon_kl_analytic(int n);

// The KL of the best-of-n selection on the pool from uniform selection on
// it, sum_i w[i] log(m w[i]): the pool standing for the reference. With
// distinct scores it tends to the analytic value as the pool grows (a pool
// of m only is above it: at n = m it is log m, not log m - (m-1)/m); tied
// scores share weight and lower it.
double bon_kl_pool(const double *w, int m);

#endif
