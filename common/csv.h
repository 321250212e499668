// metrics.csv: a header row, then one row of numbers per logged step.
#ifndef COMMON_CSV_H
#define COMMON_CSV_H

#include <stdio.h>

#include "common/error.h"

typedef struct {
    FILE *fp;
    int n_cols;
} CsvWriter;

// header is the comma-separated column names. With append set and an existing
// file, rows are added after what is there (a resumed run) and no header is
// written again.
int csv_open(CsvWriter *w, const char *path, const char *header, int append, Error *err);
// Writes n_cols values (NaN is written as an empty field), each as the
// shortest text that reads back bit for bit: with strtof for a value that is
// exactly a float, with strtod otherwise (common/numfmt.h); flushed
// at once so a killed run keeps every row it logged.
void csv_row(CsvWriter *w, const double *values);
void csv_close(CsvWriter *w);

// Drops the rows whose first field (the step) is greater than step, so a run
// resumed from a checkpoint does not log the same steps twice. A missing
// file is fine.
int csv_truncate_after(const char *path, double step, Error *err);

#endif
