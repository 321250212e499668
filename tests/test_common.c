// Tests of the shared helpers: RNG, byte reader, atomic files, JSONL, options.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bucket.h"
#include "common/bytes.h"
#include "common/cli.h"
#include "common/fileio.h"
#include "common/jsonl.h"
#include "common/numfmt.h"
#include "common/rng.h"

static void test_rng_reproducible_and_uniform(void **state) {
    (void)state;
    Rng a, b;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    double sum = 0, sumsq = 0;
    int n = 100000;
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(&a);
        assert_true(u == rng_uniform(&b));
        assert_true(u >= 0.0f && u < 1.0f);
        sum += u;
        sumsq += (double)u * u;
    }
    // Uniform(0,1): mean 1/2, variance 1/12; 5 standard errors of slack.
    assert_true(fabs(sum / n - 0.5) < 5 * sqrt(1.0 / 12 / n));
    assert_true(fabs(sumsq / n - sum / n * sum / n - 1.0 / 12) < 0.002);
    Rng c;
    rng_seed(&c, 43);
    rng_seed(&a, 42);
    assert_true(rng_u64(&a) != rng_u64(&c));
    // rng_below stays in range and hits every value.
    int seen[7] = {0};
    for (int i = 0; i < 7000; i++) seen[rng_below(&a, 7)]++;
    for (int i = 0; i < 7; i++) assert_true(seen[i] > 800 && seen[i] < 1200);
}

static void test_rng_normal_moments(void **state) {
    (void)state;
    Rng r;
    rng_seed(&r, 7);
    double sum = 0, sumsq = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = rng_normal(&r);
        sum += x;
        sumsq += x * x;
    }
    assert_true(fabs(sum / n) < 0.02);
    assert_true(fabs(sumsq / n - 1.0) < 0.02);
}

// Padding of a walk: sum over batches of (longest row) x batch, over the rows' own total.
static double padding_ratio(const size_t *walk, size_t n, const int *length, int batch) {
    double padded = 0, real = 0;
    for (size_t lo = 0; lo + batch <= n; lo += batch) {
        int longest = 0;
        for (int k = 0; k < batch; k++) longest = length[walk[lo + k]] > longest ? length[walk[lo + k]] : longest;
        for (int k = 0; k < batch; k++) real += length[walk[lo + k]];
        padded += (double)longest * batch;
    }
    return padded / real;
}

static void test_bucketed_index_covers_epochs_and_cuts_padding(void **state) {
    (void)state;
    enum { N = 1000, B = 16 };
    int length[N];
    Rng rng;
    rng_seed(&rng, 5);
    for (int i = 0; i < N; i++) length[i] = 1 + (int)rng_below(&rng, 128);
    size_t order[N], again[N], walk[2][N], plain[N], perm[N];
    long epoch = -1, epoch2 = -1, perm_epoch = -1;
    for (int e = 0; e < 2; e++) {
        int seen[N] = {0};
        for (size_t i = 0; i < N; i++) {
            walk[e][i] = bucketed_index(N, length, B, 9, (uint64_t)e * N + i, order, &epoch);
            assert_true(walk[e][i] < N);
            seen[walk[e][i]]++;
        }
        for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1); // every row once an epoch
    }
    assert_memory_not_equal(walk[0], walk[1], sizeof walk[0]); // a new walk each epoch
    // The position alone fixes the row: jumping straight into epoch 1 agrees.
    for (size_t i = N; i-- > 0;) assert_int_equal(bucketed_index(N, length, B, 9, N + i, again, &epoch2), walk[1][i]);
    for (size_t i = 0; i < N; i++) plain[i] = shuffled_index(N, 9, i, perm, &perm_epoch);
    double bucketed = padding_ratio(walk[0], N, length, B), shuffled = padding_ratio(plain, N, length, B);
    // Uniform lengths in 1..128: a plain shuffle pads to about twice the work;
    // pools of 512 rows sorted by length leave batches within a few tokens.
    assert_true(shuffled > 1.6);
    assert_true(bucketed < 1.1);
    // Batches are visited in a shuffled order, not shortest first.
    int rises = 0;
    for (size_t lo = B; lo + B <= 512; lo += B) rises += length[walk[0][lo]] > length[walk[0][lo - B]];
    assert_true(rises > 5 && rises < 25);
}

