// The ckpt command: info statistics match ones computed here from the loaded
// payload, diff of a checkpoint with itself is zero change and cosine 1,
// verify catches a flipped payload byte, lineage follows sft back to
// pretrain and says when a parent is missing or replaced, and bad input is
// refused with one line naming the file.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/checkpoint.h"
#include "model/gpt.h"
#include "tests/testutil.h"

typedef struct {
    char dir[256], bin[512], ckpt[600], pre[600], sft[600];
} Fixture;

// The smoke chain up to SFT (tests/testutil.h: make_smoke_chain). SFT
// runs from inside the folder with a relative --init, so the sft checkpoint
// records a relative parent path, as the pipeline does.
static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    make_temp_dir(f->dir, sizeof f->dir);
    bin_path(f->bin, sizeof f->bin, "");
    bin_path(f->ckpt, sizeof f->ckpt, "ckpt");
    snprintf(f->pre, sizeof f->pre, "%s/pre/model.bin", f->dir);
    snprintf(f->sft, sizeof f->sft, "%s/sft/model.bin", f->dir);
    int rc = make_smoke_chain(f->dir, "sft");
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

// Runs `ckpt ARGS --json` in the fixture folder and parses what it printed to
// stdout (its stderr, inside the parentheses, is dropped).
static cJSON *ckpt_json(const Fixture *f, int expect_rc, const char *args) {
    size_t n = 1 << 20;
    char *out = malloc(n);
    int rc = run_cmd(out, n, "(cd %s && %s %s --json 2>/dev/null)", f->dir, f->ckpt, args);
    if (rc != expect_rc) printf("%s\n", out);
    cJSON *doc = cJSON_Parse(out);
    free(out);
    assert_int_equal(rc, expect_rc);
    assert_non_null(doc);
    return doc;
}

static double num(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static void assert_close(double got, double want, double tol) {
    if (!(fabs(got - want) <= tol * (1 + fabs(want)))) fail_msg("got %.17g, want %.17g", got, want);
}

static int count_lines(const char *text) {
    int n = 0;
    for (; *text; text++) n += *text == '\n';
    return n;
}

static void assert_hex(const char *got, uint32_t want) {
    char hex[16];
    snprintf(hex, sizeof hex, "%08" PRIx32, want);
    assert_string_equal(got, hex);
}

// Mean, population std, min and max of the finite values, and the count of
// the others, computed plainly for comparison with ckpt info.
static void reference_stats(const float *x, size_t n, double out[5]) {
    double sum = 0, lo = INFINITY, hi = -INFINITY, dev = 0;
    size_t finite = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) sum += x[i], finite++, lo = fmin(lo, x[i]), hi = fmax(hi, x[i]);
    double mean = sum / (double)finite;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) dev += (x[i] - mean) * (x[i] - mean);
    out[0] = mean, out[1] = sqrt(dev / (double)finite), out[2] = lo, out[3] = hi, out[4] = (double)(n - finite);
}

static void check_info_tensors(const cJSON *tensors, const CkptHeader *h, const float *params) {
    assert_int_equal(cJSON_GetArraySize(tensors), NUM_PARAMETER_TENSORS);
    size_t sizes[NUM_PARAMETER_TENSORS], at = 0;
    gpt_param_sizes(&h->config, sizes);
    for (int i = 0; i < NUM_PARAMETER_TENSORS; at += sizes[i], i++) {
        const cJSON *t = cJSON_GetArrayItem(tensors, i);
        assert_string_equal(str(t, "name"), gpt_param_name(i));
        assert_int_equal((size_t)num(t, "count"), sizes[i]);
        double want[5];
        reference_stats(params + at, sizes[i], want);
        assert_close(num(t, "mean"), want[0], 1e-9);
        assert_close(num(t, "std"), want[1], 1e-9);
        assert_close(num(t, "min"), want[2], 1e-12); // cJSON prints doubles to ~16 digits
        assert_close(num(t, "max"), want[3], 1e-12);
        assert_int_equal((int)num(t, "nonfinite"), (int)want[4]);
        size_t shape[3];
        int rank = gpt_param_shape(&h->config, i, shape);
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(t, "shape");
        assert_int_equal(cJSON_GetArraySize(js), rank);
        for (int d = 0; d < rank; d++) assert_int_equal((size_t)cJSON_GetArrayItem(js, d)->valuedouble, shape[d]);
    }
}

