// The dpo stage end to end on the smoke chain: a policy checkpoint that
// evaluate and sample read, a loss that starts at log 2 (the policy is its
// reference) and falls, held-out rows along training, resume bit for bit,
// and refusals that name what is wrong.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/checkpoint.h"
#include "tests/testutil.h"

typedef struct {
    char dir[256], bin[512], data[512], common[2048];
} Fixture;

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    make_temp_dir(f->dir, sizeof f->dir);
    bin_path(f->bin, sizeof f->bin, "");
    src_path(f->data, sizeof f->data, "data");
    int rc = make_smoke_chain(f->dir, "rm");
    snprintf(f->common, sizeof f->common,
             "--config smoke --init sft/model.bin --tokenizer tok.bin --pairs prefs/prefs.jsonl "
             "--val prefs/prefs_val.jsonl --eval-prompts %s/prompts_eval.jsonl --data-dir %s", f->data, f->data);
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

static double mean(const double *x, int from, int to) {
    double s = 0;
    for (int i = from; i < to; i++) s += x[i];
    return s / (to - from);
}

static void check_checkpoint(const Fixture *f) {
    char path[600];
    CkptHeader h, sft;
    Error err;
    snprintf(path, sizeof path, "%s/dpo/model.bin", f->dir);
    assert_int_equal(ckpt_verify(path, &h, &err), 0);
    assert_int_equal(h.kind, CKPT_POLICY);
    assert_string_equal(h.stage, "dpo");
    assert_int_equal(h.step, 20);
    snprintf(path, sizeof path, "%s/sft/model.bin", f->dir);
    assert_int_equal(ckpt_read_header(path, &sft, &err), 0);
    assert_int_equal(h.parent_fp, sft.fingerprint); // lineage
    assert_int_equal(h.tokenizer_fp, sft.tokenizer_fp);
}

static void test_dpo_smoke_run(void **state) {
    Fixture *f = *state;
    char out[16384], path[600];
    int rc = run_cmd(out, sizeof out, "cd %s && %sdpo %s --rm rm/model.bin --out dpo", f->dir, f->bin, f->common);
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "held-out log-probabilities per response: chosen"));
    assert_non_null(strstr(out, "held-out gold score"));
    check_checkpoint(f);
    double loss[32], rc_[32], rr[32], margin[32], acc[32], val_loss[32];
    snprintf(path, sizeof path, "%s/dpo/metrics.csv", f->dir);
    assert_int_equal(read_csv_column(path, "loss", loss, 32), 20);
    assert_int_equal(read_csv_column(path, "reward_chosen", rc_, 32), 20);
    assert_int_equal(read_csv_column(path, "reward_rejected", rr, 32), 20);
    assert_int_equal(read_csv_column(path, "margin", margin, 32), 20);
    assert_int_equal(read_csv_column(path, "accuracy", acc, 32), 20);
    assert_int_equal(read_csv_column(path, "val_loss", val_loss, 32), 2); // steps 10 and 20
    // The first step's policy is the reference: rewards 0, loss log 2.
    assert_true(fabs(loss[0] - log(2.0)) < 1e-6);
    assert_true(fabs(rc_[0]) < 1e-6 && fabs(rr[0]) < 1e-6);
    for (int i = 0; i < 20; i++) {
        assert_true(fabs(margin[i] - (rc_[i] - rr[i])) < 1e-9);
        assert_true(acc[i] >= 0 && acc[i] <= 1);
    }
    assert_true(mean(loss, 15, 20) < loss[0] - 1e-3); // the loss fell
    assert_true(mean(margin, 15, 20) > 0);            // chosen responses gained on rejected ones
    // heldout.csv: the policy at steps 0, 10 and 20, as ppo --eval-every writes it.
    double step[8], kl[8];
    snprintf(path, sizeof path, "%s/dpo/heldout.csv", f->dir);
    assert_int_equal(read_csv_column(path, "step", step, 8), 3);
    assert_int_equal(read_csv_column(path, "kl_full", kl, 8), 3);
    assert_true(step[0] == 0 && step[1] == 10 && step[2] == 20);
    assert_true(kl[0] == 0 && kl[2] > 0);
    snprintf(path, sizeof path, "%s/dpo/samples.txt", f->dir);
    assert_int_equal(run_cmd(out, sizeof out, "grep -c '^== step' %s", path), 0);
    assert_int_equal(atoi(out), 2);
    // evaluate and sample read the checkpoint like ppo's.
    rc = run_cmd(out, sizeof out, "cd %s && %sevaluate --config smoke --n-prompts 4 --policy dpo/model.bin "
                 "--ref sft/model.bin --rm rm/model.bin --tokenizer tok.bin --data-dir %s --out ev", f->dir, f->bin,
                 f->data);
    printf("%s", out);
    assert_int_equal(rc, 0);
    rc = run_cmd(out, sizeof out, "cd %s && %ssample --model dpo/model.bin --tokenizer tok.bin --prompt 'hello' "
                 "--max-new 8", f->dir, f->bin);
    printf("%s", out);
    assert_int_equal(rc, 0);
}

