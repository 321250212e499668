// Tests of preference pairs: the reader of preference files on good and
// malformed input, and an end-to-end smoke run of `prefs` on a smoke-config
// language model: output that parses, gold scores the annotator (and score
// --gold) reproduces exactly from the fields each line records,
// labels that agree with the gold order about as often as tau predicts, and
// bad input refused with clear messages.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/jsonl.h"
#include "data/annotator.h"
#include "data/prefs_io.h"
#include "tests/testutil.h"

typedef struct {
    char dir[256], bpe[512], pretrain[512], prefs[512], score[512], fortunes[512], prompts[512], data[512];
    char tok[600], policy[600];
} Fixture;

static void write_text(const char *path, const char *text) {
    Error err;
    if (write_file_atomic(path, text, strlen(text), &err)) fail_msg("%s", err.msg);
}

// ---------------------------------------------------------------- reader

static void test_reader_good_file(void **state) {
    Fixture *f = *state;
    char path[600];
    snprintf(path, sizeof path, "%s/good.jsonl", f->dir);
    write_text(path, "{\"prompt\":\"p1\",\"chosen\":\"yes \\u00e9\",\"rejected\":\"no\",\"gold_chosen\":1.5,\"gold_rejected\":-0.25}\n"
                     "\n"
                     "{\"prompt\":\"p2\",\"chosen\":\"\",\"rejected\":\"b\",\"source\":\"mine\"}\n");
    PrefPair *pairs;
    size_t n;
    Error err;
    assert_int_equal(prefs_load(path, &pairs, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(pairs[0].prompt, "p1");
    assert_string_equal(pairs[0].chosen, "yes \xc3\xa9");
    assert_string_equal(pairs[0].rejected, "no");
    assert_int_equal(pairs[0].has_gold, 1);
    assert_true(pairs[0].gold_chosen == 1.5 && pairs[0].gold_rejected == -0.25);
    assert_string_equal(pairs[1].chosen, "");
    assert_int_equal(pairs[1].has_gold, 0); // gold is optional; other fields are ignored
    prefs_free(pairs, n);
    write_text(path, "");
    assert_int_equal(prefs_load(path, &pairs, &n, &err), 0);
    assert_int_equal(n, 0);
    prefs_free(pairs, n);
}

static void expect_reader_error(const Fixture *f, const char *text, const char *words) {
    char path[600];
    snprintf(path, sizeof path, "%s/bad.jsonl", f->dir);
    write_text(path, text);
    PrefPair *pairs = (PrefPair *)1;
    size_t n = 7;
    Error err;
    assert_int_equal(prefs_load(path, &pairs, &n, &err), -1);
    assert_null(pairs);
    assert_int_equal(n, 0);
    char where[64];
    snprintf(where, sizeof where, "bad.jsonl:2");
    if (!strstr(err.msg, where) || !strstr(err.msg, words))
        fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", err.msg, where, words);
}

static void test_reader_refuses_malformed_lines(void **state) {
    Fixture *f = *state;
    const char *good = "{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\"}\n";
    char text[512];
    const char *bad[][2] = {
        {"{\"prompt\":\"p\",\"chosen\":\"a\"", ""},
        {"{\"prompt\":\"p\",\"rejected\":\"b\"}", "\"chosen\""},
        {"{\"chosen\":\"a\",\"rejected\":\"b\"}", "\"prompt\""},
        {"{\"prompt\":\"p\",\"chosen\":5,\"rejected\":\"b\"}", "must be a string"},
        {"{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\",\"gold_chosen\":\"high\",\"gold_rejected\":1}", "must be a number"},
        {"{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\",\"gold_chosen\":1}", "without \"gold_rejected\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "%s%s\n%s", good, bad[i][0], good);
        expect_reader_error(f, text, bad[i][1]);
    }
    PrefPair *pairs;
    size_t n;
    Error err;
    char path[600];
    snprintf(path, sizeof path, "%s/absent.jsonl", f->dir);
    assert_int_equal(prefs_load(path, &pairs, &n, &err), -1);
    assert_non_null(strstr(err.msg, "absent.jsonl"));
}

// ---------------------------------------------------------------- prefs

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    make_temp_dir(f->dir, sizeof f->dir);
    bin_path(f->bpe, sizeof f->bpe, "bpe");
    bin_path(f->pretrain, sizeof f->pretrain, "pretrain");
    bin_path(f->prefs, sizeof f->prefs, "prefs");
    bin_path(f->score, sizeof f->score, "score");
    src_path(f->fortunes, sizeof f->fortunes, "data/fortunes.jsonl");
    src_path(f->prompts, sizeof f->prompts, "data/prompts_train.jsonl");
    src_path(f->data, sizeof f->data, "data");
    snprintf(f->tok, sizeof f->tok, "%s/tokenizer.bin", f->dir);
    snprintf(f->policy, sizeof f->policy, "%s/lm/model.bin", f->dir);
    char out[8192];
    // The policy only has to produce text: a short smoke pretraining will do.
    int rc = run_cmd(out, sizeof out, "%s train --input %s --jsonl-field text --vocab 512 --out %s && "
                     "%s --config smoke --steps 30 --tokenizer %s --data %s --out %s/lm --threads 2",
                     f->bpe, f->fortunes, f->tok, f->pretrain, f->tok, f->fortunes, f->dir);
    if (rc != 0) printf("%s\n", out);
    *state = f;
    return rc;
}

static int teardown(void **state) {
    Fixture *f = *state;
    char out[256];
    run_cmd(out, sizeof out, "rm -rf %s", f->dir);
    free(f);
    return 0;
}

static int run_prefs(const Fixture *f, char *out, size_t n, const char *run, const char *extra) {
    return run_cmd(out, n, "%s --policy %s --tokenizer %s --prompts %s --data-dir %s --out %s/%s "
                   "--pairs 32 --threads 2 %s", f->prefs, f->policy, f->tok, f->prompts, f->data,
                   f->dir, run, extra);
}

// What a line of prefs' output records beside the pair that prefs_load
// skips: whether each response ended, and the category it was scored
// against (-1 when the line has none).
typedef struct {
    int ended[2];
    int category;
} PairExtras;

static PairExtras *read_extras(const Annotator *a, const char *path, size_t n) {
    PairExtras *x = calloc(n ? n : 1, sizeof *x);
    JsonlReader r;
    Error err;
    cJSON *o;
    assert_non_null(x);
    if (jsonl_open(&r, path, &err)) fail_msg("%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(jsonl_next(&r, &o, &err), 1);
        assert_int_equal(jsonl_bool(&r, o, "ended_chosen", 0, &x[i].ended[0], &err), 0);
        assert_int_equal(jsonl_bool(&r, o, "ended_rejected", 0, &x[i].ended[1], &err), 0);
        // The category: the prompt file's, which prompts_train.jsonl gives
        // for every prompt.
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "category");
        assert_true(cJSON_IsString(c));
        x[i].category = annotator_category_index(a, c->valuestring);
        assert_true(x[i].category >= 0);
        cJSON_Delete(o);
    }
    assert_int_equal(jsonl_next(&r, &o, &err), 0);
    jsonl_close(&r);
    return x;
}

// Checks one output file; adds to the count of pairs whose label follows the
// gold order and to the count that tau predicts (sum of sigmoid(|dg| / tau)).
static size_t check_pairs(const Fixture *f, const Annotator *a, const char *run, const char *name,
                          double tau, double *agree, double *expected, double *variance) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s/%s", f->dir, run, name);
    PrefPair *pairs;
    size_t n;
    Error err;
    if (prefs_load(path, &pairs, &n, &err)) fail_msg("%s", err.msg);
    PairExtras *extras = read_extras(a, path, n);
    for (size_t i = 0; i < n; i++) {
        const PrefPair *p = &pairs[i];
        assert_true(p->has_gold);
        assert_string_not_equal(p->chosen, p->rejected);
        // The annotator reproduces both gold scores exactly from what the
        // line records: the texts, ended_chosen/ended_rejected and category.
        const char *texts[2] = {p->chosen, p->rejected};
        double golds[2] = {p->gold_chosen, p->gold_rejected};
        for (int k = 0; k < 2; k++) {
            double g = annotator_gold_category(a, extras[i].category, texts[k], extras[i].ended[k], NULL);
            if (g != golds[k])
                fail_msg("%s:%zu: gold %.17g, recomputed %.17g (ended %d, category %d)", path, i + 1, golds[k], g,
                         extras[i].ended[k], extras[i].category);
        }
        double d = fabs(p->gold_chosen - p->gold_rejected);
        if (d == 0) continue;
        double q = 1 / (1 + exp(-d / tau));
        *agree += p->gold_chosen > p->gold_rejected;
        *expected += q;
        *variance += q * (1 - q);
    }
    prefs_free(pairs, n);
    free(extras);
    return n;
}

