// Wall time spent inside cblas_sgemm, per OpenMP thread: an instrument for
// bench_model_sgemm (bench/CMakeLists.txt), which is bench_model linked with
// -Wl,--wrap=cblas_sgemm so that every call the model makes goes through
// sgemm_clock.c. It answers "how long would this step take if everything
// but the matrix products were free": the busiest thread's time in sgemm.
#pragma once

void sgemm_clock_reset(void);
// Seconds inside cblas_sgemm since the last reset, on the thread that spent
// the most; *calls and *flops (if not NULL) get the number of calls and
// their floating-point operations (2 M N K each), over all threads.
double sgemm_clock_busiest(long *calls, double *flops);
