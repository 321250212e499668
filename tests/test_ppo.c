// The ppo stage end to end on the smoke config: outputs, lineage, the KL at
// the first iteration (policy = reference: exactly 0), bit-exact resume, and
// refusals of wrong inputs.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
             "--config smoke --policy sft/model.bin --rm rm/model.bin --tokenizer tok.bin --prompts %s/prompts_train.jsonl "
             "--eval-prompts %s/prompts_eval.jsonl --data-dir %s", f->data, f->data, f->data);
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

static void test_ppo_smoke_run(void **state) {
    Fixture *f = *state;
    char out[16384], path[600];
    int rc = run_cmd(out, sizeof out, "cd %s && %sppo %s --out ppo", f->dir, f->bin, f->common);
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "held-out gold score"));
    assert_non_null(strstr(out, "KL(policy || reference)"));
    CkptHeader h, sft;
    Error err;
    snprintf(path, sizeof path, "%s/ppo/model.bin", f->dir);
    assert_int_equal(ckpt_verify(path, &h, &err), 0);
    assert_int_equal(h.kind, CKPT_POLICY);
    assert_string_equal(h.stage, "ppo");
    assert_int_equal(h.step, 6);
    snprintf(path, sizeof path, "%s/sft/model.bin", f->dir);
    assert_int_equal(ckpt_read_header(path, &sft, &err), 0);
    assert_int_equal(h.parent_fp, sft.fingerprint);
    snprintf(path, sizeof path, "%s/ppo/metrics.csv", f->dir);
    double kl[16], k3[16], coef[16], len[16];
    assert_int_equal(read_csv_column(path, "kl", kl, 16), 6);
    assert_int_equal(read_csv_column(path, "kl_k3", k3, 16), 6);
    assert_int_equal(read_csv_column(path, "kl_coef", coef, 16), 6);
    assert_int_equal(read_csv_column(path, "response_length", len, 16), 6);
    // Before the first update the policy is the reference: both estimates are 0.
    assert_true(kl[0] == 0.0 && k3[0] == 0.0);
    for (int i = 0; i < 6; i++) {
        assert_true(k3[i] >= 0);
        assert_true(coef[i] == coef[0]); // fixed beta unless --target-kl
        assert_true(len[i] >= 1 && len[i] <= 24);
    }
    assert_true(k3[5] > 0); // the policy has moved
    snprintf(path, sizeof path, "%s/ppo/samples.txt", f->dir);
    assert_int_equal(run_cmd(out, sizeof out, "grep -c '^== step' %s", path), 0);
    assert_int_equal(atoi(out), 2);
}

