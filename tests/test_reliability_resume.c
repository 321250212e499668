// Issue 16, "resume that is what it claims" and "content that checks out but
// is unusable": float options and metrics read back bit for bit, a resumed run
// is checked against the run it resumes (format, tokenizer, reference and
// reward model, every field of its training state), and a checkpoint whose
// checksums hold but whose content is unusable (a NaN weight, an absurd
// reward scale, another vocabulary) is refused. Every refusal is one line on
// stderr naming the file, exit status 1, and every file left as it was.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/bytes.h"
#include "common/cli.h"
#include "common/csv.h"
#include "common/fileio.h"
#include "model/checkpoint.h"
#include "model/gpt.h"
#include "tests/testutil.h"

// Long enough for a refusal on a loaded machine; a hang is killed after it.
#define REFUSAL_TIMEOUT_S 60
// A stage stopped by --stop-after exits 0 before issue 16 and 3 after it.
// Exit 0 before issue 16's exit status for a stopped stage, 3 after it.
static int stopped(int rc) {
    return rc == 0 || rc == 3;
}

typedef struct {
    char dir[256], bin[512], data[512];
} Chain;

static int sh(const Chain *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Runs a shell command in the chain's folder; prints its output on failure.
static int sh(const Chain *c, const char *fmt, ...) {
    char cmd[4096], full[4608], out[16384], err[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "cd '%s' && %s", c->dir, cmd);
    int rc = run_split(full, 600, out, sizeof out, err, sizeof err);
    if (!stopped(rc)) printf("in %s: %s\nexit %d\n%s%s\n", c->dir, cmd, rc, out, err);
    return rc;
}

// out holds at least 2048 bytes.
static void pretrain_args(const Chain *c, char *out, size_t n) {
    snprintf(out, n, "%spretrain --config smoke --eval-every 1000 --tokenizer tok.bin --data %s/fortunes.jsonl",
             c->bin, c->data);
}

static void ppo_args(const Chain *c, char *out, size_t n) {
    snprintf(out, n, "%sppo --config smoke --save-every 100 --sample-every 1000 --eval-n 2 --target-kl 0.05 "
             "--policy sft/model.bin --ref ref_in/model.bin --rm rm_in/model.bin --tokenizer tok.bin "
             "--prompts %s/prompts_train.jsonl --eval-prompts %s/prompts_eval.jsonl --data-dir %s",
             c->bin, c->data, c->data, c->data);
}

// The smoke chain, a second tokenizer of the same size, and two runs stopped
// half way: pretrain in pre_cut/ and ppo (against copies of its reference and
// reward model, so a test can replace them) in ppo_cut/.
static int group_setup(void **state) {
    Chain *c = calloc(1, sizeof *c);
    make_temp_dir(c->dir, sizeof c->dir);
    bin_path(c->bin, sizeof c->bin, "");
    src_path(c->data, sizeof c->data, "data");
    *state = c;
    if (make_smoke_chain(c->dir, "rm")) return -1;
    char pre[2048], ppo[3072];
    pretrain_args(c, pre, sizeof pre);
    ppo_args(c, ppo, sizeof ppo);
    if (sh(c, "%sbpe train --input %s/prompts_train.jsonl --jsonl-field prompt --vocab 300 --out tok2.bin", c->bin,
           c->data) ||
        !stopped(sh(c, "%s --steps 8 --save-every 100 --stop-after 4 --out pre_cut", pre)) ||
        sh(c, "cp -r rm rm_in && cp -r sft ref_in") ||
        !stopped(sh(c, "%s --steps 4 --stop-after 2 --out ppo_cut", ppo)))
        return -1;
    return 0;
}

static int group_teardown(void **state) {
    Chain *c = *state;
    char out[256];
    run_cmd(out, sizeof out, "rm -rf '%s'", c->dir);
    free(c);
    return 0;
}

static void chain_path(const Chain *c, char *out, size_t n, const char *rel) {
    snprintf(out, n, "%s/%s", c->dir, rel);
}

// Runs cmd in the chain's folder and asserts the whole promise of a refusal:
// exit status 1, one line on stderr holding each of `parts` (the files it
// names), and every file in the folder as it was.
static void expect_refusal(const Chain *c, const char *cmd, const char *const *parts) {
    char full[4608], out[16384], err[4096];
    snprintf(full, sizeof full, "cd '%s' && %s", c->dir, cmd);
    char *before = dir_snapshot(c->dir);
    int rc = run_split(full, REFUSAL_TIMEOUT_S, out, sizeof out, err, sizeof err);
    char *after = dir_snapshot(c->dir);
    printf("    %s\n    -> exit %d: %s", cmd, rc, err[0] ? err : "(nothing on stderr)\n");
    assert_int_equal(rc, 1);
    assert_true(is_one_line(err));
    for (; *parts; parts++)
        if (!strstr(err, *parts)) fail_msg("stderr lacks \"%s\"", *parts);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void copy_run(const Chain *c, const char *from, const char *to) {
    assert_int_equal(sh(c, "rm -rf %s && cp -r %s %s", to, from, to), 0);
}

// ---- Training-state forgery: the fields of either format ---------------------

// Offsets of the step and the KL coefficient in a training state of the
// format its version says: 1 (ece9d8a: extra[0] is PPO's beta) or 2 (now).
static size_t state_offset(const unsigned char *b, const char *field) {
    int v1 = get_u32(b + 8) == 1;
    if (!strcmp(field, "step")) return v1 ? 24 : 32;
    return v1 ? 40 : 80;
}

// (noinline: gcc 12 mistakes the buffer read_file returns for a pointer to
// this function's local variable.)
__attribute__((noinline)) static unsigned char *read_all(const char *path, size_t *len) {
    unsigned char *b = NULL;
    Error err;
    if (read_file(path, (size_t)1 << 30, &b, len, &err)) fail_msg("%s", err.msg);
    return b;
}

static void write_all(const char *path, const void *b, size_t len) {
    Error err;
    if (write_file_atomic(path, b, len, &err)) fail_msg("%s", err.msg);
}

// Sets 8 bytes of a state's field and its trailing checksum, as a hostile
// writer would: only the field's own range is left to catch it.
static void forge_state_field(const char *path, const char *field, uint64_t bits) {
    size_t len;
    unsigned char *b = read_all(path, &len);
    put_u64(b + state_offset(b, field), bits);
    put_u32(b + len - 4, (uint32_t)crc32(0, b, (uInt)(len - 4)));
    write_all(path, b, len);
    free(b);
}

// Rewrites a training state of format 2 in format 1 (ece9d8a's layout:
// magic, version, ckpt_fp, num_params, step, rng_state, extra[8], reserved to
// byte 128, then the same moments and a CRC-32 of everything before it).
static void rewrite_state_as_format_1(const char *path) {
    size_t len;
    unsigned char *b = read_all(path, &len);
    if (get_u32(b + 8) == 1) { // a build that writes format 1 already
        free(b);
        return;
    }
    size_t body = len - 256 - 4, n = 128 + body + 4;
    unsigned char *v1 = calloc(1, n);
    memcpy(v1, b, 8);
    put_u32(v1 + 8, 1);
    put_u32(v1 + 12, get_u32(b + 16));
    put_u64(v1 + 16, get_u64(b + 24));
    put_u64(v1 + 24, get_u64(b + 32));
    put_u64(v1 + 32, get_u64(b + 40));
    put_u64(v1 + 40, get_u64(b + 80));
    memcpy(v1 + 128, b + 256, body);
    put_u32(v1 + n - 4, (uint32_t)crc32(0, v1, (uInt)(n - 4)));
    write_all(path, v1, n);
    free(v1);
    free(b);
}

// ---- Checkpoint forgery ------------------------------------------------------

// Index of the first parameter of the tensor called name.
static size_t tensor_offset(const GPTConfig *cfg, const char *name) {
    size_t sizes[NUM_PARAMETER_TENSORS], off = 0;
    gpt_param_sizes(cfg, sizes);
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        if (!strcmp(gpt_param_name(k), name)) return off;
        off += sizes[k];
    }
    fail_msg("no tensor %s", name);
    return 0;
}

// Copies the checkpoint `from` to `to` with one parameter of `tensor` set to
// value; both checksums are valid.
static void write_poisoned_copy(const Chain *c, const char *from, const char *to, const char *tensor, float value) {
    char src[512], dst[512], dir[512];
    chain_path(c, src, sizeof src, from);
    chain_path(c, dst, sizeof dst, to);
    snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(dst, '/') - dst), dst);
    CkptHeader h;
    float *params;
    Error err;
    if (make_dirs(dir, &err) || ckpt_load(src, &h, &params, &err)) fail_msg("%s", err.msg);
    params[tensor_offset(&h.config, tensor) + 3] = value;
    if (ckpt_save(dst, &h, params, &err)) fail_msg("%s", err.msg);
    free(params);
}

