// Issue 17, "help that agrees with itself" and Unix conventions: every
// executable's --help lists each option once with "(required)" or one
// "(default: ...)", the required ones marked; --version prints the version
// and commit; a usage error exits 2 with one line on stderr and creates
// nothing; "-" is standard input for bpe encode/decode, score --input and
// sample --prompts (the same output as the file); ckpt verify takes several
// files; config.txt records the thread count used; bpe train refuses a JSON
// Lines corpus without --jsonl-field; sample --logprobs spells the end token
// as the tokenizer does.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/version_info.h"
#include "tests/testutil.h"

enum { OUT_N = 1 << 17, ERR_N = 1 << 13 };

typedef struct {
    char out[OUT_N], err[ERR_N];
} Output;

typedef struct {
    char dir[256], bin[512], data[512];
    Output o;
} Fixture;

static int setup_bare(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    make_temp_dir(f->dir, sizeof f->dir);
    bin_path(f->bin, sizeof f->bin, "");
    src_path(f->data, sizeof f->data, "data");
    *state = f;
    return f->dir[0] ? 0 : -1;
}

static int setup_chain(void **state) {
    if (setup_bare(state)) return -1;
    Fixture *f = *state;
    return make_smoke_chain(f->dir, "rm") == 0 ? 0 : -1;
}

static int teardown(void **state) {
    Fixture *f = *state;
    char out[256];
    run_cmd(out, sizeof out, "rm -rf %s", f->dir);
    free(f);
    return 0;
}

// Runs `cd DIR && BIN...` (fmt is the command after the bin folder) with a
// timeout; stdout and stderr go to f->o.
static int run_in(Fixture *f, int timeout_s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run_in(Fixture *f, int timeout_s, const char *fmt, ...) {
    char body[8192], cmd[9000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd %s && %s", f->dir, body);
    return run_split(cmd, timeout_s, f->o.out, sizeof f->o.out, f->o.err, sizeof f->o.err);
}

// Every program and subcommand, with the options its --help must mark
// "(required)" (space-separated, each with a space after it), and the name
// its messages and --version use.
typedef struct {
    const char *cmd, *name, *required;
} Program;

static const Program PROGRAMS[] = {
    {"pretrain", "pretrain", "tokenizer out "},
    {"sft", "sft", "init tokenizer out "},
    {"prefs", "prefs", "policy tokenizer out "},
    {"train_rm", "train_rm", "init tokenizer pairs val out "},
    {"ppo", "ppo", "policy rm tokenizer out "},
    {"dpo", "dpo", "init tokenizer pairs val out "},
    {"evaluate", "evaluate", "policy ref rm tokenizer "},
    {"sample", "sample", "model tokenizer "},
    {"score", "score", ""}, // --rm or --gold: checked apart (test_usage_errors_exit_2)
    {"bpe train", "bpe train", "input "},
    {"bpe encode", "bpe encode", ""},
    {"bpe decode", "bpe decode", ""},
    {"bpe info", "bpe info", ""},
    {"ckpt info", "ckpt info", ""},
    {"ckpt diff", "ckpt diff", ""},
    {"ckpt verify", "ckpt verify", ""},
    {"ckpt lineage", "ckpt lineage", ""},
    {"derive_keywords", "derive_keywords", ""},
    {"prepare_data", "prepare_data", ""},
    {"bench_model", "bench_model", ""},
    {"bench_model_sgemm", "bench_model_sgemm", ""},
    {"bench_bpe", "bench_bpe", "train heldout "},
    {"gemm_peak", "gemm_peak", ""},
    {"peak_rss", "peak_rss", ""},
};
enum { N_PROGRAMS = sizeof PROGRAMS / sizeof PROGRAMS[0] };

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what)) n++;
    return n;
}

// The option a help line describes ("  --name ..."), copied into name; 0 if
// the line is not an option line.
static int option_of_line(const char *line, char *name, size_t n) {
    if (strncmp(line, "  --", 4) != 0) return 0;
    size_t len = strcspn(line + 4, " \n");
    snprintf(name, n, "%.*s", (int)len, line + 4);
    return 1;
}

