#include "common/cli.h"

#include "common/fileio.h"
#include "common/numfmt.h"
#include "common/version.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out, Error *err) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0')
        return error_set(err, "--%s: '%s' is not a whole number", opt, s);
    if (v < lo || v > hi)
        return error_set(err, "--%s: %ld is out of range [%ld, %ld]", opt, v, lo, hi);
    *out = v;
    return 0;
}

int cli_parse_float(const char *opt, const char *s, double lo, double hi, double *out, Error *err) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v))
        return error_set(err, "--%s: '%s' is not a number", opt, s);
    if (v < lo || v > hi)
        return error_set(err, "--%s: %g is out of range [%g, %g]", opt, v, lo, hi);
    *out = v;
    return 0;
}


static int set_value(const CliOption *o, const char *arg, Error *err) {
    long l;
    double d;
    switch (cli_type(o)) {
    case CLI_INT:
        if (cli_parse_int(o->name, arg, (long)o->lo, (long)o->hi, &l, err)) return -1;
        *(int *)o->dest = (int)l;
        return 0;
    case CLI_FLOAT:
        if (cli_parse_float(o->name, arg, o->lo, o->hi, &d, err)) return -1;
        // strtof, not (float)strtod: rounding twice could land one float away
        // from what fmt_float wrote, and config.txt must read back bit for bit.
        *(float *)o->dest = strtof(arg, NULL);
        return 0;
    case CLI_STRING:
        if (arg[0] == '\0') return error_set(err, "--%s: empty value", o->name);
        *(const char **)o->dest = arg;
        return 0;
    case CLI_FLAG:
        *(int *)o->dest = 1;
        return 0;
    }
    return error_set(err, "--%s: unknown option type", o->name);
}

// getopt_long takes any unambiguous prefix of a long option: `--conf smoke`
// would run as --config. An option written in a script or a note must say
// what it means, so a prefix is refused. `given` is the command-line word
// getopt_long matched to `name` ("--name", "--name=value" or "-h").
static int abbreviated(const char *given, const char *name) {
    if (strncmp(given, "--", 2) != 0) return 0;
    size_t len = strcspn(given + 2, "=");
    return len != strlen(name) || strncmp(given + 2, name, len) != 0;
}

// Every required option left unset, in one message.
static int check_required(const char *prog, const CliOption *opts, int n_opts, Error *err) {
    char names[512] = "";
    size_t at = 0;
    int missing = 0;
    for (int i = 0; i < n_opts; i++) {
        if (!(opts[i].type & CLI_REQUIRED) || *(const char **)opts[i].dest) continue;
        missing++;
        if (at < sizeof names)
            at += (size_t)snprintf(names + at, sizeof names - at, "%s--%s", at ? ", " : "", opts[i].name);
    }
    if (!missing) return 0;
    return usage_error(err, "%s %s required (see %s --help)", names, missing == 1 ? "is" : "are", prog);
}

int cli_parse(const char *prog, const CliOption *opts, int n_opts, int argc, char **argv,
              int *first_positional, Error *err) {
    struct option *longopts = calloc((size_t)n_opts + 3, sizeof *longopts);
    if (!longopts) return error_set(err, "out of memory");
    for (int i = 0; i < n_opts; i++) {
        longopts[i].name = opts[i].name;
        longopts[i].has_arg = cli_type(&opts[i]) == CLI_FLAG ? no_argument : required_argument;
        longopts[i].val = 1000 + i;
    }
    longopts[n_opts].name = "help";
    longopts[n_opts].val = 'h';
    longopts[n_opts + 1].name = "version";
    longopts[n_opts + 1].val = 'V';
    optind = 1;
    opterr = 0;
    int rc = 0, c, idx, at = optind;
    while (rc == 0 && (c = getopt_long(argc, argv, "+h", longopts, &idx)) != -1) {
        const char *given = argv[at]; // the word getopt_long just read (nothing is permuted: "+")
        at = optind;
        if (c == 'h' || c == 'V' || (c >= 1000 && c < 1000 + n_opts)) {
            const char *name = c == 'h' ? "help" : c == 'V' ? "version" : opts[c - 1000].name;
            if (abbreviated(given, name)) {
                rc = usage_error(err, "unknown option '%.*s' (did you mean --%s?)", (int)strcspn(given, "="),
                                 given, name);
                break;
            }
        }
        if (c == 'h') {
            rc = CLI_HELP;
        } else if (c == 'V') {
            version_print(stdout, prog);
            rc = CLI_VERSION;
        } else if (c >= 1000 && c < 1000 + n_opts) {
            if (set_value(&opts[c - 1000], optarg, err)) rc = ERR_USAGE;
        } else if (c == '?' && optopt >= 1000) {
            rc = usage_error(err, "--%s needs a value (see %s --help)", opts[optopt - 1000].name, prog);
        } else {
            rc = usage_error(err, "unknown option '%s' (see %s --help)", argv[optind - 1], prog);
        }
    }
    if (rc == 0) {
        if (first_positional) {
            *first_positional = optind;
        } else if (optind < argc) {
            rc = usage_error(err, "unexpected argument '%s' (see %s --help)", argv[optind], prog);
        }
    }
    if (rc == 0) rc = check_required(prog, opts, n_opts, err);
    free(longopts);
    return rc;
}

static void format_value(char *buf, size_t n, const CliOption *o) {
    switch (cli_type(o)) {
    case CLI_INT: snprintf(buf, n, "%d", *(int *)o->dest); break;
    case CLI_FLOAT: {
        char num[NUMFMT_MAX];
        snprintf(buf, n, "%s", fmt_float(num, *(float *)o->dest));
        break;
    }
    case CLI_STRING: {
        const char *s = *(const char **)o->dest;
        snprintf(buf, n, "%s", s ? s : "");
        break;
    }
    case CLI_FLAG: snprintf(buf, n, "%s", *(int *)o->dest ? "on" : "off"); break;
    }
}

