#include "bon/bon_estimator.h"

#include <math.h>
#include <stdlib.h>

// log C(a, b), -inf when b > a (no such subset).
static double log_choose(int a, int b) {
    if (b < 0 || b > a) return -INFINITY;
    return lgamma(a + 1.0) - lgamma(b + 1.0) - lgamma(a - b + 1.0);
}

// The share of the C(m, n) subsets whose best lies at ranks a..b (1-based):
// (C(b, n) - C(a-1, n)) / C(m, n), as a difference of exponentials.
static double group_share(int a, int b, int m, int n) {
    double all = log_choose(m, n);
    return exp(log_choose(b, n) - all) - exp(log_choose(a - 1, n) - all);
}

// qsort has no context argument: the scores travel with the indices.
typedef struct {
    double score;
    int index;
} Ranked;

static int by_score(const void *x, const void *y) {
    const Ranked *a = x, *b = y;
    if (a->score != b->score) return a->score < b->score ? -1 : 1;
    return a->index - b->index; // a stable order; ties are shared anyway
}

int bon_weights(const double *score, int m, int n, double *w) {
    Ranked *r = malloc((size_t)m * sizeof *r);
    if (!r) return -1;
    for (int i = 0; i < m; i++) r[i] = (Ranked){score[i], i};
    qsort(r, (size_t)m, sizeof *r, by_score);
    for (int a = 0; a < m;) {
        int b = a;
        while (b + 1 < m && r[b + 1].score == r[a].score) b++;
        double each = group_share(a + 1, b + 1, m, n) / (b - a + 1);
        for (int i = a; i <= b; i++) w[r[i].index] = each;
        a = b + 1;
    }
    free(r);
    return 0;
}

double bon_expect(const double *w, const double *x, int m) {
    double s = 0;
    for (int i = 0; i < m; i++) s += w[i] * x[i];
    return s;
}

double bon_kl_analytic(int n) {
    return log((double)n) - (n - 1.0) / n;
}

double bon_kl_pool(const double *w, int m) {
    double kl = 0;
    for (int i = 0; i < m; i++)
        if (w[i] > 0) kl += w[i] * log(m * w[i]);
    return kl;
}