// One --help page: the usage line names the program; each option once; an
// option line has "(required)" or exactly one "(default: ...)", never both;
// the options marked required are exactly p->required.
static void check_help_page(const Program *p, const char *help) {
    char usage[128];
    snprintf(usage, sizeof usage, "usage: %s ", p->cmd);
    if (strncmp(help, usage, strlen(usage)) != 0) fail_msg("%s --help starts '%.60s', not '%s'", p->cmd, help, usage);
    char seen[4096] = " ", marked[1024] = "";
    for (const char *line = help; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        char name[64], key[80];
        if (!option_of_line(line, name, sizeof name)) continue;
        size_t len = strcspn(line, "\n");
        char text[1024];
        snprintf(text, sizeof text, "%.*s", (int)len, line);
        snprintf(key, sizeof key, " %s ", name);
        if (strstr(seen, key)) fail_msg("%s --help lists --%s twice", p->cmd, name);
        strncat(seen, key + 1, sizeof seen - strlen(seen) - 1);
        int defaults = count(text, "(default:"), required = count(text, "(required)");
        if (defaults > 1 || required > 1 || defaults + required > 1)
            fail_msg("%s --help: '%s' has %d defaults and %d required marks", p->cmd, text, defaults, required);
        int plain = !strcmp(name, "help") || !strcmp(name, "version");
        if (!plain && defaults + required != 1 && strcmp(p->cmd, "peak_rss") != 0)
            fail_msg("%s --help: '%s' says neither its default nor that it is required", p->cmd, text);
        if (required) {
            strncat(marked, name, sizeof marked - strlen(marked) - 2);
            strcat(marked, " ");
        }
    }
    if (strcmp(marked, p->required) != 0)
        fail_msg("%s --help marks '%s' required; expected '%s'", p->cmd, marked, p->required);
    if (!strstr(seen, " help ") || !strstr(seen, " version "))
        fail_msg("%s --help lacks --help or --version: options%s", p->cmd, seen);
}

static void test_help_is_consistent_everywhere(void **state) {
    Fixture *f = *state;
    for (int i = 0; i < N_PROGRAMS; i++) {
        const Program *p = &PROGRAMS[i];
        int rc = run_in(f, 30, "%s%s --help", f->bin, p->cmd);
        if (rc != 0 || f->o.err[0]) fail_msg("%s --help: exit %d, stderr '%s'", p->cmd, rc, f->o.err);
        check_help_page(p, f->o.out);
    }
    // The two commands with subcommands list them, and exit 0.
    assert_int_equal(run_in(f, 10, "%sbpe --help", f->bin), 0);
    assert_non_null(strstr(f->o.out, "encode"));
    assert_int_equal(run_in(f, 10, "%sckpt --help", f->bin), 0);
    assert_non_null(strstr(f->o.out, "verify FILE..."));
}

// "minirlhf NAME VERSION (git COMMIT)": the version CMake has, and the commit
// this build recorded: 12 hex digits (then "-dirty" if the tree had changes),
// or "unknown" without git.
static void assert_version_line(const char *name, const char *out) {
    char want[256];
    snprintf(want, sizeof want, "minirlhf %s %s (git %s)\n", name, MINIRLHF_VERSION, MINIRLHF_GIT_COMMIT);
    if (strcmp(out, want) != 0) fail_msg("--version of %s printed '%s', expected '%s'", name, out, want);
    const char *commit = MINIRLHF_GIT_COMMIT;
    if (strcmp(commit, "unknown") != 0) {
        for (int k = 0; k < 12; k++) assert_true(isxdigit((unsigned char)commit[k]));
        assert_true(commit[12] == '\0' || !strcmp(commit + 12, "-dirty"));
    }
}

static void test_version_everywhere(void **state) {
    Fixture *f = *state;
    assert_string_equal(MINIRLHF_VERSION, "0.1.0"); // project(minirlhf VERSION ...) in CMakeLists.txt
    for (int i = 0; i < N_PROGRAMS; i++) {
        int rc = run_in(f, 30, "%s%s --version", f->bin, PROGRAMS[i].cmd);
        if (rc != 0 || f->o.err[0]) fail_msg("%s --version: exit %d, stderr '%s'", PROGRAMS[i].cmd, rc, f->o.err);
        assert_version_line(PROGRAMS[i].name, f->o.out);
    }
    const char *tops[] = {"bpe", "ckpt"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(run_in(f, 10, "%s%s --version", f->bin, tops[i]), 0);
        assert_version_line(tops[i], f->o.out);
    }
}

