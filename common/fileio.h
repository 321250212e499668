// File helpers that never leave a partial file under a final name: writes go
// to a temporary file in the same folder, are fsync'ed, then renamed over.
#ifndef COMMON_FILEIO_H
#define COMMON_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "common/error.h"

typedef struct {
    FILE *fp;
    char path[4096];
    char tmp_path[4096 + 32];
    int failed;
} AtomicFile;

int atomic_open(AtomicFile *af, const char *path, Error *err);
// Appends n bytes; a failure is remembered and reported by atomic_commit.
int atomic_write(AtomicFile *af, const void *buf, size_t n, Error *err);
// Flushes, fsyncs, renames over the final name and fsyncs the folder. On any
// failure the temporary file is removed and the old file is left untouched.
int atomic_commit(AtomicFile *af, Error *err);
// Drops the temporary file; the final name is never touched.
void atomic_abort(AtomicFile *af);

// Whole-file convenience wrapper around the above.
int write_file_atomic(const char *path, const void *buf, size_t n, Error *err);

// Reads a whole regular file, refusing files larger than max_bytes. The
// buffer gets a terminating NUL (not counted in *len); the caller frees it.
int read_file(const char *path, size_t max_bytes, unsigned char **buf, size_t *len, Error *err);

// Creates a folder and its parents (like mkdir -p).
int make_dirs(const char *path, Error *err);

// Joins folder and name into out (size n); returns -1 if it does not fit.
int path_join(char *out, size_t n, const char *dir, const char *name, Error *err);

int file_exists(const char *path);

#endif
