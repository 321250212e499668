// Helpers for end-to-end tests that run the project's executables.
#ifndef TESTS_TESTUTIL_H
#define TESTS_TESTUTIL_H

#include <stdarg.h>
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

// Runs `cmd` with /bin/sh in its own process group, with standard input
// from /dev/null, stdout and stderr captured apart (each truncated to its
// buffer, NUL-terminated). After timeout_s seconds the whole group is killed
// and -2 is returned (a hang); otherwise the exit status, or 128 + the signal
// for a command that died of one (as the shell reports it).
int run_split(const char *cmd, int timeout_s, char *out, size_t n_out, char *err, size_t n_err);

// Like run_split, and interrupts the command at a known point, as a
// terminal's Ctrl-C would: once its standard output holds `marker`, sends
// `sig` to its whole process group (once) and sets *sent. Start `cmd` with
// `exec` so that the status is the program's, not the shell's.
int run_split_signal(const char *cmd, const char *marker, int sig, int timeout_s, char *out, size_t n_out,
                     char *err, size_t n_err, int *sent);

// Runs the formatted command in folder dir (`cd DIR && exec COMMAND`) with
// run_split: stdout and stderr apart, killed after timeout_s seconds (-2).
int run_in_dir(const char *dir, int timeout_s, char *out, size_t n_out, char *err, size_t n_err, const char *fmt,
               ...) __attribute__((format(printf, 7, 8)));
int vrun_in_dir(const char *dir, int timeout_s, char *out, size_t n_out, char *err, size_t n_err, const char *fmt,
                va_list ap);

// dir_snapshot of dir/rel.
char *dir_snapshot_at(const char *dir, const char *rel);

// A listing of every file and folder under dir with each file's size and
// SHA-256 (malloc'ed; the caller frees it): two listings are equal only when
// the folder is byte-identical, leftover temporary files included.
char *dir_snapshot(const char *dir);

// 1 if s is exactly one non-empty line ending in a newline.
int is_one_line(const char *s);

// Builds the smoke chain the end-to-end tests share in dir, in order:
// tok.bin, pre/ (pretrain), sft/, prefs/, rm/ (train_rm), stopping after the
// step named by `upto` ("tok", "pre", "sft", "prefs" or "rm"). Returns 0, or
// the failing command's status after printing its output.
int make_smoke_chain(const char *dir, const char *upto);

// Column `col` of metrics.csv rows, skipping empty fields; returns the count.
int read_csv_column(const char *path, const char *col, double *values, int max);

#endif