// Pairs of run/prefs.jsonl and run/prefs_val.jsonl whose gold scores are equal.
static size_t count_ties(const Fixture *f, const char *run) {
    size_t ties = 0;
    const char *names[2] = {"prefs.jsonl", "prefs_val.jsonl"};
    for (int k = 0; k < 2; k++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s/%s", f->dir, run, names[k]);
        PrefPair *pairs;
        size_t n;
        Error err;
        if (prefs_load(path, &pairs, &n, &err)) fail_msg("%s", err.msg);
        for (size_t i = 0; i < n; i++) ties += pairs[i].gold_chosen == pairs[i].gold_rejected;
        prefs_free(pairs, n);
    }
    return ties;
}

static void check_run(const Fixture *f, const char *run, double tau) {
    char dir[4096];
    src_path(dir, sizeof dir, "data");
    Annotator *a;
    Error err;
    if (annotator_load(&a, dir, &err)) fail_msg("%s", err.msg);
    double agree = 0, expected = 0, variance = 0;
    size_t n = check_pairs(f, a, run, "prefs.jsonl", tau, &agree, &expected, &variance);
    size_t n_val = check_pairs(f, a, run, "prefs_val.jsonl", tau, &agree, &expected, &variance);
    annotator_free(a);
    assert_int_equal(n + n_val, 32);
    assert_true(n_val >= 2 && n_val <= 4); // 10% held out
    // Agreement with the gold order: what the Bradley-Terry draw predicts,
    // within 4 standard deviations (plus one pair for rounding).
    printf("%s: %.0f pairs agree with the gold order, %.1f expected at tau %g\n", run, agree,
           expected, tau);
    assert_true(fabs(agree - expected) <= 4 * sqrt(variance) + 1);
}

