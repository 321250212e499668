#include "tests/gradcheck.h"

#include <math.h>
#include <stdio.h>

#include "common/rng.h"

double gradcheck(const char *name, float *x, const float *grad, size_t n, size_t max_checks,
                 float eps, LossFn f, void *ctx) {
    size_t step = n > max_checks ? n / max_checks : 1;
    double diff2 = 0.0, a2 = 0.0, n2 = 0.0;
    for (size_t i = 0; i < n; i += step) {
        float saved = x[i];
        x[i] = saved + eps;
        double up = f(ctx);
        x[i] = saved - eps;
        double down = f(ctx);
        x[i] = saved;
        double numeric = (up - down) / (2.0 * eps);
        double analytic = grad[i];
        diff2 += (analytic - numeric) * (analytic - numeric);
        a2 += analytic * analytic;
        n2 += numeric * numeric;
    }
    double denom = sqrt(a2) + sqrt(n2);
    double rel = denom > 0 ? sqrt(diff2) / denom : 0.0;
    printf("    gradcheck %-24s rel error %.2e  (|grad| %.3e)\n", name, rel, sqrt(a2));
    return rel;
}

void fill_normal(float *x, size_t n, float std, unsigned long long seed) {
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = std * rng_normal(&r);
}

double dot_loss(const float *out, const float *r, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * r[i];
    return s;
}
