// Interrupting a command at a known point, as a terminal's Ctrl-C would: for
// the tests of issue 16 that a stopped stage saves, says how to resume and
// exits 3 (test_reliability_stop.c, test_scripts.c).
#ifndef TESTS_SIGNAL_RUN_H
#define TESTS_SIGNAL_RUN_H

#include <stddef.h>

// Like run_split (testutil.h): runs `cmd` with /bin/sh in its own process
// group, stdin from /dev/null, stdout and stderr captured apart. Once its
// standard output contains `marker`, sends `sig` to the whole process group
// (once) and sets *sent. Returns the exit status (128 + N after dying of
// signal N), or -2 after timeout_s seconds (the group is killed). Start `cmd`
// with `exec` so that the status is the program's, not the shell's.
int run_split_signal(const char *cmd, const char *marker, int sig, int timeout_s, char *out, size_t n_out,
                     char *err, size_t n_err, int *sent);

#endif
