#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int error_set(Error *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void error_exit(const char *prog, const Error *e) {
    fprintf(stderr, "%s: %s\n", prog, e->msg);
    exit(1);
}