// Copies a checkpoint with its reward_std set to std and the header
// fingerprint recomputed (the writer refuses such a std, so bytes are forged).
static void write_reward_std_copy(const Chain *c, const char *from, const char *to, float std) {
    char src[512], dst[512];
    chain_path(c, src, sizeof src, from);
    chain_path(c, dst, sizeof dst, to);
    size_t len;
    unsigned char *b = read_all(src, &len);
    put_f32(b + 68, std);
    put_u32(b + 508, (uint32_t)crc32(0, b, 508));
    write_all(dst, b, len);
    free(b);
}

// A model with pre/model.bin's shape and tokenizer fingerprint but another
// vocabulary size: the header and checksums are all valid.
static void write_reheaded_copy(const Chain *c, const char *to, int vocab_size) {
    char src[512], dst[512];
    chain_path(c, src, sizeof src, "pre/model.bin");
    chain_path(c, dst, sizeof dst, to);
    CkptHeader from, h;
    GPT m = {0};
    Error err;
    if (ckpt_read_header(src, &from, &err)) fail_msg("%s", err.msg);
    GPTConfig cfg = from.config;
    cfg.vocab_size = vocab_size;
    if (gpt_create(&m, &cfg, &err) || ckpt_header_init(&h, CKPT_LM, &cfg, "pretrain", &err)) fail_msg("%s", err.msg);
    gpt_init_random(&m, 7);
    h.tokenizer_fp = from.tokenizer_fp;
    if (ckpt_save(dst, &h, m.params_memory, &err)) fail_msg("%s", err.msg);
    gpt_free(&m);
}

