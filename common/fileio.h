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

// The one way an input file named by the user is opened. It opens without
// blocking (O_NONBLOCK: opening a FIFO with no writer would wait forever),
// refuses anything that is not a regular file with "PATH: not a regular file
// (a FIFO)" and the like, then clears O_NONBLOCK. Returns a descriptor
// (O_CLOEXEC) or -1 with a message in err; *size gets the file's size when
// size is not NULL.
// Readers that take a pipe or standard input on purpose do not come here:
// jsonl_open_stream (`score --input -`, its default, and `sample --prompts -`
// read <stdin>) and `bpe encode`/`decode` with no file arguments or "-".
// Elsewhere "-" is refused with a message saying so, rather than read as a
// file of that name (./- names one); atomic_open refuses it as an output.
int open_input_fd(const char *path, unsigned long long *size, Error *err);
// open_input_fd wrapped in a FILE opened for binary reading.
FILE *open_input(const char *path, unsigned long long *size, Error *err);

// Reads a whole regular file (through open_input), refusing files larger than max_bytes. The
// buffer gets a terminating NUL (not counted in *len); the caller frees it.
int read_file(const char *path, size_t max_bytes, unsigned char **buf, size_t *len, Error *err);

// Creates a folder and its parents (like mkdir -p).
int make_dirs(const char *path, Error *err);

// Joins folder and name into out (size n); returns -1 if it does not fit.
int path_join(char *out, size_t n, const char *dir, const char *name, Error *err);

int file_exists(const char *path);

// The absolute form of path, newly allocated (NULL when out of memory): its
// realpath when it exists, else path itself when absolute, else the current
// folder joined with it. Paths recorded this way stay valid from any folder.
char *path_absolute(const char *path);

// Where the absolute path `recorded` would be if the folder old_dir it was
// recorded beside had moved to new_dir with everything around it: the part
// of `recorded` below the deepest folder it shares with old_dir, put under
// new_dir with one ".." per folder of old_dir below that one (old_dir
// /a/run/ppo and recorded /a/run/sft/model.bin give new_dir/../sft/model.bin).
// Newly allocated; NULL when either path is not absolute or out of memory.
char *path_relocate(const char *recorded, const char *old_dir, const char *new_dir);

#endif
