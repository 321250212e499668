// bpe: train a tokenizer, encode and decode text with it, and show what is in it.
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/cli.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/progress.h"
#include "common/version.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/tokenizer.h"

#define INPUT_MAX_BYTES ((size_t)1 << 31)

// Whole stdin into a malloc'ed buffer.
static int read_stdin(unsigned char **buf, size_t *len, Error *err) {
    size_t cap = 1 << 16, n = 0;
    unsigned char *p = malloc(cap + 1);
    if (!p) return error_set(err, "out of memory reading standard input");
    size_t got;
    while ((got = fread(p + n, 1, cap - n, stdin)) > 0) {
        n += got;
        if (n == cap) {
            if (cap >= INPUT_MAX_BYTES) {
                free(p);
                return error_set(err, "standard input: more than %zu bytes", INPUT_MAX_BYTES);
            }
            unsigned char *q = realloc(p, cap * 2 + 1);
            if (!q) {
                free(p);
                return error_set(err, "out of memory reading standard input");
            }
            p = q;
            cap *= 2;
        }
    }
    if (ferror(stdin)) {
        free(p);
        return error_set(err, "standard input: read failed: %s", strerror(errno));
    }
    p[n] = 0;
    *buf = p;
    *len = n;
    return 0;
}

// Reads each named file (or stdin when there are none, or for "-") and hands
// it to fn.
typedef int (*InputFn)(const char *name, const unsigned char *data, size_t len, void *ctx,
                       Error *err);

static int for_each_input(int n_files, char **files, InputFn fn, void *ctx, Error *err) {
    unsigned char *data = NULL;
    size_t len = 0;
    if (n_files == 0) {
        if (read_stdin(&data, &len, err) != 0) return -1;
        int rc = fn("standard input", data, len, ctx, err);
        free(data);
        return rc;
    }
    for (int i = 0; i < n_files; i++) {
        int from_stdin = strcmp(files[i], "-") == 0;
        if ((from_stdin ? read_stdin(&data, &len, err) : read_file(files[i], INPUT_MAX_BYTES, &data, &len, err)) != 0)
            return -1;
        int rc = fn(from_stdin ? "standard input" : files[i], data, len, ctx, err);
        free(data);
        if (rc != 0) return -1;
    }
    return 0;
}

static int write_out(const void *buf, size_t n, Error *err) {
    if (n && fwrite(buf, 1, n, stdout) != n)
        return error_set(err, "cannot write standard output: %s", strerror(errno));
    return 0;
}

// --- train ----------------------------------------------------------------------

// --input takes one or more files, which getopt cannot express: they are
// taken out of argv here, and the rest goes through cli_parse.
static int take_inputs(int *argc, char **argv, const char ***inputs, int *n_inputs, Error *err) {
    *inputs = calloc((size_t)*argc, sizeof **inputs);
    if (!*inputs) return error_set(err, "out of memory");
    int kept = 1;
    *n_inputs = 0;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            while (i < *argc) argv[kept++] = argv[i++];
            break;
        }
        if (strcmp(a, "--input") == 0 || strncmp(a, "--input=", 8) == 0) {
            int before = *n_inputs;
            if (a[7] == '=') (*inputs)[(*n_inputs)++] = a + 8;
            while (i + 1 < *argc && argv[i + 1][0] != '-') (*inputs)[(*n_inputs)++] = argv[++i];
            if (*n_inputs == before || (*inputs)[before][0] == '\0')
                return usage_error(err, "--input needs at least one file (see bpe train --help)");
            continue;
        }
        argv[kept++] = argv[i];
    }
    *argc = kept;
    return 0;
}

// A corpus in JSON Lines trained on as plain text learns merges of JSON
// syntax ("{\"text\": \"") rather than of the text. Without --jsonl-field
// (or --plain, to train on the bytes as they are) a file named *.jsonl, or
// whose first line is a JSON object, is refused.
static int check_not_jsonl(const char *path, Error *err) {
    size_t n = strlen(path);
    int named = n >= 6 && strcmp(path + n - 6, ".jsonl") == 0;
    char line[1 << 16] = "";
    FILE *fp = named ? NULL : fopen(path, "rb"); // unreadable: bpe_trainer_add_file says why
    if (fp) {
        if (!fgets(line, sizeof line, fp)) line[0] = '\0';
        fclose(fp);
    }
    cJSON *first = line[0] ? cJSON_Parse(line) : NULL;
    int object = cJSON_IsObject(first);
    cJSON_Delete(first);
    if (!named && !object) return 0;
    return usage_error(err, "%s: %s, so training on it as plain text would learn JSON syntax: give "
                       "--jsonl-field NAME to train on a string field, or --plain to train on it as it is",
                       path, named ? "is named *.jsonl" : "starts with a JSON object (JSON Lines)");
}

