// Issue 16, stopping and nonsensical options: a stage stopped before its last
// step exits 3 (EXIT_STOPPED) with a checkpoint to resume from; ppo's final
// evaluation and prefs' sampling honour SIGINT; options that cannot do what
// they say are refused (abbreviations, a greedy prefs run); a failed write to
// standard output is an error; a valid --init under a long path is accepted.
// Each test runs the built programs (MINIRLHF_BIN) on one smoke chain.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/checkpoint.h"
#include "tests/testutil.h"

typedef struct {
    char dir[256], bin[512], data[512];
} Fixture;

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    make_temp_dir(f->dir, sizeof f->dir);
    bin_path(f->bin, sizeof f->bin, "");
    src_path(f->data, sizeof f->data, "data");
    *state = f;
    return f->dir[0] && make_smoke_chain(f->dir, "rm") == 0 ? 0 : -1;
}

static int teardown(void **state) {
    Fixture *f = *state;
    char out[256];
    run_cmd(out, sizeof out, "rm -rf %s", f->dir);
    free(f);
    return 0;
}

enum { OUT_N = 1 << 16, ERR_N = 1 << 12 };

typedef struct {
    char out[OUT_N], err[ERR_N];
} Output;

// Runs `cd DIR && exec ...`, formatted, with run_split and a timeout.
static int run_in(const Fixture *f, Output *o, int timeout_s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun_in_dir(f->dir, timeout_s, o->out, sizeof o->out, o->err, sizeof o->err, fmt, ap);
    va_end(ap);
    return rc;
}

static void assert_step(const Fixture *f, const char *rel, uint64_t step) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", f->dir, rel);
    CkptHeader h;
    Error err;
    assert_int_equal(ckpt_verify(path, &h, &err), 0);
    assert_int_equal(h.step, step);
}


// --stop-after N in each training stage: a checkpoint at step N, the message
// that says how to resume, nothing on stderr, and exit 3 (0 before: a script
// could not tell a partly trained model from a finished one).
static void test_stop_after_exits_3_in_every_stage(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    const char *d = f->data;
    char cmds[4][4096];
    snprintf(cmds[0], sizeof cmds[0], "%spretrain --config smoke --tokenizer tok.bin --data %s/fortunes.jsonl "
             "--out stop_pre --stop-after 2", f->bin, d);
    snprintf(cmds[1], sizeof cmds[1], "%ssft --config smoke --eval-prompts 2 --init pre/model.bin --tokenizer tok.bin "
             "--data %s/sft.jsonl --val %s/sft_val.jsonl --out stop_sft --stop-after 2", f->bin, d, d);
    snprintf(cmds[2], sizeof cmds[2], "%strain_rm --config smoke --init sft/model.bin --tokenizer tok.bin "
             "--pairs prefs/prefs.jsonl --val prefs/prefs_val.jsonl --out stop_rm --stop-after 2", f->bin);
    snprintf(cmds[3], sizeof cmds[3], "%sppo --config smoke --policy sft/model.bin --rm rm/model.bin --tokenizer tok.bin "
             "--prompts %s/prompts_train.jsonl --eval-prompts %s/prompts_eval.jsonl --data-dir %s --out stop_ppo "
             "--stop-after 2", f->bin, d, d, d);
    const char *dirs[4] = {"stop_pre", "stop_sft", "stop_rm", "stop_ppo"};
    char real[PATH_MAX];
    assert_non_null(realpath(f->dir, real));
    for (int i = 0; i < 4; i++) {
        int rc = run_in(f, o, 120, "%s", cmds[i]);
        if (rc != EXIT_STOPPED) printf("%s: exit %d\n%s%s", dirs[i], rc, o->out, o->err);
        assert_int_equal(rc, EXIT_STOPPED);
        assert_string_equal(o->err, "");
        assert_non_null(strstr(o->out, "stopped as asked after step 2"));
        char resume[PATH_MAX + 64], model[300];
        snprintf(resume, sizeof resume, "--resume %s/%s)", real, dirs[i]); // absolute: works from any folder
        assert_non_null(strstr(o->out, resume));
        snprintf(model, sizeof model, "%s/model.bin", dirs[i]);
        assert_step(f, model, 2);
    }
    free(o);
}

