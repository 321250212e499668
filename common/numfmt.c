#include "common/numfmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_nonfinite(char *buf, double v) {
    if (isnan(v)) snprintf(buf, NUMFMT_MAX, "nan");
    else if (isinf(v)) snprintf(buf, NUMFMT_MAX, v > 0 ? "inf" : "-inf");
    else return 0;
    return 1;
}

// A whole number below 2^53 is written as one ("10", not "1e+01", which %.1g
// would give and which grep or awk would not read as 10).
static int write_whole(char *buf, double v) {
    if (v != floor(v) || fabs(v) >= 9007199254740992.0 || (v == 0 && signbit(v))) return 0;
    snprintf(buf, NUMFMT_MAX, "%.0f", v);
    return 1;
}

// %.9g always reads back to the same float and %.17g to the same double;
// fewer digits are tried first so that short values stay short.
char *fmt_float(char *buf, float v) {
    if (write_nonfinite(buf, v) || write_whole(buf, v)) return buf;
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, NUMFMT_MAX, "%.*g", digits, (double)v);
        float back = strtof(buf, NULL);
        if (memcmp(&back, &v, sizeof v) == 0) break;
    }
    return buf;
}

char *fmt_double(char *buf, double v) {
    if (write_nonfinite(buf, v) || write_whole(buf, v)) return buf;
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, NUMFMT_MAX, "%.*g", digits, v);
        double back = strtod(buf, NULL);
        if (memcmp(&back, &v, sizeof v) == 0) break;
    }
    return buf;
}
