// Issue 16, input files: what a careless or hostile user gives as input ends
// with one line on stderr naming the file (and line), exit status 1 and
// nothing on disk changed; and what is written as JSON reads back exactly.
//   - a FIFO as checkpoint, JSONL, tokenizer, config.txt or lineage parent
//     is refused at once instead of blocking in open (run under a timeout);
//   - the strict JSONL reader: two records on a line, a duplicate key and
//     \u0000 in a string are refused with FILE:LINE;
//   - JSON numbers read back bit for bit;
//   - prompts equal after NFC never sit on both sides of prefs' held-out
//     split, and a non-string "category" is refused by prefs, evaluate, ppo;
//   - sample --json is valid UTF-8;
//   - sample and train_rm name FILE:LINE of a record they cannot use;
//   - sft with fewer than 4 held-out pairs finishes (it crashed).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <utf8proc.h>

#include "common/jsonl.h"
#include "common/rng.h"
#include "data/fortune_text.h"
#include "data/prompt_record.h"
#include "tests/testutil.h"

// Seconds a refusal may take; a FIFO that blocks an open hangs forever.
#define REFUSAL_TIMEOUT 10

typedef struct {
    char dir[256]; // the smoke chain: tok.bin pre/ sft/ prefs/ rm/, and the inputs made here
    char bin[512]; // MINIRLHF_BIN with a trailing slash
    char data[512];
} Chain;

