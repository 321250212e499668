// The ceiling for the model's matrix products: cblas_sgemm GFLOP/s on square
// sizes and on the shapes a tiny/small training step multiplies, with the
// OpenBLAS kernel set and thread count that produced them. A benchmark, not a
// test: see BENCHMARKS.md.
#include <stdio.h>
#include <stdlib.h>

#include <cblas.h>
#include <omp.h>

#include "common/cli.h"
#include "common/progress.h"

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Median GFLOP/s of C (M,N) = A (M,K) B^T with B (N,K): the layout of
// matmul_forward.
static double sgemm_gflops(int M, int N, int K, int reps) {
    float *a = malloc((size_t)M * K * sizeof(float)), *b = malloc((size_t)N * K * sizeof(float));
    float *c = malloc((size_t)M * N * sizeof(float));
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)(i % 5) * 0.1f;
    double *t = malloc(reps * sizeof(double));
    for (int r = -2; r < reps; r++) { // two warm-up calls
        double t0 = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        if (r >= 0) t[r] = now_seconds() - t0;
    }
    qsort(t, reps, sizeof(double), compare_double);
    double gflops = 2.0 * M * N * K / t[reps / 2] * 1e-9;
    free(a), free(b), free(c), free(t);
    return gflops;
}

int main(int argc, char **argv) {
    int reps = 20;
    CliOption opts[] = {{"reps", CLI_INT, &reps, 1, 100000, "timed calls per shape (median reported)"}};
    Error err;
    int rc = cli_parse("gemm_peak", opts, 1, argc, argv, NULL, &err);
    if (rc == CLI_HELP) cli_print_help(stdout, "gemm_peak", "cblas_sgemm GFLOP/s on square and model shapes.", opts, 1);
    if (rc > 0) return 0;
    if (rc) error_exit_rc("gemm_peak", rc, &err);
    printf("OpenBLAS core %s, %d threads\n", openblas_get_corename(), omp_get_max_threads());
    printf("%-34s %8s %8s %8s %10s\n", "shape", "M", "N", "K", "GFLOP/s");
    int square[] = {256, 512, 1024, 2048};
    for (int i = 0; i < 4; i++)
        printf("%-34s %8d %8d %8d %10.1f\n", "square", square[i], square[i], square[i],
               sgemm_gflops(square[i], square[i], square[i], reps));
    struct { const char *name; int M, N, K; } model[] = {
        {"tiny qkv (B*T=1024, C -> 3C)", 1024, 384, 128},
        {"tiny mlp up (C -> 4C)", 1024, 512, 128},
        {"tiny mlp down (4C -> C)", 1024, 128, 512},
        {"tiny lm head (C -> V=2048)", 1024, 2048, 128},
        {"small qkv (B*T=1024, C -> 3C)", 1024, 1152, 384},
        {"small mlp up (C -> 4C)", 1024, 1536, 384},
        {"small mlp down (4C -> C)", 1024, 384, 1536},
        {"small lm head (C -> V=4096)", 1024, 4096, 384},
    };
    for (size_t i = 0; i < sizeof model / sizeof model[0]; i++)
        printf("%-34s %8d %8d %8d %10.1f\n", model[i].name, model[i].M, model[i].N, model[i].K,
               sgemm_gflops(model[i].M, model[i].N, model[i].K, reps));
    return 0;
}