static void test_info_matches_the_payload(void **state) {
    Fixture *f = *state;
    CkptHeader h, parent;
    float *params;
    Error err;
    assert_int_equal(ckpt_load(f->sft, &h, &params, &err), 0);
    assert_int_equal(ckpt_read_header(f->pre, &parent, &err), 0);
    cJSON *doc = ckpt_json(f, 0, "info sft/model.bin");
    assert_string_equal(str(doc, "magic"), "MRLHFCKP");
    assert_int_equal((int)num(doc, "version"), 1);
    assert_string_equal(str(doc, "kind"), "language-model");
    assert_string_equal(str(doc, "stage"), "sft");
    assert_int_equal((int)num(doc, "step"), 40);
    assert_int_equal((uint64_t)num(doc, "num_params"), h.num_params);
    assert_int_equal((int)num(cJSON_GetObjectItem(doc, "config"), "n_embd"), h.config.n_embd);
    assert_hex(str(doc, "fingerprint"), h.fingerprint);
    assert_hex(str(doc, "payload_crc"), h.payload_crc);
    assert_hex(str(doc, "tokenizer_fp"), h.tokenizer_fp);
    assert_hex(str(doc, "parent_fp"), parent.fingerprint);
    char *pre_absolute = realpath(f->pre, NULL); // sft recorded its --init pre/model.bin absolute
    assert_string_equal(str(doc, "parent_path"), pre_absolute);
    free(pre_absolute);
    assert_close(num(doc, "reward_std"), 1, 0);
    const cJSON *chain = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "lineage"), "chain");
    assert_int_equal(cJSON_GetArraySize(chain), 2);
    assert_string_equal(str(cJSON_GetArrayItem(chain, 1), "stage"), "pretrain");
    check_info_tensors(cJSON_GetObjectItem(doc, "tensors"), &h, params);
    cJSON_Delete(doc);
    // The text form carries the same figures.
    char out[16384], line[256];
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %s info sft/model.bin", f->dir, f->ckpt), 0);
    snprintf(line, sizeof line, "fingerprint   %08" PRIx32 "\n", h.fingerprint);
    assert_non_null(strstr(out, line));
    assert_non_null(strstr(out, " 0  wte       (300, 32)           9600 "));
    assert_non_null(strstr(out, "  pretrain  step 60 "));
    free(params);
}

// NaN and infinity are counted and left out of the other figures.
static void test_info_counts_nonfinite_values(void **state) {
    Fixture *f = *state;
    CkptHeader h;
    float *params;
    Error err;
    char path[700];
    assert_int_equal(ckpt_load(f->sft, &h, &params, &err), 0);
    params[3] = NAN, params[100] = INFINITY, params[200] = -INFINITY; // all in wte
    snprintf(path, sizeof path, "%s/nonfinite.bin", f->dir);
    assert_int_equal(ckpt_save(path, &h, params, &err), 0);
    cJSON *doc = ckpt_json(f, 0, "info nonfinite.bin");
    const cJSON *wte = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "tensors"), 0);
    assert_int_equal((int)num(wte, "nonfinite"), 3);
    check_info_tensors(cJSON_GetObjectItem(doc, "tensors"), &h, params);
    cJSON_Delete(doc);
    free(params);
}

static double total_rel_change(const float *a, const float *b, size_t n) {
    double d = 0, sa = 0;
    for (size_t i = 0; i < n; i++) d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), sa += (double)a[i] * a[i];
    return sqrt(d / sa);
}

