// The bpe executable: help text, one-line errors, and train/encode/decode/info
// through files, plain text and JSON Lines.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fileio.h"

typedef struct {
    char dir[64];
    char bpe[2048];
    char out[128], err[128]; // paths of the captured streams
} CliEnv;

static int setup(void **state) {
    CliEnv *env = calloc(1, sizeof *env);
    const char *bin = getenv("MINIRLHF_BIN");
    snprintf(env->bpe, sizeof env->bpe, "%s/bpe", bin ? bin : "bin");
    snprintf(env->dir, sizeof env->dir, "/tmp/test_bpe_cli_XXXXXX");
    if (!mkdtemp(env->dir)) return -1;
    snprintf(env->out, sizeof env->out, "%s/stdout", env->dir);
    snprintf(env->err, sizeof env->err, "%s/stderr", env->dir);
    *state = env;
    return 0;
}

static int teardown(void **state) {
    CliEnv *env = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", env->dir);
    int rc = system(cmd);
    free(env);
    return rc == 0 ? 0 : -1;
}

// Runs "bpe ARGS" in the test folder; returns its exit status.
static int run_bpe(const CliEnv *env, const char *fmt, ...) {
    char args[2048], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >'%s' 2>'%s'", env->dir, env->bpe, args, env->out,
             env->err);
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *slurp(const char *path, size_t *len) {
    unsigned char *buf = NULL;
    size_t n = 0;
    Error err = {{0}};
    if (read_file(path, 1 << 26, &buf, &n, &err) != 0) fail_msg("%s", err.msg);
    if (len) *len = n;
    return (char *)buf;
}

static void write_in(const CliEnv *env, const char *name, const char *data, size_t len) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", env->dir, name);
    Error err = {{0}};
    if (write_file_atomic(path, data, len, &err) != 0) fail_msg("%s", err.msg);
}

// The command failed with status `expected` and exactly one line "bpe: ...want...".
static void assert_one_line_status(const CliEnv *env, int status, int expected, const char *want) {
    assert_int_equal(status, expected);
    char *msg = slurp(env->err, NULL);
    if (strncmp(msg, "bpe: ", 5) != 0 || !strstr(msg, want) || strchr(msg, '\n') != msg + strlen(msg) - 1)
        fail_msg("expected one line 'bpe: ...%s...', got '%s'", want, msg);
    free(msg);
}

// Bad input or a failure: status 1.
static void assert_one_line_error(const CliEnv *env, int status, const char *want) {
    assert_one_line_status(env, status, 1, want);
}

// A usage error (common/error.h EXIT_USAGE): status 2.
static void assert_one_line_usage(const CliEnv *env, int status, const char *want) {
    assert_one_line_status(env, status, 2, want);
}

static void test_help_lists_every_option(void **state) {
    CliEnv *env = *state;
    const char *expect[][6] = {
        {"train", "--input", "--vocab", "--out", "--jsonl-field", "--min-frequency"},
        {"encode", "--tokenizer", "--lossy", "--stats", NULL, NULL},
        {"decode", "--tokenizer", NULL, NULL, NULL, NULL},
        {"info", "--tokenizer", "--merges", NULL, NULL, NULL},
    };
    for (int c = 0; c < 4; c++) {
        assert_int_equal(run_bpe(env, "%s --help", expect[c][0]), 0);
        char *help = slurp(env->out, NULL);
        for (int k = 1; k < 6 && expect[c][k]; k++)
            if (!strstr(help, expect[c][k])) fail_msg("bpe %s --help lacks %s", expect[c][0], expect[c][k]);
        assert_non_null(strstr(help, "default"));
        free(help);
    }
    assert_int_equal(run_bpe(env, "--help"), 0);
    assert_one_line_usage(env, run_bpe(env, "frobnicate"), "unknown command 'frobnicate'");
    assert_one_line_usage(env, run_bpe(env, "train --vocabb 10 --input x"), "unknown option '--vocabb'");
    assert_one_line_usage(env, run_bpe(env, "train --input x --vocab 100"), "--vocab: 100 is out of range");
    assert_one_line_usage(env, run_bpe(env, "train --input x --vocab lots"), "not a whole number");
    assert_one_line_usage(env, run_bpe(env, "train --vocab 300"), "--input is required");
    assert_one_line_usage(env, run_bpe(env, "train --input --vocab 300"), "--input needs at least one file");
    assert_one_line_error(env, run_bpe(env, "train --input missing.txt"), "missing.txt: cannot open");
}