static void test_byte_reader_bounds(void **state) {
    (void)state;
    uint8_t buf[12];
    put_u32(buf, 0xDEADBEEF);
    put_u64(buf + 4, 0x0102030405060708ull);
    assert_int_equal(buf[0], 0xEF); // little-endian on any host
    ByteReader br;
    br_init(&br, buf, sizeof buf);
    assert_int_equal(br_u32(&br), 0xDEADBEEF);
    assert_true(br_u64(&br) == 0x0102030405060708ull);
    assert_int_equal(br.ok, 1);
    assert_int_equal(br_u32(&br), 0); // past the end
    assert_int_equal(br.ok, 0);
    br_init(&br, buf, sizeof buf);
    assert_null(br_bytes(&br, SIZE_MAX)); // no overflow in the length check
    put_f32(buf, -1.5f);
    assert_true(get_f32(buf) == -1.5f);
}

static void test_atomic_write_keeps_old_file_on_abort(void **state) {
    (void)state;
    char dir[] = "/tmp/minirlhf_test_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/f.bin", dir);
    Error err;
    assert_int_equal(write_file_atomic(path, "old", 3, &err), 0);
    AtomicFile af;
    assert_int_equal(atomic_open(&af, path, &err), 0);
    assert_int_equal(atomic_write(&af, "new!", 4, &err), 0);
    atomic_abort(&af);
    unsigned char *data;
    size_t len;
    assert_int_equal(read_file(path, 100, &data, &len, &err), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "old", 3);
    free(data);
    assert_false(file_exists(af.tmp_path));
    // A size limit is enforced.
    assert_int_equal(read_file(path, 2, &data, &len, &err), -1);
    assert_non_null(strstr(err.msg, "too large"));
    // Writing into a folder that does not exist fails cleanly.
    char bad[300];
    snprintf(bad, sizeof bad, "%s/nope/f.bin", dir);
    assert_int_equal(write_file_atomic(bad, "x", 1, &err), -1);
    assert_non_null(strstr(err.msg, "nope"));
    unlink(path);
    rmdir(dir);
}

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_jsonl_errors_name_file_and_line(void **state) {
    (void)state;
    const char *path = "/tmp/minirlhf_test_jsonl.jsonl";
    write_text(path, "{\"prompt\": \"a\", \"n\": 2, \"t\": true, \"f\": false}\n\n{\"prompt\": 3}\n{bad json\n");
    JsonlReader r;
    Error err;
    cJSON *o;
    assert_int_equal(jsonl_open(&r, path, &err), 0);
    assert_int_equal(jsonl_next(&r, &o, &err), 1);
    assert_string_equal(jsonl_string(&r, o, "prompt", &err), "a");
    double n;
    assert_int_equal(jsonl_number(&r, o, "n", 0, &n, &err), 0);
    assert_true(n == 2.0);
    assert_int_equal(jsonl_number(&r, o, "gold", 1, &n, &err), 1);
    int b = 7;
    assert_int_equal(jsonl_bool(&r, o, "ended", 1, &b, &err), 1);
    assert_int_equal(b, 7); // absent: left as it was
    assert_int_equal(jsonl_bool(&r, o, "ended", 0, &b, &err), -1);
    assert_non_null(strstr(err.msg, "jsonl.jsonl:1: missing field \"ended\""));
    assert_int_equal(jsonl_bool(&r, o, "n", 1, &b, &err), -1);
    assert_non_null(strstr(err.msg, "jsonl.jsonl:1: field \"n\" must be true or false"));
    assert_int_equal(jsonl_bool(&r, o, "t", 1, &b, &err), 0);
    assert_int_equal(b, 1);
    assert_int_equal(jsonl_bool(&r, o, "f", 0, &b, &err), 0);
    assert_int_equal(b, 0);
    cJSON_Delete(o);
    assert_int_equal(jsonl_next(&r, &o, &err), 1);
    assert_null(jsonl_string(&r, o, "prompt", &err));
    assert_non_null(strstr(err.msg, "jsonl.jsonl:3: field \"prompt\" must be a string"));
    cJSON_Delete(o);
    assert_int_equal(jsonl_next(&r, &o, &err), -1);
    assert_non_null(strstr(err.msg, ":4: malformed JSON"));
    jsonl_close(&r);
    unlink(path);
}

