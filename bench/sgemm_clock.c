// See sgemm_clock.h. A call made inside an OpenMP parallel region runs on
// its thread (OpenBLAS's OpenMP build does not fork inside one) and counts
// for that thread; a call made outside one may use all of OpenBLAS's
// threads and counts for every thread.
//
// The counters are file-scope state, the one exception to the project's
// rule against it: a linker wrapper has the caller's arguments and nothing
// else to keep them in. Each thread writes only its own padded slot, except
// outside parallel regions, where only the initial thread runs.
#include "bench/sgemm_clock.h"

#include <cblas.h>
#include <omp.h>

#include "common/progress.h"

enum { MAX_THREADS = 64 };

static struct {
    double seconds, flops;
    long calls;
    char pad[40]; // one cache line per thread
} slot[MAX_THREADS];

// cblas_sgemm's parameters, as cblas.h declares them.
#define SGEMM_PARAMS                                                                                            \
    OPENBLAS_CONST enum CBLAS_ORDER order, OPENBLAS_CONST enum CBLAS_TRANSPOSE ta,                              \
        OPENBLAS_CONST enum CBLAS_TRANSPOSE tb, OPENBLAS_CONST blasint M, OPENBLAS_CONST blasint N,             \
        OPENBLAS_CONST blasint K, OPENBLAS_CONST float alpha, OPENBLAS_CONST float *A,                          \
        OPENBLAS_CONST blasint lda, OPENBLAS_CONST float *B, OPENBLAS_CONST blasint ldb,                        \
        OPENBLAS_CONST float beta, float *C, OPENBLAS_CONST blasint ldc

void __real_cblas_sgemm(SGEMM_PARAMS); // OpenBLAS's, under the name --wrap gives it
void __wrap_cblas_sgemm(SGEMM_PARAMS); // what the model's calls reach

void __wrap_cblas_sgemm(SGEMM_PARAMS) {
    double t0 = now_seconds();
    __real_cblas_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    double dt = now_seconds() - t0, flops = 2.0 * M * N * K;
    if (omp_in_parallel()) {
        int t = omp_get_thread_num();
        if (t < MAX_THREADS) slot[t].seconds += dt, slot[t].flops += flops, slot[t].calls++;
        return;
    }
    int nth = omp_get_max_threads() < MAX_THREADS ? omp_get_max_threads() : MAX_THREADS;
    for (int t = 0; t < nth; t++) slot[t].seconds += dt, slot[t].flops += flops / nth;
    slot[0].calls++;
}

void sgemm_clock_reset(void) {
    for (int t = 0; t < MAX_THREADS; t++) slot[t].seconds = slot[t].flops = 0.0, slot[t].calls = 0;
}

double sgemm_clock_busiest(long *calls, double *flops) {
    double most = 0.0, f = 0.0;
    long n = 0;
    for (int t = 0; t < MAX_THREADS; t++) {
        if (slot[t].seconds > most) most = slot[t].seconds;
        n += slot[t].calls, f += slot[t].flops;
    }
    if (calls) *calls = n;
    if (flops) *flops = f;
    return most;
}