static void test_train_encode_decode_files(void **state) {
    CliEnv *env = *state;
    const char *a = "The quick brown fox jumps over the lazy dog. Café crème, naïve façade.\n";
    const char *b = "日本語のテキストも少し。 😀 Emoji too! The dog sleeps; the fox runs.\n";
    char corpus[16384] = "";
    for (int i = 0; i < 50; i++) strcat(corpus, i % 2 ? a : b);
    write_in(env, "a.txt", corpus, strlen(corpus));
    write_in(env, "b.txt", a, strlen(a));
    assert_int_equal(run_bpe(env, "train --input a.txt b.txt --vocab 400 --out tok.bin"), 0);
    char *summary = slurp(env->out, NULL);
    assert_non_null(strstr(summary, "wrote tok.bin"));
    free(summary);
    assert_int_equal(run_bpe(env, "info --tokenizer tok.bin"), 0);
    char *info = slurp(env->out, NULL);
    assert_non_null(strstr(info, "<|endoftext|>"));
    assert_non_null(strstr(info, "<|assistant|>"));
    assert_non_null(strstr(info, "fingerprint"));
    free(info);
    // Decomposed input comes back composed (NFC).
    const char *text = "The lazy cafe\xCC\x81 fox.\n<|endoftext|>";
    write_in(env, "in.txt", text, strlen(text));
    assert_int_equal(run_bpe(env, "encode --tokenizer tok.bin in.txt"), 0);
    char *ids = slurp(env->out, NULL);
    assert_true(strlen(ids) > 0);
    write_in(env, "ids.txt", ids, strlen(ids));
    free(ids);
    assert_int_equal(run_bpe(env, "decode --tokenizer tok.bin < ids.txt"), 0);
    size_t back_len;
    char *back = slurp(env->out, &back_len);
    assert_string_equal(back, "The lazy café fox.\n<|endoftext|>");
    free(back);
    // Same corpus and settings: byte-identical file.
    assert_int_equal(run_bpe(env, "train --input a.txt b.txt --vocab 400 --out tok2.bin"), 0);
    char p1[4400], p2[4400];
    snprintf(p1, sizeof p1, "%s/tok.bin", env->dir);
    snprintf(p2, sizeof p2, "%s/tok2.bin", env->dir);
    size_t l1, l2;
    char *f1 = slurp(p1, &l1), *f2 = slurp(p2, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(f1, f2, l1);
    free(f1);
    free(f2);
    // Bad input, one line each.
    write_in(env, "bad.txt", "fine\n\xC3(", 7);
    assert_one_line_error(env, run_bpe(env, "encode --tokenizer tok.bin bad.txt"),
                          "bad.txt: invalid UTF-8 at byte offset 5");
    assert_int_equal(run_bpe(env, "encode --lossy --tokenizer tok.bin bad.txt"), 0);
    assert_one_line_error(env, run_bpe(env, "train --input bad.txt --out x.bin"),
                          "bad.txt: invalid UTF-8 at byte offset 5");
    write_in(env, "notids.txt", "12 abc 7", 8);
    assert_one_line_error(env, run_bpe(env, "decode --tokenizer tok.bin notids.txt"),
                          "'abc' at byte offset 3 is not a token id");
    write_in(env, "bigid.txt", "99999", 5);
    assert_one_line_error(env, run_bpe(env, "decode --tokenizer tok.bin bigid.txt"), "not a token id");
    write_in(env, "empty.txt", "", 0);
    assert_one_line_error(env, run_bpe(env, "train --input empty.txt --out e.bin"), "empty corpus");
    assert_int_equal(access(p1, F_OK), 0);
    assert_one_line_error(env, run_bpe(env, "encode --tokenizer a.txt in.txt"), "a.txt: not a minirlhf tokenizer file");
}

static void test_train_on_jsonl(void **state) {
    CliEnv *env = *state;
    char jsonl[32768] = "";
    for (int i = 0; i < 100; i++)
        strcat(jsonl, i % 2 ? "{\"text\": \"Fortune favours the bold.\", \"category\": \"wisdom\"}\n"
                            : "{\"text\": \"Na\\u00efve caf\\u00e9 \\ud83d\\ude00 bold\", \"category\": \"food\"}\n");
    write_in(env, "c.jsonl", jsonl, strlen(jsonl));
    assert_int_equal(run_bpe(env, "train --input c.jsonl --jsonl-field text --vocab 300 --out j.bin"), 0);
    assert_int_equal(run_bpe(env, "info --tokenizer j.bin --merges 1000"), 0);
    char *info = slurp(env->out, NULL);
    assert_non_null(strstr(info, "\" bold\""));   // a merge learned from the text field
    assert_null(strstr(info, "category"));       // nothing from the keys
    free(info);
    assert_one_line_error(env, run_bpe(env, "train --input c.jsonl --jsonl-field body --out j.bin"),
                          "c.jsonl:1: missing field \"body\"");
    write_in(env, "broken.jsonl", "{\"text\": \"ok\"}\n{\"text\": \n", 26);
    assert_one_line_error(env, run_bpe(env, "train --input broken.jsonl --jsonl-field text"),
                          "broken.jsonl:2: malformed JSON");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_lists_every_option),
        cmocka_unit_test(test_train_encode_decode_files),
        cmocka_unit_test(test_train_on_jsonl),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