// cJSON alone prints a parsed -2.3128319668176003 as -2.3128319668176, a
// different double; jsonl_exact_numbers keeps every number, nested ones too.
static void test_jsonl_exact_numbers_round_trip(void **state) {
    (void)state;
    const char *text = "{\"a\":-2.3128319668176003,\"b\":{\"c\":[0.1,7,1e-300]},\"d\":\"x\",\"e\":true}";
    cJSON *o = cJSON_Parse(text);
    assert_non_null(o);
    double a = cJSON_GetObjectItem(o, "a")->valuedouble;
    char *plain = cJSON_PrintUnformatted(o);
    cJSON *back = cJSON_Parse(plain);
    assert_true(cJSON_GetObjectItem(back, "a")->valuedouble != a); // what the function is for
    cJSON_free(plain), cJSON_Delete(back);
    assert_int_equal(jsonl_exact_numbers(o), 0);
    char *exact = cJSON_PrintUnformatted(o);
    assert_string_equal(exact, "{\"a\":-2.3128319668176003,\"b\":{\"c\":[0.1,7,1e-300]},\"d\":\"x\",\"e\":true}");
    cJSON_free(exact), cJSON_Delete(o);
}

static void test_cli_validates_ranges_and_unknown_options(void **state) {
    (void)state;
    int steps = 10, flag = 0;
    float lr = 1e-3f;
    const char *out = NULL;
    CliOption opts[] = {
        {"steps", CLI_INT, &steps, 1, 1000, "steps"},
        {"lr", CLI_FLOAT, &lr, 0, 1, "learning rate"},
        {"out", CLI_STRING, &out, 0, 0, "output"},
        {"verbose", CLI_FLAG, &flag, 0, 0, "talk"},
    };
    Error err;
    char *ok[] = {"prog", "--steps", "20", "--lr=0.5", "--out", "d", "--verbose"};
    assert_int_equal(cli_parse("prog", opts, 4, 7, ok, NULL, &err), 0);
    assert_int_equal(steps, 20);
    assert_true(lr == 0.5f);
    assert_string_equal(out, "d");
    assert_int_equal(flag, 1);
    char *range[] = {"prog", "--steps", "0"};
    assert_int_equal(cli_parse("prog", opts, 4, 3, range, NULL, &err), ERR_USAGE);
    assert_non_null(strstr(err.msg, "--steps: 0 is out of range"));
    char *junk[] = {"prog", "--lr", "0.1x"};
    assert_int_equal(cli_parse("prog", opts, 4, 3, junk, NULL, &err), ERR_USAGE);
    assert_non_null(strstr(err.msg, "not a number"));
    char *unknown[] = {"prog", "--bogus", "1"};
    assert_int_equal(cli_parse("prog", opts, 4, 3, unknown, NULL, &err), ERR_USAGE);
    assert_non_null(strstr(err.msg, "unknown option '--bogus'"));
    char *missing[] = {"prog", "--steps"};
    assert_int_equal(cli_parse("prog", opts, 4, 2, missing, NULL, &err), ERR_USAGE);
    assert_non_null(strstr(err.msg, "--steps needs a value"));
    char *help[] = {"prog", "--help"};
    assert_int_equal(cli_parse("prog", opts, 4, 2, help, NULL, &err), CLI_HELP);
    char *peek[] = {"prog", "--config=smoke", "--x", "1"};
    assert_string_equal(cli_peek(4, peek, "config"), "smoke");
    assert_null(cli_peek(4, peek, "conf"));
}