// SIGTERM (as `kill` or a batch system sends it) mid-run: checkpoint, exit 3.
static void test_sigterm_exits_3(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && exec %spretrain --config smoke --steps 100000 --eval-every 2 --eval-batches 1 "
             "--save-every 100000 --tokenizer tok.bin --data %s/fortunes.jsonl --out term_pre", f->dir, f->bin, f->data);
    int sent;
    int rc = run_split_signal(cmd, "pretrain 2/100000", SIGTERM, 120, o->out, sizeof o->out, o->err, sizeof o->err, &sent);
    assert_true(sent);
    assert_int_equal(rc, EXIT_STOPPED);
    assert_string_equal(o->err, "");
    assert_non_null(strstr(o->out, "interrupted after step"));
    char real[PATH_MAX], resume[PATH_MAX + 64];
    assert_non_null(realpath(f->dir, real));
    snprintf(resume, sizeof resume, "--resume %s/term_pre)", real); // absolute: works from any folder
    assert_non_null(strstr(o->out, resume));
    char path[600];
    snprintf(path, sizeof path, "%s/term_pre/model.bin", f->dir);
    CkptHeader h;
    Error err;
    assert_int_equal(ckpt_verify(path, &h, &err), 0);
    assert_true(h.step >= 2 && h.step < 100000);
    free(o);
}

// SIGINT during ppo's held-out evaluation after the last step (ignored
// before: the evaluation ran to its end): stop, exit 3, say that --resume runs
// the evaluation; model.bin is the finished one and --resume does just that.
static void test_ppo_sigint_during_final_evaluation(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && exec %sppo --config smoke --steps 1 --eval-n 240 --max-new 64 --policy sft/model.bin "
             "--rm rm/model.bin --tokenizer tok.bin --prompts %s/prompts_train.jsonl --eval-prompts %s/prompts_eval.jsonl "
             "--data-dir %s --out eval_int", f->dir, f->bin, f->data, f->data, f->data);
    int sent;
    int rc = run_split_signal(cmd, "ppo: evaluating", SIGINT, 120, o->out, sizeof o->out, o->err, sizeof o->err, &sent);
    if (rc != EXIT_STOPPED) printf("exit %d (signal sent: %d)\n%s%s", rc, sent, o->out, o->err);
    assert_true(sent);
    assert_int_equal(rc, EXIT_STOPPED);
    assert_string_equal(o->err, "");
    assert_non_null(strstr(o->out, "interrupted during the held-out evaluation"));
    assert_non_null(strstr(o->out, "--resume eval_int"));
    assert_null(strstr(o->out, "held-out gold score"));
    assert_step(f, "eval_int/model.bin", 1);
    assert_int_equal(run_in(f, o, 10, "sh -c 'cp eval_int/model.bin model_before.bin && cp eval_int/model.opt opt_before'"), 0);
    // --resume at the last step runs the evaluation alone; model.bin and its
    // training state stay the same bytes.
    rc = run_in(f, o, 120, "%sppo --resume eval_int", f->bin);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(o->out, "held-out gold score"));
    assert_int_equal(run_in(f, o, 10, "sh -c 'cmp model_before.bin eval_int/model.bin && cmp opt_before eval_int/model.opt'"), 0);
    free(o);
}

// Runs prefs into out_dir (with `more` options) and sends SIGINT once it
// samples; asserts exit 3 and the message that nothing was written.
static void interrupt_prefs(const Fixture *f, Output *o, const char *out_dir, const char *more) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && exec %sprefs --policy sft/model.bin --tokenizer tok.bin --prompts "
             "%s/prompts_train.jsonl --data-dir %s --pairs 20000 --seed 7 %s --out %s", f->dir, f->bin, f->data,
             f->data, more, out_dir);
    int sent;
    int rc = run_split_signal(cmd, "sequences |", SIGINT, 120, o->out, sizeof o->out, o->err, sizeof o->err, &sent);
    if (rc != EXIT_STOPPED) printf("exit %d (signal sent: %d)\n%s%s", rc, sent, o->out, o->err);
    assert_true(sent);
    assert_int_equal(rc, EXIT_STOPPED);
    assert_string_equal(o->err, "");
    assert_non_null(strstr(o->out, "interrupted while sampling; nothing written"));
}

// SIGINT while prefs samples: it used to write config.txt first, so a new
// folder held a config.txt and no pairs, and an old run's folder a config.txt
// describing pairs it did not hold. Now: exit 3, no run file in a new folder,
// and a finished run's folder byte-identical even with --force (the old pairs
// are replaced only when the new ones are written).
static void test_prefs_sigint_leaves_folder_as_it_was(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    interrupt_prefs(f, o, "prefs_new", "");
    assert_int_not_equal(run_in(f, o, 10, "sh -c 'ls -A prefs_new 2>/dev/null | grep -v \"^\\.lock$\"'"), 0);
    assert_int_equal(run_in(f, o, 60, "sh -c 'rm -rf prefs_int && cp -r prefs prefs_int'"), 0);
    char *before = dir_snapshot_at(f->dir, "prefs_int");
    interrupt_prefs(f, o, "prefs_int", "--force");
    char *after = dir_snapshot_at(f->dir, "prefs_int");
    assert_string_equal(before, after);
    free(before);
    free(after);
    free(o);
}