static void test_ppo_adaptive_kl_and_resume(void **state) {
    Fixture *f = *state;
    char out[16384], path[600];
    const char *adaptive = "--target-kl 0.01 --horizon 100 --kl-coef 0.1";
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %sppo %s %s --out a", f->dir, f->bin, f->common, adaptive), 0);
    assert_non_null(strstr(out, "kl_coef 0.1000 (adaptive: target 0.01, horizon 100 samples)"));
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %sppo %s %s --out b --stop-after 2", f->dir, f->bin, f->common, adaptive),
                     EXIT_STOPPED);
    assert_non_null(strstr(out, "stopped as asked after step 2"));
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %sppo --resume b", f->dir, f->bin), 0);
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && cmp a/model.bin b/model.bin && cmp a/model.opt b/model.opt", f->dir), 0);
    double coef[16], kl[16];
    snprintf(path, sizeof path, "%s/b/metrics.csv", f->dir);
    assert_int_equal(read_csv_column(path, "kl_coef", coef, 16), 6);
    assert_int_equal(read_csv_column(path, "kl", kl, 16), 6);
    // The controller moves beta by at most 20% x batch / horizon per step,
    // in the direction of KL - target (carried across the resume).
    for (int i = 1; i < 6; i++) {
        double expect = coef[i - 1] * (1 + fmax(-0.2, fmin(0.2, kl[i - 1] / 0.01 - 1)) * 8 / 100.0);
        assert_float_equal(coef[i], expect, 1e-4 * coef[i]);
    }
    // Without --horizon: auto, steps x batch / 30 = 60 x 8 / 30 = 16 samples,
    // recorded in config.txt, and kept by a resume that raises --steps (90
    // would make it 24). The first batch's KL is 0 (policy = reference): the
    // error clips to -0.2 and beta becomes 0.1 x (1 - 0.2 x 8 / 16) = 0.09.
    const char *auto_horizon = "--target-kl 0.01 --kl-coef 0.1 --steps 60";
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %sppo %s %s --out c --stop-after 1", f->dir, f->bin, f->common,
                             auto_horizon), EXIT_STOPPED);
    assert_non_null(strstr(out, "(adaptive: target 0.01, horizon 16 samples)"));
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %sppo --resume c --steps 90 --stop-after 2", f->dir, f->bin),
                     EXIT_STOPPED);
    assert_non_null(strstr(out, "(adaptive: target 0.01, horizon 16 samples)"));
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && grep -x 'horizon = 16' c/config.txt && grep -x 'steps = 90' c/config.txt",
                             f->dir), 0);
    snprintf(path, sizeof path, "%s/c/metrics.csv", f->dir);
    assert_int_equal(read_csv_column(path, "kl_coef", coef, 16), 2);
    assert_int_equal(read_csv_column(path, "kl", kl, 16), 2);
    assert_true(kl[0] == 0.0);
    assert_float_equal(coef[1], 0.09, 1e-6);
    // A multiplicative controller cannot move a beta of 0: a usage error.
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %sppo %s --target-kl 6 --kl-coef 0 --out d", f->dir, f->bin,
                             f->common), 2);
    assert_non_null(strstr(out, "--target-kl needs a positive --kl-coef"));
}

static void test_ppo_refuses_wrong_inputs(void **state) {
    Fixture *f = *state;
    char out[16384];
    int rc = run_cmd(out, sizeof out, "cd %s && %sppo --config smoke --policy rm/model.bin --rm rm/model.bin --tokenizer tok.bin "
                     "--data-dir %s --out x", f->dir, f->bin, f->data);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "rm/model.bin: is a reward-model checkpoint"));
    rc = run_cmd(out, sizeof out, "cd %s && %sppo --config smoke --policy sft/model.bin --rm sft/model.bin --tokenizer tok.bin "
                 "--data-dir %s --out x", f->dir, f->bin, f->data);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "expected a reward-model"));
    // Another tokenizer than the smoke chain's (vocabulary 300).
    rc = run_cmd(out, sizeof out, "cd %s && %sbpe train --input %s/fortunes.jsonl --jsonl-field text --vocab 400 --out other.bin && "
                 "%sppo --config smoke --policy sft/model.bin --rm rm/model.bin --tokenizer other.bin --data-dir %s --out x",
                 f->dir, f->bin, f->data, f->bin, f->data);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "tokenizer"));
    // A reference of another shape (the tiny config with the same tokenizer).
    rc = run_cmd(out, sizeof out, "cd %s && %spretrain --config tiny --steps 1 --eval-every 10 --eval-batches 1 --tokenizer tok.bin "
                 "--data %s/fortunes.jsonl --out tinyref > /dev/null && %sppo %s --ref tinyref/model.bin --out x",
                 f->dir, f->bin, f->data, f->bin, f->common);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "have different model shapes"));
    rc = run_cmd(out, sizeof out, "cd %s && %sppo %s --minibatch 16 --out x", f->dir, f->bin, f->common);
    assert_int_equal(rc, 2); // a usage error
    assert_non_null(strstr(out, "--minibatch 16 exceeds --batch 8"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ppo_smoke_run),
        cmocka_unit_test(test_ppo_adaptive_kl_and_resume),
        cmocka_unit_test(test_ppo_refuses_wrong_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