void cli_print_help(FILE *fp, const char *usage, const char *summary, const CliOption *opts,
                    int n_opts) {
    fprintf(fp, "usage: %s [options]\n%s\n\noptions:\n", usage, summary);
    for (int i = 0; i < n_opts; i++) {
        const CliOption *o = &opts[i];
        CliType t = cli_type(o);
        char value[512], lhs[128];
        format_value(value, sizeof value, o);
        snprintf(lhs, sizeof lhs, "--%s%s", o->name,
                 t == CLI_INT ? " N" : t == CLI_FLOAT ? " X" : t == CLI_STRING ? " S" : "");
        fprintf(fp, "  %-22s %s", lhs, o->help);
        if (o->type & CLI_REQUIRED) fprintf(fp, " (required)\n");
        else if (t == CLI_FLAG || t == CLI_STRING) fprintf(fp, " (default: %s)\n", value[0] ? value : "none");
        else if (t == CLI_INT) fprintf(fp, " (default: %s; range %.0f..%.0f)\n", value, o->lo, o->hi);
        else fprintf(fp, " (default: %s; range %g..%g)\n", value, o->lo, o->hi);
    }
    fprintf(fp, "  %-22s %s\n", "--help", "show this help and exit");
    fprintf(fp, "  %-22s %s\n", "--version", "show the version and commit and exit");
}

const char *cli_peek(int argc, char **argv, const char *name) {
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) break;
        if (a[0] != '-' || a[1] != '-' || strncmp(a + 2, name, n) != 0) continue;
        if (a[2 + n] == '=') return a + 3 + n;
        if (a[2 + n] == '\0' && i + 1 < argc) return argv[i + 1];
    }
    return NULL;
}

void cli_write_settings(FILE *fp, const CliOption *opts, int n_opts) {
    for (int i = 0; i < n_opts; i++) {
        const CliOption *o = &opts[i];
        if (cli_type(o) == CLI_STRING) { // whole, however long: a cut path would name another file
            const char *s = *(const char **)o->dest;
            fprintf(fp, "%s = %s\n", o->name, s ? s : "");
            continue;
        }
        char value[64];
        format_value(value, sizeof value, o);
        fprintf(fp, "%s = %s\n", o->name, value);
    }
}

int cli_check_recordable(const CliOption *opts, int n_opts, Error *err) {
    for (int i = 0; i < n_opts; i++) {
        if (cli_type(&opts[i]) != CLI_STRING) continue;
        const char *s = *(const char **)opts[i].dest;
        if (s && strpbrk(s, "\n\r"))
            return usage_error(err, "--%s: the value holds a line break, which config.txt cannot record (a "
                               "resumed run would read another value)", opts[i].name);
    }
    return 0;
}

static int in_list(const char *name, const char *const *list) {
    for (; list && *list; list++)
        if (!strcmp(name, *list)) return 1;
    return 0;
}

// Applies one "name = value" line of config.txt; seen[i] marks the options
// already set by an earlier line.
static int apply_setting(const char *path, long line, char *ln, const CliOption *opts, int n_opts,
                         const char *const *skip, char *seen, Error *err) {
    char *eq = strstr(ln, " = ");
    if (!eq) return error_set(err, "%s:%ld: expected 'name = value'", path, line);
    *eq = '\0';
    const char *value = eq + 3;
    int i = 0;
    while (i < n_opts && strcmp(opts[i].name, ln) != 0) i++;
    if (i == n_opts) return error_set(err, "%s:%ld: unknown setting '%.64s'", path, line, ln);
    const CliOption *o = &opts[i];
    if (seen[i]) return error_set(err, "%s:%ld: '%s' is set a second time", path, line, o->name);
    seen[i] = 1;
    if (in_list(o->name, skip) || (cli_type(o) == CLI_STRING && value[0] == '\0')) return 0;
    if (cli_type(o) == CLI_FLAG) {
        if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
            return error_set(err, "%s:%ld: %s = '%.64s': expected on or off", path, line, o->name, value);
        *(int *)o->dest = value[1] == 'n';
        return 0;
    }
    Error e2;
    if (set_value(o, value, &e2)) return error_set(err, "%s:%ld: %s", path, line, e2.msg);
    return 0;
}

int cli_apply_settings(const char *path, char *text, size_t len, const CliOption *opts, int n_opts,
                       const char *const *skip, Error *err) {
    char *seen = calloc((size_t)n_opts + 1, 1);
    if (!seen) return error_set(err, "out of memory");
    int rc = 0;
    long line = 0;
    for (size_t pos = 0; rc == 0 && pos < len; line++) {
        char *ln = text + pos, *nl = memchr(ln, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - ln) : len - pos;
        pos += n + 1;
        if (memchr(ln, '\0', n)) rc = error_set(err, "%s:%ld: holds a NUL byte", path, line + 1);
        else if (nl) *nl = '\0';
        if (rc == 0 && n > 0) rc = apply_setting(path, line + 1, ln, opts, n_opts, skip, seen, err);
    }
    free(seen);
    return rc;
}

int cli_load_settings(const char *path, const CliOption *opts, int n_opts,
                      const char *const *skip, char **storage, Error *err) {
    unsigned char *buf;
    size_t len;
    *storage = NULL;
    if (read_file(path, 1 << 20, &buf, &len, err)) return -1;
    if (cli_apply_settings(path, (char *)buf, len, opts, n_opts, skip, err)) {
        free(buf);
        return -1;
    }
    *storage = (char *)buf;
    return 0;
}