// Every float and double read back bit for bit, over random bit patterns
// (every exponent) and values that need all 9 or 17 digits; short values stay short.
static void test_numfmt_round_trips_exactly(void **state) {
    (void)state;
    char buf[NUMFMT_MAX];
    Rng rng;
    rng_seed(&rng, 7);
    for (int i = 0; i < 200000; i++) {
        uint32_t bits32 = (uint32_t)rng_u64(&rng);
        uint64_t bits64 = rng_u64(&rng);
        float f;
        double d;
        memcpy(&f, &bits32, sizeof f);
        memcpy(&d, &bits64, sizeof d);
        if (isfinite(f)) {
            float back = strtof(fmt_float(buf, f), NULL);
            assert_memory_equal(&back, &f, sizeof f);
        }
        if (isfinite(d)) {
            double back = strtod(fmt_double(buf, d), NULL);
            assert_memory_equal(&back, &d, sizeof d);
        }
    }
    assert_string_equal(fmt_float(buf, 0.1f), "0.1");
    assert_string_equal(fmt_double(buf, 0.1), "0.1");
    assert_string_equal(fmt_float(buf, 0.1234567f), "0.1234567");
    assert_string_equal(fmt_double(buf, 0.1 + 0.2), "0.30000000000000004");
    assert_string_equal(fmt_float(buf, 1e-45f), "1e-45");
    assert_string_equal(fmt_float(buf, 10.0f), "10"); // %.1g would say 1e+01
    assert_string_equal(fmt_double(buf, 1200.0), "1200");
    assert_string_equal(fmt_double(buf, 1234567.0), "1234567");
    assert_string_equal(fmt_float(buf, 16777216.0f), "16777216");
    assert_string_equal(fmt_double(buf, 1e300), "1e+300");
    assert_string_equal(fmt_double(buf, -0.0), "-0");
    assert_string_equal(fmt_float(buf, NAN), "nan");
    assert_string_equal(fmt_double(buf, -INFINITY), "-inf");
}

// config.txt records a string option whole, however long (it cut values at
// 511 bytes, so a long path came back as another path: found by fuzz_config),
// and a value with a line break, which would read back as another setting, is
// refused before anything is written.
static void test_cli_settings_record_long_strings_whole(void **state) {
    (void)state;
    char *long_path = malloc(5001);
    for (int i = 0; i < 5000; i++) long_path[i] = i % 100 == 99 ? '/' : (char)('a' + i % 26);
    long_path[5000] = '\0';
    const char *out = long_path, *back = NULL;
    // Required, as --out is: the CLI_REQUIRED bit must not hide that it is a string.
    CliOption opts[] = {{"out", CLI_STRING | CLI_REQUIRED, &out, 0, 0, ""}};
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    cli_write_settings(mem, opts, 1);
    fclose(mem);
    Error err;
    CliOption read[] = {{"out", CLI_STRING, &back, 0, 0, ""}};
    assert_int_equal(cli_apply_settings("config.txt", text, len, read, 1, NULL, &err), 0);
    assert_string_equal(back, long_path);
    assert_int_equal(cli_check_recordable(opts, 1, &err), 0);
    const char *broken = "runs/a\nb";
    CliOption bad[] = {{"out", CLI_STRING | CLI_REQUIRED, &broken, 0, 0, ""}};
    assert_int_equal(cli_check_recordable(bad, 1, &err), ERR_USAGE);
    assert_non_null(strstr(err.msg, "--out: the value holds a line break"));
    free(text);
    free(long_path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_reproducible_and_uniform),
        cmocka_unit_test(test_numfmt_round_trips_exactly),
        cmocka_unit_test(test_rng_normal_moments),
        cmocka_unit_test(test_bucketed_index_covers_epochs_and_cuts_padding),
        cmocka_unit_test(test_byte_reader_bounds),
        cmocka_unit_test(test_atomic_write_keeps_old_file_on_abort),
        cmocka_unit_test(test_jsonl_errors_name_file_and_line),
        cmocka_unit_test(test_jsonl_exact_numbers_round_trip),
        cmocka_unit_test(test_cli_validates_ranges_and_unknown_options),
        cmocka_unit_test(test_cli_settings_record_long_strings_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
