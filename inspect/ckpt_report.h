// Pieces shared by the `ckpt` subcommands: argument handling, and the header
// and lineage of a checkpoint as text and as JSON.
#ifndef INSPECT_CKPT_REPORT_H
#define INSPECT_CKPT_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/cli.h"
#include "common/error.h"
#include "inspect/lineage.h"
#include "model/checkpoint.h"

// Parses a subcommand's arguments (argv[0] is the subcommand) with options
// and positional arguments in any order; min_files to max_files positional
// arguments go to files (room for max_files), their count to *n_given
// (may be NULL when min_files == max_files). Returns CLI_HELP (the help
// printed) or CLI_VERSION (printed), ERR_USAGE for a usage error (a wrong
// number of files too), -1 on another error, 0.
int ckpt_parse_args(const char *prog, const char *usage, const char *summary,
                    const CliOption *opts, int n_opts, int argc, char **argv, const char **files,
                    int min_files, int max_files, int *n_given, Error *err);

// "(512, 32)" for tensor i of cfg.
void format_shape(char *out, size_t n, const GPTConfig *cfg, int i);
// The shape of tensor i as a JSON array.
cJSON *shape_json(const GPTConfig *cfg, int i);
// Adds a 32-bit fingerprint or checksum as 8 hex digits, as printed everywhere.
void json_add_hex(cJSON *obj, const char *name, uint32_t value);

// Every header field, aligned, one per line.
void print_header(const char *path, const CkptHeader *h);
cJSON *header_json(const char *path, const CkptHeader *h);

// One line per checkpoint of the chain (stage, step, kind, fingerprint,
// path), each prefixed by indent. Why a broken chain stops is left to the
// caller (l->problem).
void print_lineage(const Lineage *l, const char *indent);
cJSON *lineage_json(const Lineage *l);

// Prints and frees a JSON document.
void print_json(cJSON *doc);

#endif