static void test_prefs_writes_labelled_pairs(void **state) {
    Fixture *f = *state;
    char out[16384];
    int rc = run_prefs(f, out, sizeof out, "run", "");
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "label noise"));
    check_run(f, "run", 0.2);
    // score --gold recomputes every gold score of the file exactly.
    for (int v = 0; v < 2; v++) {
        char cmd[2048], sout[1 << 16], serr[4096], want[128];
        snprintf(cmd, sizeof cmd, "%s --gold --data-dir %s --input %s/run/%s", f->score, f->data, f->dir,
                 v ? "prefs_val.jsonl" : "prefs.jsonl");
        assert_int_equal(run_split(cmd, 60, sout, sizeof sout, serr, sizeof serr), 0);
        long pairs = 0;
        assert_int_equal(sscanf(serr, "score: %ld pairs", &pairs), 1);
        snprintf(want, sizeof want, "recomputed gold equals the file's on %ld/%ld;", pairs, pairs);
        if (!strstr(serr, want)) fail_msg("%s: stderr '%s' lacks '%s'", cmd, serr, want);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/run/config.txt", f->dir);
    unsigned char *config;
    size_t len;
    Error err;
    assert_int_equal(read_file(path, 1 << 20, &config, &len, &err), 0);
    assert_non_null(strstr((char *)config, "tau = 0.2"));
    assert_non_null(strstr((char *)config, "val-frac = 0.1"));
    free(config);
    // A near-zero tau labels by the gold order itself.
    assert_int_equal(run_prefs(f, out, sizeof out, "sharp", "--tau 0.001 --seed 5"), 0);
    check_run(f, "sharp", 0.001);
    // The same seed gives the same pairs.
    assert_int_equal(run_prefs(f, out, sizeof out, "again", ""), 0);
    assert_int_equal(run_cmd(out, sizeof out, "cmp %s/run/prefs.jsonl %s/again/prefs.jsonl && "
                             "cmp %s/run/prefs_val.jsonl %s/again/prefs_val.jsonl",
                             f->dir, f->dir, f->dir, f->dir), 0);
}