// A usage error: exit 2, nothing on stdout, one line on stderr starting with
// "PREFIX: " and holding want, and the folder unchanged.
static void assert_usage_error(Fixture *f, const char *prefix, const char *want, const char *args) {
    char *before = dir_snapshot(f->dir);
    int rc = run_in(f, 30, "%s%s", f->bin, args);
    char *after = dir_snapshot(f->dir);
    char head[64];
    snprintf(head, sizeof head, "%s: ", prefix);
    if (rc != 2 || !is_one_line(f->o.err) || strncmp(f->o.err, head, strlen(head)) || !strstr(f->o.err, want) ||
        f->o.out[0])
        fail_msg("%s: exit %d (expected 2), stdout '%.200s', stderr '%s' (expected one line '%s...%s...')", args, rc,
                 f->o.out, f->o.err, head, want);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_usage_errors_exit_2(void **state) {
    Fixture *f = *state;
    for (int i = 0; i < N_PROGRAMS; i++) {
        const Program *p = &PROGRAMS[i];
        if (!strcmp(p->cmd, "peak_rss")) continue; // runs any COMMAND: it has no options of its own
        char args[256], prefix[64];
        snprintf(args, sizeof args, "%s --no-such-option", p->cmd);
        snprintf(prefix, sizeof prefix, "%.*s", (int)strcspn(p->name, " "), p->name); // "bpe", not "bpe train"
        assert_usage_error(f, prefix, "unknown option '--no-such-option'", args);
        // Missing required options: one message naming them all.
        if (p->required[0]) {
            char first[64];
            snprintf(first, sizeof first, "--%.*s", (int)strcspn(p->required, " "), p->required);
            assert_usage_error(f, prefix, first, p->cmd);
            assert_true(strstr(f->o.err, " required (see "));
        }
    }
    assert_usage_error(f, "sft", "--init, --tokenizer, --out are required", "sft");
    assert_usage_error(f, "sample", "--n: 0 is out of range", "sample --model m.bin --tokenizer t.bin --prompt hi --n 0");
    assert_usage_error(f, "pretrain", "--lr: 'fast' is not a number", "pretrain --tokenizer t.bin --out x --lr fast");
    assert_usage_error(f, "pretrain", "unknown config 'huge'", "pretrain --config huge --tokenizer t.bin --out x");
    assert_usage_error(f, "score", "--rm needs a value", "score --tokenizer t.bin --rm");
    assert_usage_error(f, "score", "--rm or --gold is required (see score --help)", "score");
    assert_usage_error(f, "score", "--rm needs --tokenizer", "score --rm r.bin --input x.jsonl");
    assert_usage_error(f, "score", "--tokenizer is only used with --rm", "score --gold --tokenizer t.bin");
    assert_usage_error(f, "ppo", "did you mean --tokenizer?", "ppo --tok t.bin");
    assert_usage_error(f, "sample", "exactly one of --prompt and --prompts", "sample --model m.bin --tokenizer t.bin");
    assert_usage_error(f, "bpe", "no command", "bpe");
    assert_usage_error(f, "bpe", "unknown command 'frob'", "bpe frob");
    assert_usage_error(f, "ckpt", "no command", "ckpt");
    assert_usage_error(f, "ckpt", "unknown command 'frob'", "ckpt frob x");
    assert_usage_error(f, "ckpt", "expects 2 files, got 1", "ckpt diff a.bin");
    assert_usage_error(f, "ckpt", "expects 1 or more files, got 0", "ckpt verify");
    assert_usage_error(f, "peak_rss", "expected FILE COMMAND", "peak_rss");
    assert_usage_error(f, "bench_model_sgemm", "unknown option", "bench_model_sgemm --bogus");
    // --resume DIR stands for --out DIR: not a usage error, but the missing
    // run folder (bad input, exit 1) named.
    int rc = run_in(f, 30, "%ssft --init a.bin --tokenizer t.bin --resume gone", f->bin);
    assert_int_equal(rc, 1);
    assert_true(is_one_line(f->o.err));
    assert_non_null(strstr(f->o.err, "gone/config.txt"));
    assert_null(strstr(f->o.err, "required"));
}

// Output of a command run in the fixture, malloc'ed; the exit status must be 0.
static char *output_of(Fixture *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *output_of(Fixture *f, const char *fmt, ...) {
    char body[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    int rc = run_in(f, 300, "%s", body);
    if (rc != 0) fail_msg("%s: exit %d\n%s", body, rc, f->o.err);
    return strdup(f->o.out);
}

// Bad input: exit 1 with one line starting with want.
static void rc_refused(Fixture *f, const char *args, const char *want) {
    int rc = run_in(f, 30, "%s%s", f->bin, args);
    if (rc != 1 || !is_one_line(f->o.err) || strncmp(f->o.err, want, strlen(want)) != 0)
        fail_msg("%s: exit %d, stderr '%s' (expected 1 and one line '%s...')", args, rc, f->o.err, want);
}

static void test_dash_is_standard_input(void **state) {
    Fixture *f = *state;
    const char *b = f->bin;
    assert_int_equal(run_in(f, 10, "printf 'The cat sat.\\nA caf\\303\\251 fortune.\\n' > text.txt && "
                                   "printf 'Second file.\\n' > two.txt"), 0);
    // bpe encode: "-" is standard input, in any place among the files.
    char *from_file = output_of(f, "%sbpe encode --tokenizer tok.bin text.txt two.txt", b);
    char *from_dash = output_of(f, "%sbpe encode --tokenizer tok.bin - two.txt < text.txt", b);
    char *no_file = output_of(f, "cat text.txt | %sbpe encode --tokenizer tok.bin", b);
    assert_true(strlen(from_file) > 10);
    assert_string_equal(from_dash, from_file);
    char *one = output_of(f, "%sbpe encode --tokenizer tok.bin text.txt", b);
    assert_string_equal(no_file, one);
    // ... and decode gives the text back from "-".
    char *text = output_of(f, "%sbpe encode --tokenizer tok.bin text.txt | %sbpe decode --tokenizer tok.bin -", b, b);
    assert_string_equal(text, "The cat sat.\nA caf\xc3\xa9 fortune.\n");
    free(from_file), free(from_dash), free(no_file), free(one), free(text);

    // score --input -: the same rewards as from the file, one per pair.
    assert_int_equal(run_in(f, 10, "head -n 5 prefs/prefs_val.jsonl | sed 's/\"chosen\"/\"response\"/; s/\"rejected\"/\"other\"/' > pairs.jsonl"), 0);
    char *scored_file = output_of(f, "%sscore --rm rm/model.bin --tokenizer tok.bin --input pairs.jsonl", b);
    char *scored_dash = output_of(f, "%sscore --rm rm/model.bin --tokenizer tok.bin --input - < pairs.jsonl", b);
    char *scored_default = output_of(f, "%sscore --rm rm/model.bin --tokenizer tok.bin < pairs.jsonl", b);
    assert_int_equal(count(scored_file, "\n"), 5);
    assert_string_equal(scored_dash, scored_file);
    assert_string_equal(scored_default, scored_file);
    free(scored_file), free(scored_dash), free(scored_default);

    // sample --prompts -: the same samples as from the file.
    assert_int_equal(run_in(f, 10, "printf '{\"prompt\": \"Tell me about cats.\"}\\n{\"prompt\": \"Any advice?\"}\\n' "
                                   "> prompts.jsonl"), 0);
    const char *opts = "--model sft/model.bin --tokenizer tok.bin --n 2 --max-new 12 --seed 5 --json";
    char *sampled_file = output_of(f, "%ssample %s --prompts prompts.jsonl", b, opts);
    char *sampled_dash = output_of(f, "%ssample %s --prompts - < prompts.jsonl", b, opts);
    assert_non_null(strstr(sampled_file, "Any advice?"));
    assert_string_equal(sampled_dash, sampled_file);
    free(sampled_file), free(sampled_dash);
    // Elsewhere "-" is refused, not taken for a file of that name.
    char *before = dir_snapshot(f->dir);
    rc_refused(f, "bpe train --input text.txt --plain --vocab 300 --out -", "bpe: -: standard output cannot take this file");
    rc_refused(f, "sample --model - --tokenizer tok.bin --prompt hi", "sample: -: standard input is not read here");
    char *after = dir_snapshot(f->dir);
    assert_string_equal(before, after);
    free(before), free(after);
    // A bad line on standard input is named by line.
    int rc = run_in(f, 30, "printf '{\"prompt\": \"a\"}\\n{\"text\": 1}\\n' | %ssample %s --prompts -", b, opts);
    assert_int_equal(rc, 1);
    assert_true(is_one_line(f->o.err));
    assert_non_null(strstr(f->o.err, "<stdin>:2: missing field \"prompt\""));
}

// ckpt verify FILE...: one OK line per intact file (the fingerprint each has
// alone), one stderr line per bad one, exit 1 if any is bad.
static void test_ckpt_verify_takes_several_files(void **state) {
    Fixture *f = *state;
    const char *b = f->bin;
    assert_int_equal(run_in(f, 10, "cp sft/model.bin flipped.bin && printf 'X' | "
                                   "dd of=flipped.bin bs=1 seek=5000 conv=notrunc status=none"), 0);
    char *sft = output_of(f, "%sckpt verify sft/model.bin", b);
    char *rm = output_of(f, "%sckpt verify rm/model.bin", b);
    char *both = output_of(f, "%sckpt verify sft/model.bin rm/model.bin", b);
    char want[512];
    snprintf(want, sizeof want, "%s%s", sft, rm);
    assert_string_equal(both, want);
    char *before = dir_snapshot(f->dir);
    int rc = run_in(f, 30, "%sckpt verify sft/model.bin flipped.bin rm/model.bin", b);
    char *after = dir_snapshot(f->dir);
    assert_int_equal(rc, 1);
    assert_string_equal(f->o.out, want);
    assert_true(is_one_line(f->o.err));
    assert_non_null(strstr(f->o.err, "ckpt: flipped.bin: "));
    assert_string_equal(before, after);
    rc = run_in(f, 30, "%sckpt verify --json flipped.bin rm/model.bin", b);
    assert_int_equal(rc, 1);
    assert_int_equal(f->o.out[0], '[');
    assert_int_equal(count(f->o.out, "\"ok\":\tfalse"), 1);
    assert_int_equal(count(f->o.out, "\"ok\":\ttrue"), 1);
    free(sft), free(rm), free(both), free(before), free(after);
}

// The value of `name = ...` in a config.txt, or -1.
static long config_value(Fixture *f, const char *rel, const char *name) {
    char *text = output_of(f, "cat %s", rel);
    char key[64];
    snprintf(key, sizeof key, "\n%s = ", name);
    char *at = strstr(text, key);
    long v = at ? strtol(at + strlen(key), NULL, 10) : -1;
    free(text);
    return v;
}

// config.txt records the threads a stage used, not the 0 it was given, and a
// resumed run records its own count (threads belong to one invocation).
static void test_config_records_threads_used(void **state) {
    Fixture *f = *state;
    const char *b = f->bin;
    const char *args = "--config smoke --steps 4 --eval-every 100 --tokenizer tok.bin";
    char *out = output_of(f, "OMP_NUM_THREADS=2 %spretrain %s --data %s/fortunes.jsonl --out thr", b, args, f->data);
    free(out);
    assert_int_equal(config_value(f, "thr/config.txt", "threads"), 2);
    int rc = run_in(f, 120, "OMP_NUM_THREADS=1 %spretrain %s --data %s/fortunes.jsonl --threads 2 --stop-after 2 --out thr2",
                    b, args, f->data);
    assert_int_equal(rc, EXIT_STOPPED);
    assert_int_equal(config_value(f, "thr2/config.txt", "threads"), 2);
    out = output_of(f, "OMP_NUM_THREADS=1 %spretrain --resume thr2", b);
    free(out);
    assert_int_equal(config_value(f, "thr2/config.txt", "threads"), 1);
}

// Without --jsonl-field a JSON Lines corpus would be trained on as text (its
// keys and braces): refused, exit 2, nothing written; --plain trains on it.
static void test_bpe_train_refuses_jsonl_as_text(void **state) {
    Fixture *f = *state;
    const char *b = f->bin;
    assert_int_equal(run_in(f, 10, "head -n 200 %s/fortunes.jsonl > corpus.jsonl && cp corpus.jsonl corpus.txt", f->data), 0);
    char args[1024];
    snprintf(args, sizeof args, "bpe train --input corpus.jsonl --vocab 300 --out j.bin");
    assert_usage_error(f, "bpe", "corpus.jsonl: is named *.jsonl", args);
    assert_non_null(strstr(f->o.err, "--jsonl-field"));
    snprintf(args, sizeof args, "bpe train --input corpus.txt --vocab 300 --out j.bin");
    assert_usage_error(f, "bpe", "corpus.txt: starts with a JSON object", args);
    snprintf(args, sizeof args, "bpe train --input corpus.txt --plain --jsonl-field text --out j.bin");
    assert_usage_error(f, "bpe", "exclude each other", args);
    char *out = output_of(f, "%sbpe train --input corpus.txt --plain --vocab 300 --out plain.bin", b);
    free(out);
    out = output_of(f, "%sbpe train --input corpus.jsonl --jsonl-field text --vocab 300 --out field.bin", b);
    free(out);
    // Trained as text, the JSON syntax (`":"`) and a key ("category") are
    // among the merges; trained on the field, neither is.
    char *plain = output_of(f, "%sbpe info --tokenizer plain.bin --merges 100000", b);
    char *field = output_of(f, "%sbpe info --tokenizer field.bin --merges 100000", b);
    assert_non_null(strstr(plain, "\"\\\":\\\"\""));
    assert_non_null(strstr(plain, "\"category\""));
    assert_null(strstr(field, "\"\\\":\\\"\""));
    assert_null(strstr(field, "\"category\""));
    free(plain), free(field);
}

// The id of the end-of-text token in `bpe info` output.
static int endoftext_id(const char *info) {
    const char *at = strstr(info, "  <|endoftext|>");
    assert_non_null(at);
    while (at > info && at[-1] == ' ') at--;
    while (at > info && isdigit((unsigned char)at[-1])) at--;
    return atoi(at);
}

// sample --logprobs names special tokens as the tokenizer does (<|endoftext|>,
// as `bpe info` and the docs spell it), not [ENDOFTEXT].
static void test_logprobs_spell_end_token_as_tokenizer(void **state) {
    Fixture *f = *state;
    char *info = output_of(f, "%sbpe info --tokenizer tok.bin", f->bin);
    int eot = endoftext_id(info);
    free(info);
    char *table = output_of(f, "%ssample --model sft/model.bin --tokenizer tok.bin --prompt 'Tell me about cats.' "
                               "--n 8 --seed 3 --logprobs", f->bin);
    assert_null(strstr(table, "[ENDOFTEXT]"));
    char row[64];
    snprintf(row, sizeof row, " %6d ", eot);
    int rows = 0;
    for (const char *at = table; (at = strstr(at, row)) != NULL; at += strlen(row)) {
        const char *end = strchr(at, '\n');
        assert_non_null(end);
        assert_true(end - at > 16 && !strncmp(end - 15, "\"<|endoftext|>\"", 15));
        rows++;
    }
    if (rows == 0) fail_msg("no sample ended with the end token (id %d):\n%s", eot, table);
    free(table);
}

int main(void) {
    const struct CMUnitTest bare[] = {
        cmocka_unit_test(test_help_is_consistent_everywhere),
        cmocka_unit_test(test_version_everywhere),
        cmocka_unit_test(test_usage_errors_exit_2),
    };
    const struct CMUnitTest chain[] = {
        cmocka_unit_test(test_dash_is_standard_input),
        cmocka_unit_test(test_ckpt_verify_takes_several_files),
        cmocka_unit_test(test_config_records_threads_used),
        cmocka_unit_test(test_bpe_train_refuses_jsonl_as_text),
        cmocka_unit_test(test_logprobs_spell_end_token_as_tokenizer),
    };
    int failed = cmocka_run_group_tests_name("help, version, usage", bare, setup_bare, teardown);
    return failed + cmocka_run_group_tests_name("readers and writers on a smoke chain", chain, setup_chain, teardown);
}
