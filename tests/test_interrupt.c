// Every training stage after SIGINT, SIGTERM or SIGKILL: it resumes from its
// last checkpoint, and the resumed run ends bit for bit where an
// uninterrupted run with the same seed and threads ends (pretrain has the
// SIGINT/SIGTERM test in test_pretrain.c).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testutil.h"

typedef struct {
    char dir[256], bin[512], data[512];
} Fixture;

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    make_temp_dir(f->dir, sizeof f->dir);
    bin_path(f->bin, sizeof f->bin, "");
    src_path(f->data, sizeof f->data, "data");
    int rc = make_smoke_chain(f->dir, "rm");
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

// Runs `args` to the end into full_STAGE/ (once per stage: the uninterrupted
// run is the same for every signal), then again into cut_STAGE/ interrupted
// by `sig` once `after` steps are logged, resumes it, and compares the
// checkpoints.
static void interrupt_and_resume(Fixture *f, const char *stage, const char *args, const char *sig, int after) {
    char out[16384];
    int rc = run_cmd(out, sizeof out, "cd %s && { [ -f full_%s/finished ] || { rm -rf full_%s && %s%s %s --out full_%s && touch full_%s/finished; }; }",
                     f->dir, stage, stage, f->bin, stage, args, stage, stage);
    assert_int_equal(rc, 0);
    rc = run_cmd(out, sizeof out,
                 "cd %s && rm -rf cut_%s && (%s%s %s --out cut_%s & pid=$!; "
                 "for i in $(seq 600); do [ $(cat cut_%s/metrics.csv 2>/dev/null | wc -l) -gt %d ] && break; sleep 0.05; done; "
                 "kill -%s $pid; wait $pid; echo status $?)",
                 f->dir, stage, f->bin, stage, args, stage, stage, after, sig);
    printf("    %s, SIG%s: %s", stage, sig, strstr(out, "status") ? strstr(out, "status") : out);
    // SIGINT/SIGTERM: a clean stop (EXIT_STOPPED, 3); SIGKILL: killed (137).
    // Either way the run must not have finished on its own.
    assert_non_null(strstr(out, strcmp(sig, "KILL") ? "status 3" : "status 137"));
    if (strcmp(sig, "KILL")) assert_non_null(strstr(out, "interrupted after step"));
    rc = run_cmd(out, sizeof out, "cd %s && %s%s --resume cut_%s", f->dir, f->bin, stage, stage);
    if (rc) printf("%s\n", out);
    assert_int_equal(rc, 0);
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && cmp full_%s/model.bin cut_%s/model.bin && cmp full_%s/model.opt cut_%s/model.opt",
                             f->dir, stage, stage, stage, stage), 0);
}

static void test_pretrain_resumes_after_sigkill(void **state) {
    Fixture *f = *state;
    char args[2048];
    snprintf(args, sizeof args, "--config smoke --steps 400 --save-every 7 --eval-every 1000 --tokenizer tok.bin "
             "--data %s/fortunes.jsonl", f->data);
    interrupt_and_resume(f, "pretrain", args, "KILL", 30);
}

static void test_sft_resumes_after_signals(void **state) {
    Fixture *f = *state;
    char args[2048];
    snprintf(args, sizeof args, "--config smoke --steps 400 --save-every 7 --eval-every 1000 --eval-prompts 2 --init pre/model.bin "
             "--tokenizer tok.bin --data %s/sft.jsonl --val %s/sft_val.jsonl", f->data, f->data);
    interrupt_and_resume(f, "sft", args, "INT", 20);
    interrupt_and_resume(f, "sft", args, "KILL", 30);
}

static void test_train_rm_resumes_after_signals(void **state) {
    Fixture *f = *state;
    const char *args = "--config smoke --steps 600 --save-every 7 --eval-every 1000 --init sft/model.bin --tokenizer tok.bin "
                       "--pairs prefs/prefs.jsonl --val prefs/prefs_val.jsonl";
    interrupt_and_resume(f, "train_rm", args, "TERM", 20);
    interrupt_and_resume(f, "train_rm", args, "KILL", 30);
}

static void test_ppo_resumes_after_signals(void **state) {
    Fixture *f = *state;
    char args[2048];
    snprintf(args, sizeof args, "--config smoke --steps 150 --save-every 3 --sample-every 1000 --eval-n 2 --target-kl 0.05 "
             "--policy sft/model.bin --rm rm/model.bin --tokenizer tok.bin --prompts %s/prompts_train.jsonl "
             "--eval-prompts %s/prompts_eval.jsonl --data-dir %s", f->data, f->data, f->data);
    interrupt_and_resume(f, "ppo", args, "INT", 10);
    interrupt_and_resume(f, "ppo", args, "KILL", 15);
}

static void test_dpo_resumes_after_signals(void **state) {
    Fixture *f = *state;
    char args[2048];
    snprintf(args, sizeof args, "--config smoke --steps 400 --save-every 7 --val-every 1000 --sample-every 1000 "
             "--init sft/model.bin --tokenizer tok.bin --pairs prefs/prefs.jsonl --val prefs/prefs_val.jsonl "
             "--data-dir %s", f->data);
    interrupt_and_resume(f, "dpo", args, "INT", 20);
    interrupt_and_resume(f, "dpo", args, "KILL", 30);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pretrain_resumes_after_sigkill),
        cmocka_unit_test(test_sft_resumes_after_signals),
        cmocka_unit_test(test_train_rm_resumes_after_signals),
        cmocka_unit_test(test_ppo_resumes_after_signals),
        cmocka_unit_test(test_dpo_resumes_after_signals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