static void test_dpo_resume_is_bit_exact(void **state) {
    Fixture *f = *state;
    char out[16384];
    const char *args = "--steps 8 --rm rm/model.bin --eval-every 3 --eval-n 4";
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %sdpo %s %s --out a", f->dir, f->bin, f->common, args), 0);
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %sdpo %s %s --out b --stop-after 4", f->dir, f->bin,
                             f->common, args), EXIT_STOPPED);
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %sdpo --resume b", f->dir, f->bin), 0);
    printf("%s", out);
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && cmp a/model.bin b/model.bin && cmp a/heldout.csv b/heldout.csv "
                             "&& cmp a/heldout.json b/heldout.json", f->dir), 0);
    // Every column but the timings, the tokens column included, continues as it would have.
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && cut -d, -f1-18 a/metrics.csv > a.cut && "
                             "cut -d, -f1-18 b/metrics.csv > b.cut && cmp a.cut b.cut", f->dir), 0);
}

static void test_dpo_without_rm(void **state) {
    Fixture *f = *state;
    char out[16384], path[600];
    int rc = run_cmd(out, sizeof out, "cd %s && %sdpo %s --steps 4 --out norm", f->dir, f->bin, f->common);
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "no --rm"));
    snprintf(path, sizeof path, "%s/norm/heldout.csv", f->dir);
    assert_int_equal(run_cmd(out, sizeof out, "test -e %s", path), 1);
    snprintf(path, sizeof path, "%s/norm/config.txt", f->dir);
    assert_int_equal(run_cmd(out, sizeof out, "grep -x 'eval-every = 0' %s", path), 0);
}

static void test_dpo_refuses_bad_input(void **state) {
    Fixture *f = *state;
    char out[16384];
    int rc = run_cmd(out, sizeof out, "cd %s && printf '{\"prompt\":\"a\",\"chosen\":\"b\",\"rejected\":\"c\"}\\n"
                     "{\"prompt\":\"a\",\"chosen\":\"b\"}\\n' > bad.jsonl && %sdpo %s --pairs bad.jsonl --out x",
                     f->dir, f->bin, f->common);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "bad.jsonl:2: missing field \"rejected\""));
    rc = run_cmd(out, sizeof out, "cd %s && %sdpo %s --init rm/model.bin --out x", f->dir, f->bin, f->common);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "is a reward-model checkpoint"));
    rc = run_cmd(out, sizeof out, "cd %s && %sdpo %s --beta 0 --out x", f->dir, f->bin, f->common);
    assert_int_equal(rc, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dpo_smoke_run),
        cmocka_unit_test(test_dpo_resume_is_bit_exact),
        cmocka_unit_test(test_dpo_without_rm),
        cmocka_unit_test(test_dpo_refuses_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