// ---- Exact numbers in config.txt and metrics.csv -----------------------------

static float config_value(const char *path, const char *name) {
    size_t len;
    unsigned char *b = read_all(path, &len);
    char key[64];
    snprintf(key, sizeof key, "\n%s = ", name);
    char *at = strstr((char *)b, key);
    if (!at) fail_msg("%s has no %s", path, name);
    float v = strtof(at + strlen(key), NULL);
    free(b);
    return v;
}

// Nine significant digits: %g kept six, so a resumed run trained with
// another learning rate and weight decay than the run it resumed.
static void test_float_options_round_trip_through_resume(void **state) {
    Chain *c = *state;
    char pre[2048], path[512];
    pretrain_args(c, pre, sizeof pre);
    const char *opts = "--steps 6 --save-every 100 --lr 0.000123456789 --weight-decay 0.0987654321";
    assert_int_equal(sh(c, "rm -rf lr_full lr_cut && %s %s --out lr_full", pre, opts), 0);
    assert_true(stopped(sh(c, "%s %s --stop-after 3 --out lr_cut", pre, opts)));
    chain_path(c, path, sizeof path, "lr_cut/config.txt");
    float lr = config_value(path, "lr"), wd = config_value(path, "weight-decay");
    float want_lr = strtof("0.000123456789", NULL), want_wd = strtof("0.0987654321", NULL);
    assert_memory_equal(&lr, &want_lr, sizeof lr);
    assert_memory_equal(&wd, &want_wd, sizeof wd);
    assert_int_equal(sh(c, "%spretrain --resume lr_cut", c->bin), 0);
    assert_int_equal(sh(c, "cmp lr_full/model.bin lr_cut/model.bin && cmp lr_full/model.opt lr_cut/model.opt"), 0);
    // The resumed run wrote config.txt again: still the exact values.
    lr = config_value(path, "lr");
    assert_memory_equal(&lr, &want_lr, sizeof lr);
}