static void test_diff(void **state) {
    Fixture *f = *state;
    cJSON *doc = ckpt_json(f, 0, "diff sft/model.bin sft/model.bin");
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(doc, "tensors")) {
        assert_true(num(t, "rel_change") == 0.0);
        assert_true(num(t, "max_abs_diff") == 0.0);
        const cJSON *cos = cJSON_GetObjectItem(t, "cosine"); // null for the all-zero head of an LM
        if (num(t, "norm_a") > 0) assert_close(cos->valuedouble, 1.0, 1e-12);
        else assert_true(cJSON_IsNull(cos));
    }
    const cJSON *total = cJSON_GetObjectItem(doc, "total");
    assert_true(num(total, "rel_change") == 0.0);
    assert_close(num(total, "cosine"), 1.0, 1e-12);
    cJSON_Delete(doc);

    CkptHeader ha, hb;
    float *a, *b;
    Error err;
    assert_int_equal(ckpt_load(f->pre, &ha, &a, &err), 0);
    assert_int_equal(ckpt_load(f->sft, &hb, &b, &err), 0);
    doc = ckpt_json(f, 0, "diff pre/model.bin sft/model.bin");
    total = cJSON_GetObjectItem(doc, "total");
    double want = total_rel_change(a, b, ha.num_params);
    assert_true(want > 1e-3);
    assert_close(num(total, "rel_change"), want, 1e-9);
    assert_true(num(total, "cosine") < 1.0 && num(total, "cosine") > 0.5);
    const cJSON *wte = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "tensors"), 0);
    assert_close(num(wte, "rel_change"), total_rel_change(a, b, (size_t)ha.config.vocab_size * ha.config.n_embd), 1e-9);
    assert_string_equal(str(cJSON_GetObjectItem(doc, "b"), "stage"), "sft");
    cJSON_Delete(doc);
    free(a), free(b);
}

// Kinds may differ (an SFT model against a policy made from it); shapes may not.
static void test_diff_kinds_and_shapes(void **state) {
    Fixture *f = *state;
    CkptHeader h;
    float *params;
    Error err;
    char path[700], out[8192];
    assert_int_equal(ckpt_load(f->sft, &h, &params, &err), 0);
    h.kind = CKPT_POLICY;
    snprintf(path, sizeof path, "%s/policy.bin", f->dir);
    assert_int_equal(ckpt_save(path, &h, params, &err), 0);
    free(params);
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %s diff sft/model.bin policy.bin", f->dir, f->ckpt), 0);
    assert_non_null(strstr(out, "policy"));

    GPTConfig other = h.config;
    other.max_seq_len = 32;
    float *zeros = calloc(gpt_num_params(&other), sizeof(float));
    assert_int_equal(ckpt_header_init(&h, CKPT_LM, &other, "pretrain", &err), 0);
    snprintf(path, sizeof path, "%s/short.bin", f->dir);
    assert_int_equal(ckpt_save(path, &h, zeros, &err), 0);
    free(zeros);
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %s diff sft/model.bin short.bin", f->dir, f->ckpt), 1);
    assert_non_null(strstr(out, "ckpt: cannot compare sft/model.bin and short.bin: the models have different shapes"));
    assert_non_null(strstr(out, "context 64/32"));
}

static void test_verify(void **state) {
    Fixture *f = *state;
    CkptHeader h;
    Error err;
    char out[8192], want[128];
    assert_int_equal(ckpt_read_header(f->sft, &h, &err), 0);
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %s verify sft/model.bin", f->dir, f->ckpt), 0);
    snprintf(want, sizeof want, "OK %08" PRIx32 " sft/model.bin\n", h.fingerprint);
    assert_string_equal(out, want);
    // One payload byte flipped (a bit of the 1000th parameter).
    assert_int_equal(run_cmd(out, sizeof out,
                             "cd %s && cp sft/model.bin flipped.bin && printf '\\001' | "
                             "dd of=flipped.bin bs=1 seek=%d conv=notrunc status=none",
                             f->dir, CKPT_HEADER_SIZE + 4000), 0);
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %s verify flipped.bin", f->dir, f->ckpt), 1);
    assert_non_null(strstr(out, "ckpt: flipped.bin: payload checksum mismatch"));
    assert_int_equal(count_lines(out), 1);
    cJSON *doc = ckpt_json(f, 1, "verify flipped.bin");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(doc, "ok")));
    assert_non_null(strstr(str(doc, "error"), "checksum"));
    cJSON_Delete(doc);
    doc = ckpt_json(f, 0, "verify sft/model.bin");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "ok")));
    assert_hex(str(doc, "fingerprint"), h.fingerprint);
    cJSON_Delete(doc);
}