// Pairs the annotator scores equal are sampled again unless --keep-ties: a
// coin-flip label carries no preference. Since the gold has a fluency part,
// only responses with the same words (differing in case, digits or
// punctuation) tie, which the smoke policy seldom writes (0 of 200 pairs in
// one run): this checks that no tie is left by default and that both
// summaries count what the files hold, not that ties are frequent.
static void test_prefs_resamples_ties(void **state) {
    Fixture *f = *state;
    char out[16384];
    assert_int_equal(run_prefs(f, out, sizeof out, "resampled", "--seed 11"), 0);
    printf("%s", out);
    long resampled = -1;
    const char *at = strstr(out, "identical pairs resampled; ");
    assert_non_null(at);
    assert_int_equal(sscanf(at, "identical pairs resampled; %ld pairs with equal gold scores resampled", &resampled), 1);
    assert_int_equal(count_ties(f, "resampled"), 0);
    assert_int_equal(run_prefs(f, out, sizeof out, "kept", "--seed 11 --keep-ties"), 0);
    printf("%s", out);
    size_t kept = count_ties(f, "kept");
    char expect[96];
    snprintf(expect, sizeof expect, "%zu pairs with equal gold scores kept (--keep-ties)", kept);
    assert_non_null(strstr(out, expect));
    printf("ties: %ld resampled without --keep-ties, %zu of 32 pairs kept with it\n", resampled, kept);
    assert_true(resampled >= 0);
}

// Each pair's first response is drawn at --temperature, its second at
// --temperature2: with the first greedy, the pairs of a prompt share one
// response (the greedy one) and differ in the other. ("Mostly": a greedy
// choice between near-equal logits can flip with the batch's composition,
// since the matrix products round differently for other row counts.)
static void test_prefs_second_temperature(void **state) {
    Fixture *f = *state;
    char out[16384], path[600];
    snprintf(path, sizeof path, "%s/two.jsonl", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{\"prompt\": \"Tell me a fortune about love.\"}\n{\"prompt\": \"Say something witty about work.\"}\n", fp);
    fclose(fp);
    char extra[800];
    snprintf(extra, sizeof extra, "--prompts %s --val-frac 0 --temperature 0 --temperature2 1", path);
    int rc = run_prefs(f, out, sizeof out, "greedy", extra);
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "temperatures 0 and 1"));
    snprintf(path, sizeof path, "%s/greedy/prefs.jsonl", f->dir);
    PrefPair *pairs;
    size_t n;
    Error err;
    if (prefs_load(path, &pairs, &n, &err)) fail_msg("%s", err.msg);
    assert_int_equal(n, 32);
    for (int k = 0; k < 2; k++) {
        const char *topic = k ? "work" : "love";
        // The response that occurs in the most pairs of this prompt.
        const char *modal = NULL;
        int best = 0, pairs_of_prompt = 0;
        for (size_t i = 0; i < n; i++) {
            if (!strstr(pairs[i].prompt, topic)) continue;
            pairs_of_prompt++;
            const char *cand[2] = {pairs[i].chosen, pairs[i].rejected};
            for (int c = 0; c < 2; c++) {
                int count = 0;
                for (size_t j = 0; j < n; j++)
                    count += strstr(pairs[j].prompt, topic) &&
                             (!strcmp(pairs[j].chosen, cand[c]) || !strcmp(pairs[j].rejected, cand[c]));
                if (count > best) best = count, modal = cand[c];
            }
        }
        // The other responses are fresh samples: no two alike.
        int distinct_others = 0;
        for (size_t i = 0; i < n; i++) {
            if (!strstr(pairs[i].prompt, topic)) continue;
            const char *other = strcmp(pairs[i].chosen, modal) ? pairs[i].chosen : pairs[i].rejected;
            int seen = 0;
            for (size_t j = 0; j < i; j++)
                seen |= strstr(pairs[j].prompt, topic) && (!strcmp(pairs[j].chosen, other) || !strcmp(pairs[j].rejected, other));
            distinct_others += !seen;
        }
        printf("%s: %d pairs, %d with the greedy response, %d distinct others\n", topic, pairs_of_prompt, best,
               distinct_others);
        assert_true(pairs_of_prompt >= 8);
        assert_true(4 * best >= 3 * pairs_of_prompt);
        assert_true(4 * distinct_others >= 3 * pairs_of_prompt);
    }
    prefs_free(pairs, n);
}

