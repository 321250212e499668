// Errors travel up as a message in an Error, so that library code never exits
// and tests can check that bad input is refused with the right words.
#ifndef COMMON_ERROR_H
#define COMMON_ERROR_H

typedef struct {
    char msg[1024];
} Error;

// Exit status of a training stage (pretrain, sft, train_rm, ppo) that stopped
// before its last step and left a checkpoint to continue from with --resume:
// SIGINT, SIGTERM or --stop-after. Distinct from 0 (finished) and 1 (an error
// or bad input), so that a script can tell a partly trained model apart.
#define EXIT_STOPPED 3

// Exit status of a usage error: an unknown or abbreviated option, a value out
// of range or malformed on the command line, a required option missing.
// Distinct from 1 (bad input or a failure), as in the scripts.
#define EXIT_USAGE 2

// What a function returns for a usage error (-1 is any other error), so that
// main can pick the exit status: see error_exit_rc.
#define ERR_USAGE (-2)

// Formats the message into e (if non-NULL) and returns -1, so callers can
// write `return error_set(err, "...")`.
int error_set(Error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// As error_set, for a usage error: returns ERR_USAGE.
int usage_error(Error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Prints "prog: message" to stderr and exits with status 1.
void error_exit(const char *prog, const Error *e) __attribute__((noreturn));

// The same with the status for rc, what the failing call returned:
// EXIT_USAGE for ERR_USAGE, 1 otherwise.
void error_exit_rc(const char *prog, int rc, const Error *e) __attribute__((noreturn));

// The last thing a program that prints results does: flushes and closes
// standard output and, if any write to it failed (a full disk, `> /dev/full`,
// a closed pipe), prints "prog: standard output: write failed: REASON" and
// returns 1; otherwise returns status. Usage: `return stdout_finish(prog, 0);`
int stdout_finish(const char *prog, int status);

#endif