// Blank lines count in the line numbers; a repeated name, a flag that is
// neither on nor off and a NUL byte are refused, naming file and line.
static void test_config_txt_reader_is_strict(void **state) {
    (void)state;
    int steps = 0, flag = 0;
    float lr = 0;
    const char *name = NULL;
    CliOption opts[] = {{"steps", CLI_INT, &steps, 1, 100, ""}, {"lr", CLI_FLOAT, &lr, 0, 1, ""},
                        {"name", CLI_STRING, &name, 0, 0, ""}, {"verbose", CLI_FLAG, &flag, 0, 0, ""}};
    struct {
        const char *text;
        size_t len;
        const char *message; // NULL: accepted
    } cases[] = {
        {"steps = 5\n\nlr = 0.000123456791\nname = a b\nverbose = on\n", 0, NULL},
        {"steps = 5\n\n\nbogus = 1\n", 0, "config.txt:4: unknown setting 'bogus'"},
        {"steps = 5\nlr = 0.5\nsteps = 6\n", 0, "config.txt:3: 'steps' is set a second time"},
        {"verbose = yes\n", 0, "config.txt:1: verbose = 'yes': expected on or off"},
        {"steps = 5\nname = a\0b\n", 21, "config.txt:2: holds a NUL byte"},
        {"steps 5\n", 0, "config.txt:1: expected 'name = value'"},
        {"\nsteps = 500\n", 0, "config.txt:2: --steps: 500 is out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        char *text = malloc(len + 1);
        memcpy(text, cases[i].text, len);
        text[len] = '\0';
        Error err = {{0}};
        int rc = cli_apply_settings("run/config.txt", text, len, opts, 4, NULL, &err);
        if (!cases[i].message) {
            assert_int_equal(rc, 0);
            float want = strtof("0.000123456791", NULL);
            assert_memory_equal(&lr, &want, sizeof lr);
            assert_true(steps == 5 && flag == 1 && !strcmp(name, "a b"));
        } else {
            assert_int_equal(rc, -1);
            if (!strstr(err.msg, cases[i].message)) fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg,
                                                            cases[i].message);
        }
        free(text);
    }
}

// metrics.csv is read back on resume (csv_truncate_after): %.6g wrote step
// 1234567 as 1.23457e+06 and every float to six digits.
static void test_metrics_csv_reads_back_exactly(void **state) {
    Chain *c = *state;
    char path[512];
    chain_path(c, path, sizeof path, "exact.csv");
    CsvWriter w;
    Error err;
    const double rows[3][4] = {{1234566, (double)0.1f, 1.0 / 3.0, (double)1.17549435e-38f},
                               {1234567, (double)-2.5e-7f, 12345.678901234567, NAN},
                               {1234568, 1e300, -0.0, (double)3.4028235e38f}};
    assert_int_equal(csv_open(&w, path, "step,a,b,c", 0, &err), 0);
    for (int r = 0; r < 3; r++) csv_row(&w, rows[r]);
    csv_close(&w);
    assert_int_equal(csv_truncate_after(path, 1234567, &err), 0);
    size_t len;
    char *text = (char *)read_all(path, &len);
    // Values that are exactly floats stay short; the others take 17 digits.
    assert_string_equal(text, "step,a,b,c\n1234566,0.1,0.3333333333333333,1.1754944e-38\n"
                              "1234567,-2.5e-07,12345.678901234567,\n");
    char *line = strchr(text, '\n') + 1;
    for (int r = 0; r < 2; r++) { // each row ends with line past its newline
        char *end;
        for (int k = 0; k < 4; k++, line = end + 1) {
            if (isnan(rows[r][k])) {
                end = line;
                continue;
            }
            float as_float = (float)rows[r][k];
            double back = (double)as_float == rows[r][k] ? (double)strtof(line, &end) : strtod(line, &end);
            assert_memory_equal(&back, &rows[r][k], sizeof back);
        }
    }
    free(text);
}

// ---- A resumed run is checked against the run it resumes ------------------------

