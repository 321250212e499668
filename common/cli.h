// One declarative option table per executable drives getopt_long, range
// checks, --help (with every default) and config.txt, so the four are never
// out of step.
#ifndef COMMON_CLI_H
#define COMMON_CLI_H

#include <stdio.h>

#include "common/error.h"

typedef enum { CLI_INT, CLI_FLOAT, CLI_STRING, CLI_FLAG } CliType;

// Or'ed into CliOption.type (CLI_STRING only): cli_parse refuses a command
// line that leaves the option unset, and --help marks it "(required)".
#define CLI_REQUIRED 0x100

typedef struct {
    const char *name;  // long option name, without dashes
    int type;          // a CliType, maybe | CLI_REQUIRED
    void *dest;        // int*, float*, const char**, int* (flag: set to 1)
    double lo, hi;     // accepted range for CLI_INT / CLI_FLOAT
    const char *help;  // says what the option is; --help adds "(required)" or
                       // the one "(default: ...)", so the text never does
} CliOption;

// The option's CliType, without the CLI_REQUIRED bit.
static inline CliType cli_type(const CliOption *o) {
    return (CliType)(o->type & ~CLI_REQUIRED);
}

// What cli_parse returns besides 0 and ERR_USAGE (common/error.h).
#define CLI_HELP 1    // --help was given: the caller prints cli_print_help and exits 0
#define CLI_VERSION 2 // --version was given and printed: the caller exits 0

// Parses argv against opts. "--help" returns CLI_HELP, "--version" prints the
// version (common/version.h) and returns CLI_VERSION. A usage error returns
// ERR_USAGE with a one-line message: an unknown or abbreviated option, a
// missing or bad value, a required option left unset (a value set before the
// call, e.g. from config.txt, counts). 0 otherwise. Positional arguments
// are left in argv[*first_positional .. argc) when first_positional is non-NULL;
// without it, any positional argument is an error.
int cli_parse(const char *prog, const CliOption *opts, int n_opts, int argc, char **argv,
              int *first_positional, Error *err);

// "usage: USAGE [options]", the summary, and one line per option: its help,
// then "(required)" or its one default (the value dest holds now) and range.
// usage is the program name with any operands, e.g. "ckpt verify FILE...".
void cli_print_help(FILE *fp, const char *usage, const char *summary, const CliOption *opts,
                    int n_opts);

// Value of "--name VALUE" or "--name=VALUE" in argv, or NULL; for options such
// as --config that must be applied before the others are parsed.
const char *cli_peek(int argc, char **argv, const char *name);

// Writes "name = value" for every option: a run's config.txt. Floats are
// written with fmt_float, so they read back bit for bit.
void cli_write_settings(FILE *fp, const CliOption *opts, int n_opts);

// Refuses (naming the option; ERR_USAGE) a string value config.txt cannot
// record: one holding a line break, which would read back as another setting.
int cli_check_recordable(const CliOption *opts, int n_opts, Error *err);

// Applies the "name = value" lines of a config.txt written by
// cli_write_settings, skipping the options named in skip (a NULL-terminated
// list, e.g. --resume itself). String values point into *storage, which the
// caller frees once the options are no longer used.
int cli_load_settings(const char *path, const CliOption *opts, int n_opts,
                      const char *const *skip, char **storage, Error *err);
// The same on text already in memory: len bytes followed by a NUL (as
// read_file leaves them). text is modified and string values point into
// it; path only names the file in messages (`path:line: ...`). Blank lines are
// skipped; a NUL byte, a line without " = ", an unknown or repeated name, a
// flag other than on/off and a value out of range are refused.
int cli_apply_settings(const char *path, char *text, size_t len, const CliOption *opts, int n_opts,
                       const char *const *skip, Error *err);

// Single-value parsers with range checks; the message names the option.
int cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out, Error *err);
int cli_parse_float(const char *opt, const char *s, double lo, double hi, double *out, Error *err);

#endif
