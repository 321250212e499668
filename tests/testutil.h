// Helpers for end-to-end tests that run the project's executables.
#ifndef TESTS_TESTUTIL_H
#define TESTS_TESTUTIL_H

#include <stddef.h>

// Runs a shell command built from fmt, capturing stdout and stderr together
// into out (truncated to n bytes). Returns the exit status (-1 if it could
// not run or died from a signal).
int run_cmd(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// Path of an executable in the build (MINIRLHF_BIN), of a source file
// (MINIRLHF_ROOT), and a new empty temporary folder; static storage per call
// site is not used: results go into out.
void bin_path(char *out, size_t n, const char *name);
void src_path(char *out, size_t n, const char *rel);
void make_temp_dir(char *out, size_t n);

// Column `col` of metrics.csv rows, skipping empty fields; returns the count.
int read_csv_column(const char *path, const char *col, double *values, int max);

#endif
