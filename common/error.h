// Errors travel up as a message in an Error, so that library code never exits
// and tests can check that bad input is refused with the right words.
#ifndef COMMON_ERROR_H
#define COMMON_ERROR_H

typedef struct {
    char msg[1024];
} Error;

// Formats the message into e (if non-NULL) and returns -1, so callers can
// write `return error_set(err, "...")`.
int error_set(Error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Prints "prog: message" to stderr and exits with status 1.
void error_exit(const char *prog, const Error *e) __attribute__((noreturn));

#endif
