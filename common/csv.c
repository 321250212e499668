#include "common/csv.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/numfmt.h"

int csv_open(CsvWriter *w, const char *path, const char *header, int append, Error *err) {
    w->n_cols = 1;
    for (const char *c = header; *c; c++) w->n_cols += *c == ',';
    int exists = append && file_exists(path);
    w->fp = fopen(path, exists ? "a" : "w");
    if (!w->fp) return error_set(err, "%s: cannot open for writing: %s", path, strerror(errno));
    if (!exists) fprintf(w->fp, "%s\n", header);
    fflush(w->fp);
    return 0;
}

// Most metrics are computed in float: a value that is exactly a float is
// written as the shortest text strtof reads back to it (0.1f is "0.1", not
// "0.10000000149011612"), any other as the shortest text strtod reads back.
// Whole numbers such as the step come out as plain integers either way.
static const char *format_metric(char *buf, double v) {
    float f = (float)v;
    return (double)f == v ? fmt_float(buf, f) : fmt_double(buf, v);
}

void csv_row(CsvWriter *w, const double *values) {
    char num[NUMFMT_MAX];
    for (int i = 0; i < w->n_cols; i++) {
        if (i) fputc(',', w->fp);
        if (!isnan(values[i])) fputs(format_metric(num, values[i]), w->fp);
    }
    fputc('\n', w->fp);
    fflush(w->fp);
}

void csv_close(CsvWriter *w) {
    if (w->fp) fclose(w->fp);
    w->fp = NULL;
}

int csv_truncate_after(const char *path, double step, Error *err) {
    if (!file_exists(path)) return 0;
    unsigned char *buf;
    size_t len;
    if (read_file(path, (size_t)1 << 30, &buf, &len, err)) return -1;
    char *text = (char *)buf;
    size_t keep = 0;
    for (size_t pos = 0, line = 0; pos < len; line++) {
        char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) + 1 : len;
        if (line > 0 && strtod(text + pos, NULL) > step) break;
        keep = end;
        pos = end;
    }
    int rc = write_file_atomic(path, text, keep, err);
    free(buf);
    return rc;
}