static int cmd_train(int argc, char **argv, Error *err) {
    BpeTrainConfig cfg = {.vocab_size = 4096, .min_frequency = 2, .lossy = 0};
    const char *out = "tokenizer.bin", *jsonl_field = NULL, *input_help = NULL;
    int plain = 0;
    CliOption opts[] = {
        {.name = "input", .type = CLI_STRING | CLI_REQUIRED, .dest = &input_help,
         .help = "corpus files, one or more (--input A B C)"},
        {.name = "vocab", .type = CLI_INT, .dest = &cfg.vocab_size, .lo = TOK_FIRST_MERGE,
         .hi = TOK_MAX_VOCAB,
         .help = "vocabulary size: 256 bytes + 4 specials + merges"},
        {.name = "out", .type = CLI_STRING, .dest = &out, .help = "tokenizer file to write"},
        {.name = "jsonl-field", .type = CLI_STRING, .dest = &jsonl_field,
         .help = "read inputs as JSON Lines and train on this string field (none: plain text)"},
        {.name = "plain", .type = CLI_FLAG, .dest = &plain,
         .help = "train on inputs that look like JSON Lines as plain text all the same"},
        {.name = "min-frequency", .type = CLI_INT, .dest = &cfg.min_frequency, .lo = 1, .hi = 1e9,
         .help = "never merge a pair seen fewer times than this"},
        {.name = "lossy", .type = CLI_FLAG, .dest = &cfg.lossy,
         .help = "replace invalid UTF-8 with U+FFFD instead of failing"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char **inputs = NULL;
    int n_inputs = 0;
    int rc = take_inputs(&argc, argv, &inputs, &n_inputs, err);
    if (rc == 0 && n_inputs > 0) input_help = inputs[0]; // --input was given: a required option, so say so
    if (rc == 0) rc = cli_parse("bpe train", opts, n_opts, argc, argv, NULL, err);
    if (rc == CLI_HELP)
        cli_print_help(stdout, "bpe train",
                       "Learns byte-level BPE merges from a corpus and writes a tokenizer file.",
                       opts, n_opts);
    if (rc > 0) {
        free(inputs);
        return 0;
    }
    if (rc == 0 && jsonl_field && plain) rc = usage_error(err, "--plain and --jsonl-field exclude each other");
    for (int i = 0; rc == 0 && !jsonl_field && !plain && i < n_inputs; i++) rc = check_not_jsonl(inputs[i], err);
    BpeTrainer *trainer = NULL;
    if (rc == 0) rc = bpe_trainer_new(&trainer, &cfg, err);
    double t0 = now_seconds();
    for (int i = 0; rc == 0 && i < n_inputs; i++)
        rc = bpe_trainer_add_file(trainer, inputs[i], jsonl_field, err);
    Tokenizer *tok = NULL;
    if (rc == 0) rc = bpe_trainer_train(trainer, &tok, err);
    if (rc == 0) rc = tokenizer_save(tok, out, err);
    if (rc == 0) {
        printf("trained %d merges (vocabulary %d of %d asked) from %zu pre-tokens, %zu distinct, "
               "in %.2f s\nwrote %s, fingerprint %08x\n",
               tokenizer_num_merges(tok), tokenizer_vocab_size(tok), cfg.vocab_size,
               bpe_trainer_pretokens(trainer), bpe_trainer_distinct(trainer),
               now_seconds() - t0, out, tokenizer_fingerprint(tok));
    }
    tokenizer_free(tok);
    bpe_trainer_free(trainer);
    free(inputs);
    return rc;
}

// --- encode ---------------------------------------------------------------------

typedef struct {
    const Tokenizer *tok;
    int lossy;
    double seconds;
    size_t bytes, tokens;
} EncodeJob;

// Writes ids as decimal numbers, 20 to a line. Formatted by hand: printf
// would take most of the time of `bpe encode`.
static int write_ids(const int *ids, size_t n, Error *err) {
    char buf[1 << 16];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o > sizeof buf - 16) {
            if (write_out(buf, o, err) != 0) return -1;
            o = 0;
        }
        char digits[12];
        int k = 0;
        unsigned v = (unsigned)ids[i]; // ids are never negative
        do digits[k++] = (char)('0' + v % 10); while ((v /= 10) != 0);
        while (k > 0) buf[o++] = digits[--k];
        buf[o++] = (i + 1) % 20 == 0 || i + 1 == n ? '\n' : ' ';
    }
    return write_out(buf, o, err);
}