static int setup(void **state) {
    Chain *c = calloc(1, sizeof *c);
    make_temp_dir(c->dir, sizeof c->dir);
    bin_path(c->bin, sizeof c->bin, "");
    src_path(c->data, sizeof c->data, "data");
    char out[4096];
    if (make_smoke_chain(c->dir, "rm") != 0 || run_cmd(out, sizeof out, "mkdir '%s/in'", c->dir) != 0) {
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

static int teardown(void **state) {
    Chain *c = *state;
    char out[256];
    run_cmd(out, sizeof out, "rm -rf '%s'", c->dir);
    free(c);
    return 0;
}

// Writes text to in/NAME of the chain and returns NAME.
static const char *write_input(const Chain *c, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/in/%s", c->dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return name;
}

static void make_fifo(const Chain *c, const char *rel) {
    char out[1024];
    assert_int_equal(run_cmd(out, sizeof out, "cd '%s' && mkdir -p \"$(dirname '%s')\" && mkfifo '%s'", c->dir,
                             rel, rel),
                     0);
}

// Runs the command (in the folder `sub` of the chain, binaries from
// MINIRLHF_BIN) and asserts the whole promise of a refusal: ends within
// REFUSAL_TIMEOUT with exit status 1, stderr exactly one line containing
// `expect`, and the chain folder (inputs and every run folder) byte-identical.
static void assert_refused_v(const Chain *c, const char *sub, const char *expect, const char *fmt, va_list ap) {
    char args[4096], cmd[8192], out[65536], err[8192];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(cmd, sizeof cmd, "cd '%s/%s' && %s%s", c->dir, sub, c->bin, args);
    char *before = dir_snapshot(c->dir);
    int rc = run_split(cmd, REFUSAL_TIMEOUT, out, sizeof out, err, sizeof err);
    char *after = dir_snapshot(c->dir);
    if (rc != 1 || !is_one_line(err) || !strstr(err, expect))
        print_message("command: %s\nexit status %d (-2: hang)\nstderr: %s\nexpected one line with: %s\n", cmd, rc,
                      err, expect);
    assert_int_equal(rc, 1);
    assert_true(is_one_line(err));
    assert_non_null(strstr(err, expect));
    assert_string_equal(before, after);
    free(before), free(after);
}

static void assert_refused(const Chain *c, const char *expect, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    assert_refused_v(c, ".", expect, fmt, ap);
    va_end(ap);
}

static void assert_refused_in(const Chain *c, const char *sub, const char *expect, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    assert_refused_v(c, sub, expect, fmt, ap);
    va_end(ap);
}

// Runs the command in the chain folder; returns its exit status, stdout in out.
static int run_in_chain(const Chain *c, char *out, size_t n_out, const char *fmt, ...) {
    char args[4096], cmd[8192], err[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd '%s' && %s%s", c->dir, c->bin, args);
    int rc = run_split(cmd, 120, out, n_out, err, sizeof err);
    if (rc != 0) print_message("command: %s\nexit status %d\nstderr: %s\n", cmd, rc, err);
    return rc;
}

// ------------------------------------------------------------------ FIFOs

static void test_fifo_checkpoint_is_refused(void **state) {
    const Chain *c = *state;
    make_fifo(c, "in/fifo_model.bin");
    assert_refused(c, "in/fifo_model.bin: not a regular file (a FIFO)", "ckpt info in/fifo_model.bin");
    assert_refused(c, "in/fifo_model.bin: not a regular file (a FIFO)", "ckpt verify in/fifo_model.bin");
    assert_refused(c, "in/fifo_model.bin: not a regular file (a FIFO)",
                   "sample --model in/fifo_model.bin --tokenizer tok.bin --prompt hi");
    assert_refused(c, "in/fifo_model.bin: not a regular file (a FIFO)",
                   "sft --config smoke --init in/fifo_model.bin --tokenizer tok.bin --data %s/sft.jsonl "
                   "--val %s/sft_val.jsonl --out in/sft_fifo",
                   c->data, c->data);
}

static void test_fifo_jsonl_is_refused(void **state) {
    const Chain *c = *state;
    make_fifo(c, "in/fifo_prompts.jsonl");
    assert_refused(c, "in/fifo_prompts.jsonl: not a regular file (a FIFO)",
                   "sample --model sft/model.bin --tokenizer tok.bin --prompts in/fifo_prompts.jsonl");
    assert_refused(c, "in/fifo_prompts.jsonl: not a regular file (a FIFO)",
                   "sft --config smoke --init pre/model.bin --tokenizer tok.bin --data in/fifo_prompts.jsonl "
                   "--val %s/sft_val.jsonl --out in/sft_fifo",
                   c->data);
}

static void test_fifo_tokenizer_is_refused(void **state) {
    const Chain *c = *state;
    make_fifo(c, "in/fifo_tok.bin");
    assert_refused(c, "in/fifo_tok.bin: not a regular file (a FIFO)",
                   "sample --model sft/model.bin --tokenizer in/fifo_tok.bin --prompt hi");
    assert_refused(c, "in/fifo_tok.bin: not a regular file (a FIFO)", "bpe info --tokenizer in/fifo_tok.bin");
}

static void test_fifo_config_txt_is_refused(void **state) {
    const Chain *c = *state;
    make_fifo(c, "in/fifo_run/config.txt");
    assert_refused(c, "in/fifo_run/config.txt: not a regular file (a FIFO)", "sft --resume in/fifo_run");
}

// A checkpoint whose recorded parent has since become a FIFO: `ckpt lineage`
// refuses it at once (no hang). Stages record the parent absolute (issue 17),
// so the child is trained here from a copy of pre/model.bin that is then
// replaced by a FIFO.
static void test_fifo_lineage_parent_is_refused(void **state) {
    const Chain *c = *state;
    char out[4096], expect[PATH_MAX + 128], real[PATH_MAX];
    assert_int_equal(run_cmd(out, sizeof out, "cd '%s' && mkdir -p in/lineage/pre && cp pre/model.bin in/lineage/pre/ && "
                             "%ssft --config smoke --steps 1 --eval-prompts 2 --init in/lineage/pre/model.bin "
                             "--tokenizer tok.bin --data %s/sft.jsonl --val %s/sft_val.jsonl --out in/lineage/child && "
                             "rm in/lineage/pre/model.bin", c->dir, c->bin, c->data, c->data),
                     0);
    make_fifo(c, "in/lineage/pre/model.bin");
    assert_non_null(realpath(c->dir, real));
    snprintf(expect, sizeof expect, "parent of child/model.bin cannot be read: %s/in/lineage/pre/model.bin: not a "
             "regular file (a FIFO)", real);
    assert_refused_in(c, "in/lineage", expect, "ckpt lineage child/model.bin");
}

// ------------------------------------------------------------------ strict JSONL

static void test_jsonl_two_records_on_a_line_are_refused(void **state) {
    const Chain *c = *state;
    const char *p = write_input(c, "two_on_a_line.jsonl", "{\"prompt\":\"Tell me a fortune.\"}\n"
                                                          "{\"prompt\":\"a\"} {\"prompt\":\"b\"}\n");
    assert_refused(c, "in/two_on_a_line.jsonl:2: text after the JSON object",
                   "sample --model sft/model.bin --tokenizer tok.bin --prompts in/%s --max-new 4", p);
}

static void test_jsonl_duplicate_key_is_refused(void **state) {
    const Chain *c = *state;
    const char *p = write_input(c, "dup.jsonl", "\n{\"prompt\":\"Tell me a fortune.\",\"prompt\":\"b\"}\n");
    assert_refused(c, "in/dup.jsonl:2: duplicate key \"prompt\"",
                   "sample --model sft/model.bin --tokenizer tok.bin --prompts in/%s --max-new 4", p);
}

static void test_jsonl_nul_escape_is_refused(void **state) {
    const Chain *c = *state;
    const char *p = write_input(c, "nul.jsonl", "{\"prompt\":\"Tell me\\u0000 a fortune.\"}\n");
    assert_refused(c, "in/nul.jsonl:1: a string contains \\u0000",
                   "sample --model sft/model.bin --tokenizer tok.bin --prompts in/%s --max-new 4", p);
    // An escaped backslash followed by "u0000" is ordinary text.
    p = write_input(c, "backslash.jsonl", "{\"prompt\":\"Tell me \\\\u0000 a fortune.\"}\n");
    char out[65536];
    assert_int_equal(run_in_chain(c, out, sizeof out,
                                  "sample --model sft/model.bin --tokenizer tok.bin --prompts in/%s --max-new 4", p),
                     0);
    assert_non_null(strstr(out, "Tell me \\u0000 a fortune."));
}

// The reader itself on the cases a command cannot reach one by one.
static void assert_jsonl_reads(const char *text, int want_ok, const char *want_msg) {
    char path[] = "/tmp/minirlhf_strict_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "wb");
    fputs(text, fp);
    fclose(fp);
    JsonlReader r;
    Error err = {0};
    assert_int_equal(jsonl_open(&r, path, &err), 0);
    cJSON *o;
    int rc;
    while ((rc = jsonl_next(&r, &o, &err)) == 1) cJSON_Delete(o);
    jsonl_close(&r);
    unlink(path);
    if (want_ok) {
        if (rc != 0) print_message("%s: %s\n", text, err.msg);
        assert_int_equal(rc, 0);
    } else {
        assert_int_equal(rc, -1);
        if (!strstr(err.msg, want_msg)) print_message("%s: got %s, want %s\n", text, err.msg, want_msg);
        assert_non_null(strstr(err.msg, want_msg));
    }
}

static void test_jsonl_reader_is_strict(void **state) {
    (void)state;
    assert_jsonl_reads("{\"a\":1}  \t\r\n\n{\"b\":\"x\\\\u0000\"}\n", 1, NULL);
    assert_jsonl_reads("{\"a\":{\"b\":[{\"c\":1,\"d\":2}]}}\n", 1, NULL);
    assert_jsonl_reads("{\"a\":1}{\"a\":2}\n", 0, ":1: text after the JSON object at column 8");
    assert_jsonl_reads("{\"a\":1} x\n", 0, ":1: text after the JSON object");
    assert_jsonl_reads("{\"a\":1}\n{\"k\":{\"b\":1,\"b\":2}}\n", 0, ":2: duplicate key \"b\"");
    assert_jsonl_reads("{\"a\":[{\"b\":1},{\"c\":1,\"c\":1}]}\n", 0, ":1: duplicate key \"c\"");
    assert_jsonl_reads("{\"a\\u0000\":1}\n", 0, ":1: a string contains \\u0000");
    assert_jsonl_reads("{\"a\":\"\\\\\\u0000\"}\n", 0, ":1: a string contains \\u0000");
}

// ------------------------------------------------------------------ exact numbers

static double random_finite_double(Rng *rng) {
    for (;;) {
        uint64_t bits = rng_u64(rng);
        double v;
        memcpy(&v, &bits, sizeof v);
        if (v == v && v - v == 0) return v;
    }
}

static void test_json_numbers_read_back_bit_for_bit(void **state) {
    (void)state;
    enum { N = 100000 };
    static double written[N];
    Rng rng;
    rng_seed(&rng, 16);
    char path[] = "/tmp/minirlhf_numbers_XXXXXX";
    int fd = mkstemp(path);
    FILE *fp = fdopen(fd, "wb");
    for (int i = 0; i < N; i++) {
        // Random bit patterns, ordinary magnitudes, integers and -0.
        double v = i % 4 == 0 ? random_finite_double(&rng)
                   : i % 4 == 1 ? (double)(rng_u64(&rng) >> 11) / 9007199254740992.0
                   : i % 4 == 2 ? (double)(int64_t)(rng_u64(&rng) >> (i % 60)) * (i % 8 == 2 ? 1 : -1)
                                : (i == 3 ? -0.0 : ((double)(rng_u64(&rng) >> 11) - 4.5e15) * 1e-300);
        written[i] = v;
        cJSON *o = cJSON_CreateObject();
        assert_non_null(jsonl_add_number(o, "gold", v));
        assert_int_equal(jsonl_write(fp, o), 0);
        cJSON_Delete(o);
    }
    fclose(fp);
    JsonlReader r;
    Error err;
    assert_int_equal(jsonl_open(&r, path, &err), 0);
    cJSON *o;
    int i = 0;
    while (jsonl_next(&r, &o, &err) == 1) {
        double back;
        assert_int_equal(jsonl_number(&r, o, "gold", 0, &back, &err), 0);
        if (memcmp(&back, &written[i], sizeof back) != 0)
            fail_msg("line %d: wrote %.17g, read back %.17g", i + 1, written[i], back);
        cJSON_Delete(o);
        i++;
    }
    assert_int_equal(i, N);
    jsonl_close(&r);
    unlink(path);
}

// ------------------------------------------------------------------ data hygiene

static char *read_text(const Chain *c, const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", c->dir, rel);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    char *text = malloc((size_t)n + 1);
    assert_int_equal(fread(text, 1, (size_t)n, fp), (size_t)n);
    text[n] = 0;
    fclose(fp);
    return text;
}

// Prompts of a prefs output file, NFC-normalised, as one "\n"-joined string.
static int prompts_in(const Chain *c, const char *rel, char keys[][256], int max) {
    char *text = read_text(c, rel);
    int n = 0;
    for (char *line = strtok(text, "\n"); line && n < max; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        char *key = prompt_compare_key(cJSON_GetObjectItem(o, "prompt")->valuestring);
        snprintf(keys[n++], 256, "%s", key);
        free(key);
        cJSON_Delete(o);
    }
    free(text);
    return n;
}

static void test_prefs_split_compares_nfc_text(void **state) {
    const Chain *c = *state;
    static const char *const topics[] = {"caf\xc3\xa9", "na\xc3\xafve", "r\xc3\xa9sum\xc3\xa9",
                                         "pi\xc3\xb1" "ata", "cr\xc3\xa8me", "fa\xc3\xa7" "ade"};
    char text[8192] = "";
    for (int i = 0; i < 6; i++) {
        char nfc[256];
        snprintf(nfc, sizeof nfc, "Tell me a fortune about %s.", topics[i]);
        char *nfd = (char *)utf8proc_NFD((const utf8proc_uint8_t *)nfc);
        assert_string_not_equal(nfc, nfd);
        size_t n = strlen(text);
        snprintf(text + n, sizeof text - n, "{\"prompt\":\"%s\"}\n{\"prompt\":\"%s\"}\n", nfc, nfd);
        free(nfd);
    }
    const char *p = write_input(c, "nfc_nfd.jsonl", text);
    char out[65536];
    assert_int_equal(run_in_chain(c, out, sizeof out,
                                  "prefs --policy sft/model.bin --tokenizer tok.bin --prompts in/%s --data-dir %s "
                                  "--pairs 24 --out in/prefs_nfc",
                                  p, c->data),
                     0);
    static char train[64][256], val[64][256];
    int n_train = prompts_in(c, "in/prefs_nfc/prefs.jsonl", train, 64);
    int n_val = prompts_in(c, "in/prefs_nfc/prefs_val.jsonl", val, 64);
    assert_true(n_train > 0 && n_val > 0);
    for (int i = 0; i < n_train; i++)
        for (int j = 0; j < n_val; j++)
            if (!strcmp(train[i], val[j])) fail_msg("held-out prompt \"%s\" is also a training prompt", val[j]);
}

// prepare_data dedups and splits fortunes by their cleaned text: an NFD twin
// of a fortune must clean to the same text, and so land on the same side.
static void test_fortune_clean_gives_nfc(void **state) {
    (void)state;
    const char *nfc_raw = "Caf\xc3\xa9 au lait,\n\tna\xc3\xafve.";
    char *nfd_raw = (char *)utf8proc_NFD((const utf8proc_uint8_t *)nfc_raw);
    char *a = NULL, *b = NULL;
    assert_int_equal(fortune_clean(nfc_raw, strlen(nfc_raw), &a, NULL), FORTUNE_OK);
    assert_int_equal(fortune_clean(nfd_raw, strlen(nfd_raw), &b, NULL), FORTUNE_OK);
    assert_string_equal(a, "Caf\xc3\xa9 au lait, na\xc3\xafve.");
    assert_string_equal(a, b);
    assert_int_equal(fortune_is_val(a), fortune_is_val(b));
    free(a), free(b), free(nfd_raw);
}

static void test_non_string_category_is_refused_everywhere(void **state) {
    const Chain *c = *state;
    const char *p = write_input(c, "category.jsonl", "{\"prompt\":\"Tell me a fortune about love.\"}\n"
                                                     "{\"prompt\":\"Tell me a fortune about love.\",\"category\":7}\n");
    const char *expect = "in/category.jsonl:2: field \"category\" must be a string";
    assert_refused(c, expect, "prefs --policy sft/model.bin --tokenizer tok.bin --prompts in/%s --data-dir %s "
                              "--pairs 4 --out in/prefs_category", p, c->data);
    assert_refused(c, expect, "evaluate --config smoke --policy sft/model.bin --ref sft/model.bin --rm rm/model.bin "
                              "--tokenizer tok.bin --prompts in/%s --data-dir %s --out in/eval_category", p, c->data);
    assert_refused(c, expect, "ppo --config smoke --policy sft/model.bin --rm rm/model.bin --tokenizer tok.bin "
                              "--prompts in/%s --data-dir %s --out in/ppo_category", p, c->data);
}

// ------------------------------------------------------------------ sample --json

static void test_sample_json_is_valid_utf8(void **state) {
    const Chain *c = *state;
    static char out[1 << 20];
    // A raw continuation from the barely trained model cuts characters apart.
    for (int seed = 1; seed <= 12; seed++) {
        assert_int_equal(run_in_chain(c, out, sizeof out,
                                      "sample --model pre/model.bin --tokenizer tok.bin --raw --prompt 'A man' "
                                      "--max-new 30 --seed %d --json --logprobs",
                                      seed),
                         0);
        size_t n = strlen(out);
        utf8proc_int32_t cp;
        for (size_t i = 0; i < n;) {
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)out + i, (utf8proc_ssize_t)(n - i), &cp);
            if (k <= 0) fail_msg("seed %d: invalid UTF-8 at byte %zu of sample --json", seed, i);
            i += (size_t)k;
        }
        cJSON *doc = cJSON_Parse(out);
        assert_non_null(doc);
        cJSON_Delete(doc);
    }
}

// score --jsonl adds "reward" to each record: one given in the input is
// replaced, so the output is read back by the strict reader.
static void test_score_jsonl_output_reads_back(void **state) {
    const Chain *c = *state;
    write_input(c, "scored.jsonl", "{\"prompt\":\"Tell me a fortune.\",\"response\":\"Cats purr.\",\"reward\":5}\n");
    static char out[65536];
    assert_int_equal(run_in_chain(c, out, sizeof out,
                                  "score --rm rm/model.bin --tokenizer tok.bin --input in/scored.jsonl --jsonl "
                                  "> in/scored_out.jsonl"),
                     0);
    char path[512];
    snprintf(path, sizeof path, "%s/in/scored_out.jsonl", c->dir);
    JsonlReader r;
    Error err = {0};
    assert_int_equal(jsonl_open(&r, path, &err), 0);
    cJSON *o;
    int rc = jsonl_next(&r, &o, &err);
    if (rc != 1) print_message("%s\n", err.msg);
    assert_int_equal(rc, 1);
    double reward;
    assert_int_equal(jsonl_number(&r, o, "reward", 0, &reward, &err), 0);
    assert_true(reward != 5);
    cJSON_Delete(o);
    assert_int_equal(jsonl_next(&r, &o, &err), 0);
    jsonl_close(&r);
}

// ------------------------------------------------------------------ messages

static void test_sample_names_line_of_long_prompt(void **state) {
    const Chain *c = *state;
    char text[8192] = "{\"prompt\":\"Tell me a fortune.\"}\n\n{\"prompt\":\"";
    for (int i = 0; i < 300; i++) strcat(text, "word ");
    strcat(text, "\"}\n");
    const char *p = write_input(c, "long_prompt.jsonl", text);
    assert_refused(c, "in/long_prompt.jsonl:3: prompt is",
                   "sample --model sft/model.bin --tokenizer tok.bin --prompts in/%s --max-new 4", p);
}

static void test_train_rm_names_line_of_bad_pair(void **state) {
    const Chain *c = *state;
    char text[8192] = "";
    const char *good = "{\"prompt\":\"Tell me a fortune.\",\"chosen\":\"Cats purr.\",\"rejected\":\"no\"}\n";
    strcat(text, good), strcat(text, "\n"), strcat(text, good), strcat(text, "\n");
    strcat(text, "{\"prompt\":\"");
    for (int i = 0; i < 300; i++) strcat(text, "word ");
    strcat(text, "\",\"chosen\":\"a\",\"rejected\":\"b\"}\n");
    const char *p = write_input(c, "pairs_bad_line5.jsonl", text);
    assert_refused(c, "in/pairs_bad_line5.jsonl:5: ",
                   "train_rm --config smoke --init sft/model.bin --tokenizer tok.bin --pairs in/%s "
                   "--val prefs/prefs_val.jsonl --out in/rm_bad",
                   p);
}

// ------------------------------------------------------------------ sft held-out

static void test_sft_with_few_held_out_pairs(void **state) {
    const Chain *c = *state;
    const char *val = write_input(c, "val2.jsonl",
                                  "{\"prompt\":\"Give me a fortune on computers.\",\"response\":\"Kiss your keyboard goodbye!\"}\n"
                                  "{\"prompt\":\"Give me a fortune on computers.\",\"response\":\"Memory fault - where am I?\"}\n");
    char out[65536];
    assert_int_equal(run_in_chain(c, out, sizeof out,
                                  "sft --config smoke --steps 4 --eval-every 2 --eval-prompts 2 --init pre/model.bin "
                                  "--tokenizer tok.bin --data %s/sft.jsonl --val in/%s --out in/sft_val2",
                                  c->data, val),
                     0);
    char *samples = read_text(c, "in/sft_val2/samples.txt");
    int prompts = 0;
    for (const char *s = samples; (s = strstr(s, "prompt:")) != NULL; s++) prompts++;
    assert_true(prompts > 0 && prompts % 2 == 0);
    free(samples);
    const char *empty = write_input(c, "val0.jsonl", "\n");
    assert_refused(c, "in/val0.jsonl: no pairs",
                   "sft --config smoke --steps 4 --init pre/model.bin --tokenizer tok.bin --data %s/sft.jsonl "
                   "--val in/%s --out in/sft_val0",
                   c->data, empty);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_checkpoint_is_refused),
        cmocka_unit_test(test_fifo_jsonl_is_refused),
        cmocka_unit_test(test_fifo_tokenizer_is_refused),
        cmocka_unit_test(test_fifo_config_txt_is_refused),
        cmocka_unit_test(test_fifo_lineage_parent_is_refused),
        cmocka_unit_test(test_jsonl_two_records_on_a_line_are_refused),
        cmocka_unit_test(test_jsonl_duplicate_key_is_refused),
        cmocka_unit_test(test_jsonl_nul_escape_is_refused),
        cmocka_unit_test(test_jsonl_reader_is_strict),
        cmocka_unit_test(test_json_numbers_read_back_bit_for_bit),
        cmocka_unit_test(test_prefs_split_compares_nfc_text),
        cmocka_unit_test(test_fortune_clean_gives_nfc),
        cmocka_unit_test(test_non_string_category_is_refused_everywhere),
        cmocka_unit_test(test_sample_json_is_valid_utf8),
        cmocka_unit_test(test_score_jsonl_output_reads_back),
        cmocka_unit_test(test_sample_names_line_of_long_prompt),
        cmocka_unit_test(test_train_rm_names_line_of_bad_pair),
        cmocka_unit_test(test_sft_with_few_held_out_pairs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
