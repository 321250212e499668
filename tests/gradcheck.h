// Central finite differences against analytic gradients, shared by the
// gradient tests.
#ifndef TESTS_GRADCHECK_H
#define TESTS_GRADCHECK_H

#include <stddef.h>

// Returns the scalar loss at the current parameter values.
typedef double (*LossFn)(void *ctx);

// Perturbs up to max_checks entries of x (spread evenly over n) by +-eps and
// compares (f(x+eps) - f(x-eps)) / 2eps with grad. Returns the relative error
// ||analytic - numeric|| / (||analytic|| + ||numeric||) over the checked
// entries (0 when both are zero) and prints it with the name.
double gradcheck(const char *name, float *x, const float *grad, size_t n, size_t max_checks,
                 float eps, LossFn f, void *ctx);

// Fills x with N(0, std) draws from a fixed seed.
void fill_normal(float *x, size_t n, float std, unsigned long long seed);

// sum_i out[i] * r[i] in double: a loss whose gradient with respect to out is r.
double dot_loss(const float *out, const float *r, size_t n);

#endif