// prefs options under which no pair can differ (both responses greedy) wrote
// 0 pairs and exited 0: now one line on stderr, exit 2 (a usage error),
// nothing created.
static void test_prefs_refuses_settings_that_make_no_pair(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    const char *bad[] = {"--temperature 0", "--temperature 0 --temperature2 0", "--top-k 1"};
    for (int i = 0; i < 3; i++) {
        int rc = run_in(f, o, 60, "%sprefs --policy sft/model.bin --tokenizer tok.bin --prompts %s/prompts_train.jsonl "
                        "--data-dir %s --pairs 16 %s --out prefs_none", f->bin, f->data, f->data, bad[i]);
        if (rc != 2) printf("%s: exit %d\n%s%s", bad[i], rc, o->out, o->err);
        assert_int_equal(rc, 2);
        assert_true(is_one_line(o->err));
        assert_non_null(strstr(o->err, "prefs: "));
        assert_non_null(strstr(o->err, "no pair can be made"));
        assert_int_equal(run_in(f, o, 10, "test ! -e prefs_none"), 0);
    }
    // A greedy first response with a sampled second one still makes pairs.
    assert_int_equal(run_in(f, o, 60, "%sprefs --policy sft/model.bin --tokenizer tok.bin --prompts %s/prompts_train.jsonl "
                            "--data-dir %s --pairs 16 --temperature 0 --temperature2 1 --out prefs_some",
                            f->bin, f->data, f->data), 0);
    free(o);
}

// `--conf smoke` was taken as --config (getopt_long's prefix matching) and
// ran with the tiny defaults: every program now refuses a prefix by name.
static void test_abbreviated_options_refused(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    int rc = run_in(f, o, 60, "%spretrain --conf smoke --steps 2 --tokenizer tok.bin --data %s/fortunes.jsonl --out abbrev",
                    f->bin, f->data);
    assert_int_equal(rc, 2); // a usage error
    assert_string_equal(o->err, "pretrain: unknown option '--conf' (did you mean --config?)\n");
    assert_string_equal(o->out, "");
    assert_int_equal(run_in(f, o, 10, "test ! -e abbrev"), 0);
    struct {
        const char *args, *expect;
    } cases[] = {
        {"sample --model sft/model.bin --tokenizer tok.bin --prompt hi --temp 0",
         "sample: unknown option '--temp' (did you mean --temperature?)\n"},
        {"score --rm rm/model.bin --tok=tok.bin", "score: unknown option '--tok' (did you mean --tokenizer?)\n"},
        {"ckpt info --js rm/model.bin", "ckpt: unknown option '--js' (did you mean --json?)\n"},
        {"prefs --pol sft/model.bin --tokenizer tok.bin --out abbrev", "prefs: unknown option '--pol' (did you mean --policy?)\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rc = run_in(f, o, 60, "%s%s", f->bin, cases[i].args);
        if (rc != 2 || strcmp(o->err, cases[i].expect)) printf("%s: exit %d\n%s", cases[i].args, rc, o->err);
        assert_int_equal(rc, 2);
        assert_string_equal(o->err, cases[i].expect);
    }
    assert_int_equal(run_in(f, o, 10, "test ! -e abbrev"), 0);
    free(o);
}

// Standard output that cannot be written (> /dev/full) was ignored, exit 0:
// now one line naming the cause, exit 1.
static void test_stdout_write_failure_exits_1(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    struct {
        const char *prog, *args;
    } cases[] = {
        {"score", "score --rm rm/model.bin --tokenizer tok.bin --input %s/prefs_pairs.jsonl"},
        {"sample", "sample --model sft/model.bin --tokenizer tok.bin --prompt hi --max-new 8"},
        {"ckpt", "ckpt info rm/model.bin"},
        {"ckpt", "ckpt lineage rm/model.bin"},
        {"ckpt", "ckpt verify rm/model.bin"},
        {"bpe", "bpe info --tokenizer tok.bin"},
    };
    char pairs[600];
    snprintf(pairs, sizeof pairs, "%s/prefs_pairs.jsonl", f->dir);
    FILE *fp = fopen(pairs, "w");
    assert_non_null(fp);
    fputs("{\"prompt\": \"hi\", \"response\": \"there\"}\n", fp);
    fclose(fp);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[512], expect[256];
        snprintf(args, sizeof args, cases[i].args, f->dir);
        int rc = run_in(f, o, 60, "%s%s > /dev/full", f->bin, args);
        snprintf(expect, sizeof expect, "%s: standard output: write failed: No space left on device\n", cases[i].prog);
        if (rc != 1 || strcmp(o->err, expect)) printf("%s: exit %d\n%s", args, rc, o->err);
        assert_int_equal(rc, 1);
        assert_string_equal(o->err, expect);
        // The same command with somewhere to write succeeds.
        assert_int_equal(run_in(f, o, 60, "%s%s", f->bin, args), 0);
    }
    free(o);
}