static int encode_one(const char *name, const unsigned char *data, size_t len, void *ctx,
                      Error *err) {
    EncodeJob *job = ctx;
    int *ids = NULL;
    size_t n = 0;
    double t0 = now_seconds();
    Error inner;
    if (tokenizer_encode(job->tok, (const char *)data, len, job->lossy, &ids, &n, &inner) != 0) {
        const char *hint = strstr(inner.msg, "UTF-8") ? " (--lossy replaces it with U+FFFD)" : "";
        return error_set(err, "%s: %s%s", name, inner.msg, hint);
    }
    job->seconds += now_seconds() - t0;
    job->bytes += len;
    job->tokens += n;
    int rc = write_ids(ids, n, err);
    free(ids);
    return rc;
}

static int cmd_encode(int argc, char **argv, Error *err) {
    const char *path = "tokenizer.bin";
    int lossy = 0, stats = 0;
    CliOption opts[] = {
        {.name = "tokenizer", .type = CLI_STRING, .dest = &path, .help = "tokenizer file"},
        {.name = "lossy", .type = CLI_FLAG, .dest = &lossy,
         .help = "replace invalid UTF-8 with U+FFFD instead of failing"},
        {.name = "stats", .type = CLI_FLAG, .dest = &stats,
         .help = "print bytes, tokens and MB/s to standard error"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]), first = 0;
    int rc = cli_parse("bpe encode", opts, n_opts, argc, argv, &first, err);
    if (rc == CLI_HELP)
        cli_print_help(stdout, "bpe encode [FILE...]",
                       "Encodes text to token ids, written as decimal numbers separated by white "
                       "space.\nInput: the FILEs named after the options (- is standard input), or "
                       "standard input.",
                       opts, n_opts);
    if (rc != 0) return rc > 0 ? 0 : rc;
    Tokenizer *tok = NULL;
    if (tokenizer_load(&tok, path, err) != 0) return -1;
    EncodeJob job = {tok, lossy, 0, 0, 0};
    rc = for_each_input(argc - first, argv + first, encode_one, &job, err);
    if (rc == 0 && fflush(stdout) != 0)
        rc = error_set(err, "cannot write standard output: %s", strerror(errno));
    if (rc == 0 && stats)
        fprintf(stderr, "%zu bytes -> %zu tokens (%.3f bytes/token) in %.3f s: %.1f MB/s\n",
                job.bytes, job.tokens, job.tokens ? (double)job.bytes / job.tokens : 0.0,
                job.seconds, job.seconds > 0 ? job.bytes / job.seconds / 1e6 : 0.0);
    tokenizer_free(tok);
    return rc;
}

// --- decode ---------------------------------------------------------------------

static int decode_one(const char *name, const unsigned char *data, size_t len, void *ctx,
                      Error *err) {
    const Tokenizer *tok = ctx;
    size_t cap = len / 2 + 1, n = 0;
    int *ids = malloc(cap * sizeof *ids); // every id takes at least 2 bytes with its separator
    if (!ids) return error_set(err, "%s: out of memory", name);
    size_t i = 0;
    while (i < len) {
        if (isspace(data[i])) {
            i++;
            continue;
        }
        size_t start = i;
        long v = 0;
        while (i < len && isdigit(data[i]) && v <= TOK_MAX_VOCAB) v = v * 10 + (data[i++] - '0');
        if (i == start || (i < len && !isspace(data[i])) || v >= tokenizer_vocab_size(tok)) {
            while (i < len && !isspace(data[i]) && i - start < 20) i++;
            free(ids);
            return error_set(err, "%s: '%.*s' at byte offset %zu is not a token id (0..%d)", name,
                             (int)(i - start), (const char *)data + start, start,
                             tokenizer_vocab_size(tok) - 1);
        }
        ids[n++] = (int)v;
    }
    char *text = NULL;
    size_t text_len = 0;
    int rc = tokenizer_decode(tok, ids, n, &text, &text_len, err);
    if (rc == 0) rc = write_out(text, text_len, err);
    free(text);
    free(ids);
    return rc;
}

static int cmd_decode(int argc, char **argv, Error *err) {
    const char *path = "tokenizer.bin";
    CliOption opts[] = {
        {.name = "tokenizer", .type = CLI_STRING, .dest = &path, .help = "tokenizer file"},
    };
    int n_opts = 1, first = 0;
    int rc = cli_parse("bpe decode", opts, n_opts, argc, argv, &first, err);
    if (rc == CLI_HELP)
        cli_print_help(stdout, "bpe decode [FILE...]",
                       "Decodes token ids (decimal, separated by white space) back to text; "
                       "special tokens decode to nothing.\nInput: the FILEs named after the "
                       "options (- is standard input), or standard input.", opts, n_opts);
    if (rc != 0) return rc > 0 ? 0 : rc;
    Tokenizer *tok = NULL;
    if (tokenizer_load(&tok, path, err) != 0) return -1;
    rc = for_each_input(argc - first, argv + first, decode_one, tok, err);
    if (rc == 0 && fflush(stdout) != 0)
        rc = error_set(err, "cannot write standard output: %s", strerror(errno));
    tokenizer_free(tok);
    return rc;
}

