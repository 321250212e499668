// JSON Lines reading with cJSON, strictly: one object a line and nothing after
// it but whitespace, no key twice in an object, no \u0000 in a string; blank
// lines skipped, and every error names the file and the line.
#ifndef COMMON_JSONL_H
#define COMMON_JSONL_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "common/error.h"

typedef struct {
    char path[4096];
    unsigned char *data;
    size_t len, pos;
    long line; // 1-based number of the line last returned
} JsonlReader;

// Largest JSONL file accepted; a guard against reading a disk image by mistake.
#define JSONL_MAX_BYTES ((size_t)1 << 30)

int jsonl_open(JsonlReader *r, const char *path, Error *err);
// Reads the whole stream (standard input, a pipe) named `name` in messages.
int jsonl_open_stream(JsonlReader *r, FILE *fp, const char *name, Error *err);
// Returns 1 and a parsed object in *obj (caller deletes it), 0 at end of file,
// -1 on a malformed line (a message with file and line in err).
int jsonl_next(JsonlReader *r, cJSON **obj, Error *err);
void jsonl_close(JsonlReader *r);

// The string field `name` of obj; NULL (with a message naming file and line)
// if it is missing or not a string.
const char *jsonl_string(const JsonlReader *r, const cJSON *obj, const char *name, Error *err);
// The number field `name` of obj into *out; 0 if present, 1 if absent (when
// optional), -1 with a message if it has the wrong type or is required and absent.
int jsonl_number(const JsonlReader *r, const cJSON *obj, const char *name, int optional,
                 double *out, Error *err);
// The boolean field `name` of obj into *out (1 or 0), the same way: 0 if
// present, 1 if absent or null (when optional), -1 with a message naming file
// and line if it is not true or false, or is required and absent.
int jsonl_bool(const JsonlReader *r, const cJSON *obj, const char *name, int optional, int *out,
               Error *err);

// A JSON number that reads back bit for bit (cJSON's own printing keeps 15
// digits when they are "close enough", so about one double in ten comes back
// changed): integers up to 2^53 as integers, other values as fmt_double's
// shortest exact text, and null for NaN and infinities (JSON has none).
// Every JSON writer adds numbers with these.
cJSON *jsonl_number_item(double v);
// Adds jsonl_number_item(v) to obj under name; returns it, or NULL when out of memory.
cJSON *jsonl_add_number(cJSON *obj, const char *name, double v);

// Adds text to obj under name as a string of valid UTF-8: each byte that does
// not start a well-formed UTF-8 sequence (a sampled response can end inside a
// character) becomes U+FFFD. Returns the item, or NULL when out of memory.
cJSON *jsonl_add_text(cJSON *obj, const char *name, const char *text);

// Writes obj as one line of JSON to fp; returns -1 on failure.
int jsonl_write(FILE *fp, const cJSON *obj);
// cJSON prints a number it parsed with 15 significant digits whenever those
// read back within an epsilon of it, which can change its last bits. This
// replaces every number in obj (nested ones too) by its exact shortest form,
// so that a record read and written again keeps its numbers. 0, or -1 when
// out of memory.
int jsonl_exact_numbers(cJSON *obj);

#endif