static void test_lineage(void **state) {
    Fixture *f = *state;
    CkptHeader sft, pre;
    Error err;
    char out[8192], want[512];
    assert_int_equal(ckpt_read_header(f->sft, &sft, &err), 0);
    assert_int_equal(ckpt_read_header(f->pre, &pre, &err), 0);
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %s lineage sft/model.bin", f->dir, f->ckpt), 0);
    char *pre_absolute = realpath(f->pre, NULL); // as sft recorded its --init pre/model.bin
    snprintf(want, sizeof want,
             "sft       step 40     language-model  %08" PRIx32 "  sft/model.bin\n"
             "pretrain  step 60     language-model  %08" PRIx32 "  %s\n",
             sft.fingerprint, pre.fingerprint, pre_absolute);
    assert_string_equal(out, want);
    cJSON *doc = ckpt_json(f, 0, "lineage sft/model.bin");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "complete")));
    assert_hex(str(cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "chain"), 1), "fingerprint"), pre.fingerprint);
    cJSON_Delete(doc);

    // The parent moved away: the chain stops with a message saying so.
    assert_int_equal(run_cmd(out, sizeof out, "mv %s/pre %s/pre.away", f->dir, f->dir), 0);
    int rc = run_cmd(out, sizeof out, "cd %s && %s lineage sft/model.bin", f->dir, f->ckpt);
    doc = ckpt_json(f, 1, "lineage sft/model.bin");
    run_cmd(want, sizeof want, "mv %s/pre.away %s/pre", f->dir, f->dir);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "sft       step 40"));
    char expected[1024];
    snprintf(expected, sizeof expected, "ckpt: parent of sft/model.bin is missing: no file at %s", pre_absolute);
    assert_non_null(strstr(out, expected));
    assert_string_equal(str(doc, "end"), "missing");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "chain")), 1);
    cJSON_Delete(doc);

    // Another checkpoint in the parent's place is not the parent.
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && mv pre pre.orig && mkdir pre && cp sft/model.bin pre/", f->dir), 0);
    rc = run_cmd(out, sizeof out, "cd %s && %s lineage sft/model.bin", f->dir, f->ckpt);
    run_cmd(want, sizeof want, "cd %s && rm -r pre && mv pre.orig pre", f->dir);
    assert_int_equal(rc, 1);
    snprintf(expected, sizeof expected, "is not at %s any more", pre_absolute);
    assert_non_null(strstr(out, expected));
    free(pre_absolute);
}

static void test_bad_input(void **state) {
    Fixture *f = *state;
    char out[8192];
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %s info missing.bin", f->dir, f->ckpt), 1);
    assert_non_null(strstr(out, "ckpt: missing.bin: cannot open"));
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && head -c 3000 sft/model.bin > cut.bin && %s info cut.bin", f->dir, f->ckpt), 1);
    assert_non_null(strstr(out, "ckpt: cut.bin: "));
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %s diff tok.bin sft/model.bin", f->dir, f->ckpt), 1);
    assert_non_null(strstr(out, "ckpt: tok.bin: "));
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %s info sft/model.bin pre/model.bin", f->dir, f->ckpt), 2);
    assert_non_null(strstr(out, "expects 1 file, got 2"));
    assert_int_equal(run_cmd(out, sizeof out, "%s frobnicate x", f->ckpt), 2); // usage errors: exit 2
    assert_int_equal(run_cmd(out, sizeof out, "%s --help", f->ckpt), 0);
    assert_non_null(strstr(out, "lineage FILE"));
    assert_int_equal(run_cmd(out, sizeof out, "%s diff --help", f->ckpt), 0);
    assert_non_null(strstr(out, "--threads N"));
    assert_non_null(strstr(out, "(default: 0;"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_matches_the_payload),
        cmocka_unit_test(test_info_counts_nonfinite_values),
        cmocka_unit_test(test_diff),
        cmocka_unit_test(test_diff_kinds_and_shapes),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_lineage),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