// --- info -----------------------------------------------------------------------

// A token's bytes as a quoted C-style string.
static void print_token(const Tokenizer *tok, int id) {
    size_t len = 0;
    const uint8_t *s = tokenizer_token_bytes(tok, id, &len);
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c); // bytes above 0x7f are printed raw, so UTF-8 shows as text
    }
    putchar('"');
}

static int cmd_info(int argc, char **argv, Error *err) {
    const char *path = "tokenizer.bin";
    int show = 20;
    CliOption opts[] = {
        {.name = "tokenizer", .type = CLI_STRING, .dest = &path, .help = "tokenizer file"},
        {.name = "merges", .type = CLI_INT, .dest = &show, .lo = 0, .hi = TOK_MAX_VOCAB,
         .help = "how many merges to show (first and last)"},
    };
    int n_opts = 2;
    int rc = cli_parse("bpe info", opts, n_opts, argc, argv, NULL, err);
    if (rc == CLI_HELP)
        cli_print_help(stdout, "bpe info", "Shows a tokenizer's vocabulary size, fingerprint, "
                       "special tokens and a sample of its merges.", opts, n_opts);
    if (rc != 0) return rc > 0 ? 0 : rc;
    Tokenizer *tok = NULL;
    if (tokenizer_load(&tok, path, err) != 0) return -1;
    int n_merges = tokenizer_num_merges(tok);
    printf("file:        %s\nvocabulary:  %d (256 bytes, %d special, %d merges)\n"
           "fingerprint: %08x\nspecial tokens:\n", path, tokenizer_vocab_size(tok),
           TOK_NUM_SPECIAL, n_merges, tokenizer_fingerprint(tok));
    for (int s = 0; s < TOK_NUM_SPECIAL; s++)
        printf("  %4d  %s\n", tokenizer_special(tok, (TokSpecial)s),
               tokenizer_special_name(tok, (TokSpecial)s));
    printf("merges (id = left + right):\n");
    for (int i = 0; i < n_merges; i++) {
        if (i == show / 2 + show % 2 && n_merges - i > show / 2) {
            printf("  ...\n");
            i = n_merges - show / 2;
        }
        if (i >= n_merges) break;
        uint32_t left, right;
        tokenizer_merge(tok, i, &left, &right);
        printf("  %6d = %5u + %5u  ", TOK_FIRST_MERGE + i, left, right);
        print_token(tok, TOK_FIRST_MERGE + i);
        putchar('\n');
    }
    tokenizer_free(tok);
    return 0;
}

static void print_usage(FILE *fp) {
    fprintf(fp, "usage: bpe COMMAND [options]\n"
                "Byte-level BPE tokenizer for minirlhf.\n\ncommands:\n"
                "  train   learn merges from a corpus and write a tokenizer file\n"
                "  encode  text -> token ids\n"
                "  decode  token ids -> text\n"
                "  info    vocabulary size, fingerprint, special tokens, sample merges\n"
                "Run 'bpe COMMAND --help' for a command's options and their defaults;\n"
                "'bpe --version' for the version.\n");
}

int main(int argc, char **argv) {
    Error err = {{0}};
    if (argc < 2) {
        usage_error(&err, "no command (expected train, encode, decode or info; see bpe --help)");
        error_exit_rc("bpe", ERR_USAGE, &err);
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_usage(stdout);
        return stdout_finish("bpe", 0);
    }
    if (strcmp(argv[1], "--version") == 0) {
        version_print(stdout, "bpe");
        return stdout_finish("bpe", 0);
    }
    const char *cmd = argv[1];
    int rc;
    if (strcmp(cmd, "train") == 0) rc = cmd_train(argc - 1, argv + 1, &err);
    else if (strcmp(cmd, "encode") == 0) rc = cmd_encode(argc - 1, argv + 1, &err);
    else if (strcmp(cmd, "decode") == 0) rc = cmd_decode(argc - 1, argv + 1, &err);
    else if (strcmp(cmd, "info") == 0) rc = cmd_info(argc - 1, argv + 1, &err);
    else rc = usage_error(&err, "unknown command '%s' (see bpe --help)", cmd);
    if (rc != 0) error_exit_rc("bpe", rc, &err);
    return stdout_finish("bpe", 0);
}