static void test_pretrain_resume_with_another_tokenizer_is_refused(void **state) {
    Chain *c = *state;
    copy_run(c, "pre_cut", "t_tok");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%spretrain --resume t_tok --tokenizer tok2.bin", c->bin);
    expect_refusal(c, cmd, (const char *const[]){"t_tok/model.bin", "tok2.bin", NULL});
}

// Replaces the file at rel with `with` for one refused resume of ppo_cut,
// then puts it back.
static void expect_ppo_resume_refused_with(const Chain *c, const char *rel, const char *with, const char *what) {
    copy_run(c, "ppo_cut", "t_ppo");
    assert_int_equal(sh(c, "cp %s keep.bin && cp %s %s", rel, with, rel), 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%sppo --resume t_ppo", c->bin);
    expect_refusal(c, cmd, (const char *const[]){"t_ppo/model.opt", rel, what, NULL});
    assert_int_equal(sh(c, "cp keep.bin %s && rm keep.bin", rel), 0);
}

static void test_ppo_resume_after_reward_or_reference_model_replaced_is_refused(void **state) {
    Chain *c = *state;
    write_poisoned_copy(c, "rm_in/model.bin", "other/rm.bin", "headw", 0.5f);
    write_poisoned_copy(c, "ref_in/model.bin", "other/ref.bin", "lnfb", 0.5f);
    expect_ppo_resume_refused_with(c, "rm_in/model.bin", "other/rm.bin", "reward model");
    expect_ppo_resume_refused_with(c, "ref_in/model.bin", "other/ref.bin", "reference model");
}

static void test_training_state_of_format_1_is_refused(void **state) {
    Chain *c = *state;
    copy_run(c, "pre_cut", "t_v1");
    char path[512], cmd[1024];
    chain_path(c, path, sizeof path, "t_v1/model.opt");
    rewrite_state_as_format_1(path);
    snprintf(cmd, sizeof cmd, "%spretrain --resume t_v1", c->bin);
    expect_refusal(c, cmd, (const char *const[]){"t_v1/model.opt: training state of format 1; this build reads "
                                                 "format 2 (start the run again, or resume it with the build that "
                                                 "wrote it)", NULL});
}

// Refused when the state is loaded, before config.txt or metrics.csv are
// rewritten (ece9d8a failed later, naming no file, with both rewritten).
static void test_state_step_out_of_range_is_refused(void **state) {
    Chain *c = *state;
    char path[512], cmd[1024];
    const uint64_t steps[] = {1ull << 63, UINT64_MAX, 1000};
    for (int i = 0; i < 3; i++) {
        copy_run(c, "pre_cut", "t_step");
        chain_path(c, path, sizeof path, "t_step/model.opt");
        forge_state_field(path, "step", steps[i]);
        snprintf(cmd, sizeof cmd, "%spretrain --resume t_step", c->bin);
        expect_refusal(c, cmd, (const char *const[]){"t_step/model.opt", "step", NULL});
    }
}

// A NaN weight in a stopped run's model.bin, written with valid checksums and
// its training state re-pointed at it: ece9d8a resumed, rewrote config.txt and
// metrics.csv, and stopped at the first step on a NaN loss.
static void test_resume_from_checkpoint_with_nan_weight_is_refused(void **state) {
    Chain *c = *state;
    copy_run(c, "pre_cut", "t_nan");
    write_poisoned_copy(c, "t_nan/model.bin", "t_nan/model.bin", "ln1w", NAN);
    char path[512], cmd[1024];
    chain_path(c, path, sizeof path, "t_nan/model.bin");
    CkptHeader h;
    Error err;
    if (ckpt_read_header(path, &h, &err)) fail_msg("%s", err.msg);
    chain_path(c, path, sizeof path, "t_nan/model.opt");
    size_t len;
    unsigned char *b = read_all(path, &len);
    put_u32(b + (get_u32(b + 8) == 1 ? 12 : 16), h.fingerprint); // ckpt_fp of format 1 or 2
    put_u32(b + len - 4, (uint32_t)crc32(0, b, (uInt)(len - 4)));
    write_all(path, b, len);
    free(b);
    snprintf(cmd, sizeof cmd, "%spretrain --resume t_nan", c->bin);
    expect_refusal(c, cmd, (const char *const[]){"t_nan/model.bin", "ln1w", NULL});
}

static void test_state_beta_not_finite_or_negative_is_refused(void **state) {
    Chain *c = *state;
    char path[512], cmd[1024];
    const double betas[] = {NAN, INFINITY, -1.0};
    for (int i = 0; i < 3; i++) {
        copy_run(c, "ppo_cut", "t_beta");
        chain_path(c, path, sizeof path, "t_beta/model.opt");
        uint64_t bits;
        memcpy(&bits, &betas[i], sizeof bits);
        forge_state_field(path, "kl_beta", bits);
        snprintf(cmd, sizeof cmd, "%sppo --resume t_beta", c->bin);
        expect_refusal(c, cmd, (const char *const[]){"t_beta/model.opt", "beta", NULL});
    }
}

// ---- Checkpoints whose checksums hold but whose content is unusable -------------

static void write_score_input(const Chain *c) {
    char path[512];
    chain_path(c, path, sizeof path, "pairs.jsonl");
    const char *text = "{\"prompt\":\"Tell me a fortune.\",\"response\":\"You will be happy.\"}\n";
    write_all(path, text, strlen(text));
}

static void test_nan_weight_is_refused(void **state) {
    Chain *c = *state;
    write_poisoned_copy(c, "sft/model.bin", "nan_lm/model.bin", "fcw", NAN);
    write_poisoned_copy(c, "rm/model.bin", "inf_rm/model.bin", "lnfw", INFINITY);
    write_score_input(c);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%ssample --model nan_lm/model.bin --tokenizer tok.bin --prompt hello --max-new 8", c->bin);
    expect_refusal(c, cmd, (const char *const[]){"nan_lm/model.bin", "fcw", NULL});
    snprintf(cmd, sizeof cmd, "%sscore --rm inf_rm/model.bin --tokenizer tok.bin --input pairs.jsonl", c->bin);
    expect_refusal(c, cmd, (const char *const[]){"inf_rm/model.bin", "lnfw", NULL});
}

static void test_absurd_reward_scale_is_refused(void **state) {
    Chain *c = *state;
    assert_int_equal(sh(c, "mkdir -p scale"), 0);
    write_score_input(c);
    const float stds[] = {1e-45f, 1e-9f};
    for (int i = 0; i < 2; i++) {
        write_reward_std_copy(c, "rm/model.bin", "scale/model.bin", stds[i]);
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%sscore --rm scale/model.bin --tokenizer tok.bin --input pairs.jsonl", c->bin);
        expect_refusal(c, cmd, (const char *const[]){"scale/model.bin", "std", NULL});
    }
}

static void test_checkpoint_of_another_vocabulary_is_refused(void **state) {
    Chain *c = *state;
    assert_int_equal(sh(c, "mkdir -p vocab"), 0);
    const int sizes[] = {290, 310};
    for (int i = 0; i < 2; i++) {
        write_reheaded_copy(c, "vocab/model.bin", sizes[i]);
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%ssample --model vocab/model.bin --tokenizer tok.bin --raw --prompt hello "
                 "--max-new 8", c->bin);
        expect_refusal(c, cmd, (const char *const[]){"vocab/model.bin", "tok.bin", "vocabulary", NULL});
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_txt_reader_is_strict),
        cmocka_unit_test(test_metrics_csv_reads_back_exactly),
        cmocka_unit_test(test_float_options_round_trip_through_resume),
        cmocka_unit_test(test_pretrain_resume_with_another_tokenizer_is_refused),
        cmocka_unit_test(test_ppo_resume_after_reward_or_reference_model_replaced_is_refused),
        cmocka_unit_test(test_training_state_of_format_1_is_refused),
        cmocka_unit_test(test_state_step_out_of_range_is_refused),
        cmocka_unit_test(test_state_beta_not_finite_or_negative_is_refused),
        cmocka_unit_test(test_resume_from_checkpoint_with_nan_weight_is_refused),
        cmocka_unit_test(test_nan_weight_is_refused),
        cmocka_unit_test(test_absurd_reward_scale_is_refused),
        cmocka_unit_test(test_checkpoint_of_another_vocabulary_is_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