// prefs exits `status` (1: bad input, 2: a usage error) with "prefs: ...words...".
static void expect_prefs_status(const Fixture *f, int status, const char *args, const char *words) {
    char out[8192];
    int rc = run_cmd(out, sizeof out, "%s --out %s/bad --pairs 4 --data-dir %s %s", f->prefs,
                     f->dir, f->data, args);
    if (rc != status || strncmp(out, "prefs: ", 7) != 0 || !strstr(out, words))
        fail_msg("exit %d, output \"%s\": expected %d and \"prefs: ...%s...\"", rc, out, status, words);
}

static void expect_prefs_error(const Fixture *f, const char *args, const char *words) {
    expect_prefs_status(f, 1, args, words);
}

static void test_prefs_refuses_bad_input(void **state) {
    Fixture *f = *state;
    char args[4096], out[8192];
    snprintf(args, sizeof args, "--policy %s/none.bin --tokenizer %s", f->dir, f->tok);
    expect_prefs_error(f, args, "none.bin");
    // A checkpoint with one payload byte changed fails its checksum.
    assert_int_equal(run_cmd(out, sizeof out, "cp %s %s/corrupt.bin && printf 'X' | dd of=%s/corrupt.bin "
                             "bs=1 seek=2000 conv=notrunc", f->policy, f->dir, f->dir), 0);
    snprintf(args, sizeof args, "--policy %s/corrupt.bin --tokenizer %s", f->dir, f->tok);
    expect_prefs_error(f, args, "corrupt.bin");
    assert_int_equal(run_cmd(out, sizeof out, "head -c 100 %s > %s/short.bin", f->policy, f->dir), 0);
    snprintf(args, sizeof args, "--policy %s/short.bin --tokenizer %s", f->dir, f->tok);
    expect_prefs_error(f, args, "short.bin");
    // Another tokenizer than the policy's.
    assert_int_equal(run_cmd(out, sizeof out, "%s train --input %s --jsonl-field text --vocab 300 --out %s/other.bin",
                             f->bpe, f->fortunes, f->dir), 0);
    snprintf(args, sizeof args, "--policy %s --tokenizer %s/other.bin", f->policy, f->dir);
    expect_prefs_error(f, args, "tokenizer");
    // Prompts: a malformed line and an unknown category, named by file:line.
    snprintf(args, sizeof args, "%s/p.jsonl", f->dir);
    write_text(args, "{\"prompt\":\"Tell me about love.\"}\n{\"prompt\":\"x\",\"category\":\"snacks\"}\n");
    snprintf(args, sizeof args, "--policy %s --tokenizer %s --prompts %s/p.jsonl", f->policy, f->tok, f->dir);
    expect_prefs_error(f, args, "p.jsonl:2: unknown category \"snacks\"");
    snprintf(args, sizeof args, "%s/p.jsonl", f->dir);
    write_text(args, "{\"prompt\":\"Tell me about love.\"}\n{\"prompt\":3}\n");
    snprintf(args, sizeof args, "--policy %s --tokenizer %s --prompts %s/p.jsonl", f->policy, f->tok, f->dir);
    expect_prefs_error(f, args, "p.jsonl:2");
    snprintf(args, sizeof args, "--policy %s --tokenizer %s --tau 0", f->policy, f->tok);
    expect_prefs_status(f, 2, args, "--tau");
    expect_prefs_status(f, 2, "--tokenizer x", "--policy");
    assert_int_equal(run_cmd(out, sizeof out, "%s --help", f->prefs), 0);
    assert_non_null(strstr(out, "--val-frac"));
    assert_non_null(strstr(out, "default: 0.2"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_good_file),
        cmocka_unit_test(test_reader_refuses_malformed_lines),
        cmocka_unit_test(test_prefs_writes_labelled_pairs),
        cmocka_unit_test(test_prefs_second_temperature),
        cmocka_unit_test(test_prefs_resamples_ties),
        cmocka_unit_test(test_prefs_refuses_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
