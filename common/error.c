#include "common/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int error_set(Error *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int usage_error(Error *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return ERR_USAGE;
}

int stdout_finish(const char *prog, int status) {
    errno = 0;
    int failed = fflush(stdout) != 0;
    int cause = errno;
    failed |= ferror(stdout) != 0;
    if (fclose(stdout) != 0 && !failed) failed = 1, cause = errno;
    if (!failed) return status;
    // A write that failed before the final flush left its cause in errno long
    // ago; the flush of what remained usually fails the same way.
    fprintf(stderr, "%s: standard output: write failed: %s\n", prog, cause ? strerror(cause) : "I/O error");
    return status ? status : 1;
}

void error_exit(const char *prog, const Error *e) {
    fprintf(stderr, "%s: %s\n", prog, e->msg);
    exit(1);
}

void error_exit_rc(const char *prog, int rc, const Error *e) {
    fprintf(stderr, "%s: %s\n", prog, e->msg);
    exit(rc == ERR_USAGE ? EXIT_USAGE : 1);
}
