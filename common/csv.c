#include "common/csv.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "common/fileio.h"

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

void csv_row(CsvWriter *w, const double *values) {
    for (int i = 0; i < w->n_cols; i++) {
        if (i) fputc(',', w->fp);
        if (!isnan(values[i])) fprintf(w->fp, "%.6g", values[i]);
    }
    fputc('\n', w->fp);
    fflush(w->fp);
}

void csv_close(CsvWriter *w) {
    if (w->fp) fclose(w->fp);
    w->fp = NULL;
}