// The adaptive KL controller with a horizon shorter than the batch turned
// beta negative after one update (0.05 * (1 - 0.2 * 8) at the smoke batch):
// a KL bonus. Every logged kl_coef of such a run stays positive.
static void test_adaptive_kl_short_horizon_keeps_beta_positive(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    int rc = run_in(f, o, 120, "%sppo --config smoke --steps 4 --target-kl 100 --horizon 1 --policy sft/model.bin "
                    "--rm rm/model.bin --tokenizer tok.bin --prompts %s/prompts_train.jsonl --eval-prompts "
                    "%s/prompts_eval.jsonl --data-dir %s --out kl_short", f->bin, f->data, f->data, f->data);
    assert_int_equal(rc, 0);
    char path[600];
    snprintf(path, sizeof path, "%s/kl_short/metrics.csv", f->dir);
    double beta[16];
    int n = read_csv_column(path, "kl_coef", beta, 16);
    assert_int_equal(n, 4);
    for (int i = 0; i < n; i++) {
        if (!(beta[i] > 0)) printf("kl_coef at step %d: %g\n", i + 1, beta[i]);
        assert_true(beta[i] > 0);
    }
    free(o);
}

// A valid --init under a path longer than the checkpoint header's 255-byte
// parent-path field was refused; the path is a hint: the run goes on, the
// fingerprint is recorded and `ckpt lineage` says the path was not.
static void test_init_under_long_path_accepted(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    char deep[400] = "";
    for (int i = 0; i < 14; i++) strcat(deep, "a_rather_long_folder_name/");
    assert_true(strlen(deep) + strlen("model.bin") > 255);
    assert_int_equal(run_in(f, o, 10, "sh -c 'mkdir -p %s && cp pre/model.bin %s'", deep, deep), 0);
    int rc = run_in(f, o, 120, "%ssft --config smoke --eval-prompts 2 --init %smodel.bin --tokenizer tok.bin --data "
                    "%s/sft.jsonl --val %s/sft_val.jsonl --out sft_deep --stop-after 1", f->bin, deep, f->data, f->data);
    if (rc != EXIT_STOPPED) printf("exit %d\n%s%s", rc, o->out, o->err);
    assert_int_equal(rc, EXIT_STOPPED);
    assert_string_equal(o->err, "");
    char path[600], parent[600];
    snprintf(path, sizeof path, "%s/sft_deep/model.bin", f->dir);
    snprintf(parent, sizeof parent, "%s/pre/model.bin", f->dir);
    CkptHeader h, p;
    Error err;
    assert_int_equal(ckpt_verify(path, &h, &err), 0);
    assert_int_equal(ckpt_verify(parent, &p, &err), 0);
    assert_int_equal(h.parent_fp, p.fingerprint);
    assert_string_equal(h.parent_path, "");
    rc = run_in(f, o, 60, "%sckpt lineage sft_deep/model.bin", f->bin);
    assert_int_equal(rc, 0);
    assert_string_equal(o->err, "");
    assert_non_null(strstr(o->out, "its path was not recorded"));
    rc = run_in(f, o, 60, "%sckpt lineage --json sft_deep/model.bin", f->bin);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(o->out, "\"unrecorded\""));
    free(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_after_exits_3_in_every_stage),
        cmocka_unit_test(test_sigterm_exits_3),
        cmocka_unit_test(test_ppo_sigint_during_final_evaluation),
        cmocka_unit_test(test_prefs_sigint_leaves_folder_as_it_was),
        cmocka_unit_test(test_prefs_refuses_settings_that_make_no_pair),
        cmocka_unit_test(test_abbreviated_options_refused),
        cmocka_unit_test(test_stdout_write_failure_exits_1),
        cmocka_unit_test(test_init_under_long_path_accepted),
        cmocka_unit_test(test_adaptive_kl_short_horizon_keeps_beta_positive),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
