// Issue 16, the scripts: pipeline.sh and kl_sweep.sh pass paths to gnuplot as
// data (a folder name with a quote runs nothing and still gets its plots);
// pipeline.sh refuses --from after --until, a --seed out of range and a
// control character in --out before any stage runs; Ctrl-C reaches the
// running stage (not tee first), which saves and exits 3, and the pipeline
// stops there and prints the command that resumes it. Runs the scripts of
// MINIRLHF_ROOT with the programs of MINIRLHF_BIN on the smoke config.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "model/checkpoint.h"
#include "tests/testutil.h"

typedef struct {
    char dir[256], root[512], bin[512];
} Fixture;

enum { OUT_N = 1 << 17, ERR_N = 1 << 14 };

typedef struct {
    char out[OUT_N], err[ERR_N];
} Output;

// dst = src in single quotes for sh, each ' written as '\''.
static void shell_quote(char *dst, size_t n, const char *src) {
    size_t k = 0;
    if (k + 1 < n) dst[k++] = '\'';
    for (; *src && k + 5 < n; src++) {
        if (*src == '\'') {
            memcpy(dst + k, "'\\''", 4);
            k += 4;
        } else {
            dst[k++] = *src;
        }
    }
    if (k + 1 < n) dst[k++] = '\'';
    dst[k] = '\0';
}

// Runs pipeline.sh (or another script of scripts/) from DIR/cwd with args.
static int run_script(const Fixture *f, Output *o, const char *script, const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/cwd && cd %s/cwd && exec %sscripts/%s %s", f->dir, f->dir, f->root, script,
             args);
    return run_split(cmd, 300, o->out, sizeof o->out, o->err, sizeof o->err);
}

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    make_temp_dir(f->dir, sizeof f->dir);
    src_path(f->root, sizeof f->root, "");
    bin_path(f->bin, sizeof f->bin, "");
    *state = f;
    if (!f->dir[0]) return -1;
    Output *o = malloc(sizeof *o);
    char args[1024];
    snprintf(args, sizeof args, "--config smoke --out %s/run --until train_rm", f->dir);
    int rc = run_script(f, o, "pipeline.sh", args);
    if (rc) printf("pipeline.sh %s: exit %d\n%s%s", args, rc, o->out, o->err);
    free(o);
    return rc ? -1 : 0;
}

static int teardown(void **state) {
    Fixture *f = *state;
    char out[256];
    run_cmd(out, sizeof out, "rm -rf %s", f->dir);
    free(f);
    return 0;
}

static int is_png(const char *path) {
    FILE *fp = fopen(path, "rb");
    unsigned char sig[8] = {0};
    size_t got = fp ? fread(sig, 1, 8, fp) : 0;
    if (fp) fclose(fp);
    return got == 8 && !memcmp(sig, "\x89PNG\r\n\x1a\n", 8);
}

// Nothing named PWNED anywhere under the test's folder.
static void assert_no_pwned(const Fixture *f) {
    char out[4096];
    assert_int_equal(run_cmd(out, sizeof out, "find %s -name 'PWNED*'", f->dir), 0);
    assert_string_equal(out, "");
}

// An --out with a quote was pasted into gnuplot's code: `';system("touch
// PWNED")` ran a shell command, and a plain apostrophe lost training.png.
static void test_out_with_quotes_is_data_not_code(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    const char *names[] = {"it's", "x';system(\"touch PWNED\");'"};
    for (int i = 0; i < 2; i++) {
        char out[1024], quoted[2048], args[4096], png[1100];
        snprintf(out, sizeof out, "%s/%s", f->dir, names[i]);
        shell_quote(quoted, sizeof quoted, out);
        snprintf(args, sizeof args, "--config smoke --out %s --until pretrain", quoted);
        int rc = run_script(f, o, "pipeline.sh", args);
        if (rc) printf("exit %d\n%s%s", rc, o->out, o->err);
        assert_int_equal(rc, 0);
        snprintf(png, sizeof png, "%s/training.png", out);
        assert_true(is_png(png));
        assert_no_pwned(f);
    }
    // kl_sweep.sh built the same `set output '...'` string.
    char out[1024], quoted[2048], run[600], args[4096];
    snprintf(out, sizeof out, "%s/sweep';system(\"touch PWNED_SWEEP\");'", f->dir);
    shell_quote(quoted, sizeof quoted, out);
    snprintf(run, sizeof run, "%s/run", f->dir);
    snprintf(args, sizeof args, "--config smoke --run %s --out %s --betas 0", run, quoted);
    int rc = run_script(f, o, "kl_sweep.sh", args);
    if (rc) printf("exit %d\n%s%s", rc, o->out, o->err);
    assert_int_equal(rc, 0);
    const char *pngs[] = {"score_vs_kl.png", "reward_over_steps.png", "kl_over_steps.png", "gold_over_steps.png"};
    for (int i = 0; i < 4; i++) {
        char png[1200];
        snprintf(png, sizeof png, "%s/%s", out, pngs[i]);
        assert_true(is_png(png));
    }
    assert_no_pwned(f);
    free(o);
}

// A refusal before anything runs: exit 2, one line on stderr, and the run
// folder byte-identical (nothing rewritten, no stage's log).
static void assert_refused_unchanged(const Fixture *f, const char *args, const char *words) {
    Output *o = malloc(sizeof *o);
    char run[600];
    snprintf(run, sizeof run, "%s/run", f->dir);
    char *before = dir_snapshot(run);
    int rc = run_script(f, o, "pipeline.sh", args);
    char *after = dir_snapshot(run);
    if (rc != 2 || !is_one_line(o->err)) printf("%s: exit %d\n%s%s", args, rc, o->out, o->err);
    assert_int_equal(rc, 2);
    assert_true(is_one_line(o->err));
    assert_non_null(strstr(o->err, words));
    assert_string_equal(o->out, "");
    assert_string_equal(before, after);
    free(before);
    free(after);
    free(o);
}

// --from after --until ran the stages from --from to the end, overwriting them.
static void test_from_after_until_refused(void **state) {
    Fixture *f = *state;
    char args[1024];
    snprintf(args, sizeof args, "--config smoke --out %s/run --from ppo --until sft", f->dir);
    assert_refused_unchanged(f, args, "--from ppo comes after --until sft");
    snprintf(args, sizeof args, "--config smoke --out %s/run --from train_rm --until prefs", f->dir);
    assert_refused_unchanged(f, args, "--from train_rm comes after --until prefs");
}

// A --seed outside pretrain's 0..2147483647 was found by pretrain only, after
// the stages before it had run (or here: after pretrain's log was rewritten).
static void test_seed_out_of_range_refused(void **state) {
    Fixture *f = *state;
    const char *seeds[] = {"2147483648", "99999999999999999999", "4294967297"};
    for (int i = 0; i < 3; i++) {
        char args[1024];
        snprintf(args, sizeof args, "--config smoke --out %s/run --seed %s --from pretrain --until pretrain", f->dir,
                 seeds[i]);
        assert_refused_unchanged(f, args, "--seed must be a whole number from 0 to 2147483647");
    }
    // kl_sweep.sh found it only in ppo, after the sweep folder was made.
    Output *o = malloc(sizeof *o);
    char args[1024], sweep[600];
    snprintf(sweep, sizeof sweep, "%s/seedsweep", f->dir);
    snprintf(args, sizeof args, "--config smoke --run %s/run --out %s --seed 2147483648 --betas 0.5", f->dir, sweep);
    int rc = run_script(f, o, "kl_sweep.sh", args);
    if (rc != 2) printf("kl_sweep.sh %s: exit %d\n%s%s", args, rc, o->out, o->err);
    assert_int_equal(rc, 2);
    assert_true(is_one_line(o->err));
    assert_non_null(strstr(o->err, "--seed must be a whole number from 0 to 2147483647"));
    struct stat st;
    assert_int_not_equal(lstat(sweep, &st), 0); // not created
    free(o);
}

// A newline in --out made a run that cannot be resumed (its paths cannot be
// given back on a command line or read back from config.txt); kl_sweep.sh
// refuses one too.
static void test_control_character_in_out_refused(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    const char *names[] = {"new\nline", "tab\there"};
    for (int i = 0; i < 2; i++) {
        char out[600], quoted[1300], args[2048];
        snprintf(out, sizeof out, "%s/%s", f->dir, names[i]);
        shell_quote(quoted, sizeof quoted, out);
        snprintf(args, sizeof args, "--config smoke --out %s --until bpe", quoted);
        int rc = run_script(f, o, "pipeline.sh", args);
        assert_int_equal(rc, 2);
        assert_true(is_one_line(o->err));
        assert_non_null(strstr(o->err, "--out contains a control character"));
        struct stat st;
        assert_int_not_equal(lstat(out, &st), 0); // not created
        snprintf(args, sizeof args, "--config smoke --run %s/run --out %s --betas 0", f->dir, quoted);
        rc = run_script(f, o, "kl_sweep.sh", args);
        assert_int_equal(rc, 2);
        assert_true(is_one_line(o->err));
        assert_non_null(strstr(o->err, "contains a control character"));
        assert_int_not_equal(lstat(out, &st), 0);
    }
    free(o);
}

// The line of `text` that holds `needle`, without its leading spaces.
static int line_with(const char *text, const char *needle, char *line, size_t n) {
    const char *at = strstr(text, needle);
    if (!at) return -1;
    const char *start = at;
    while (start > text && start[-1] != '\n') start--;
    while (*start == ' ') start++;
    size_t len = strcspn(start, "\n");
    if (len >= n) return -1;
    memcpy(line, start, len);
    line[len] = '\0';
    return 0;
}

// A ppo of kl_sweep.sh that stopped before its last step (exit 3: Ctrl-C,
// SIGTERM) ended the sweep with exit 1 and no word of how to finish it. Here a
// ppo that stops after its first iteration stands in for Ctrl-C: the sweep
// exits 3, prints the command that resumes that run, and the command works.
static void test_kl_sweep_stopped_ppo_says_how_to_resume(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    char out[4096], fake[600], cmd[4096];
    snprintf(fake, sizeof fake, "%s/fakebin", f->dir);
    assert_int_equal(run_cmd(out, sizeof out, "mkdir -p %s && for b in %s*; do ln -sf \"$b\" %s/; done && rm %s/ppo && "
                             "printf '#!/bin/sh\\nexec %sppo \"$@\" --stop-after 1\\n' > %s/ppo && chmod +x %s/ppo",
                             fake, f->bin, fake, fake, f->bin, fake, fake), 0);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/cwd && cd %s/cwd && MINIRLHF_BIN=%s exec %sscripts/kl_sweep.sh --config smoke "
             "--run %s/run --out %s/stopsweep --betas 0.5", f->dir, f->dir, fake, f->root, f->dir, f->dir);
    int rc = run_split(cmd, 300, o->out, sizeof o->out, o->err, sizeof o->err);
    if (rc != EXIT_STOPPED) printf("%s%s", o->out, o->err);
    assert_int_equal(rc, EXIT_STOPPED);
    char resume[2048];
    assert_int_equal(line_with(o->err, "--resume", resume, sizeof resume), 0);
    assert_non_null(strstr(resume, "stopsweep/beta_0.5"));
    assert_non_null(strstr(o->err, "stopped before its last step"));
    // The printed command finishes the run (--stop-after 1 is behind it by then).
    rc = run_split(resume, 300, o->out, sizeof o->out, o->err, sizeof o->err);
    if (rc != 0) printf("%s\n%s%s", resume, o->out, o->err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(o->out, "resuming"));
    assert_non_null(strstr(o->out, "ppo: done"));
    free(o);
}

// Ctrl-C in the pipeline (SIGINT to its process group, as a terminal sends
// it) during pretrain: tee used to die first, so the stage died of SIGPIPE
// with its log cut. Now the stage saves and exits 3, its log.txt is kept, the
// pipeline exits with that status and prints the command that resumes the
// stage, which works, and how to continue after it.
static void test_sigint_reaches_the_stage(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    // Through MINIRLHF_WRAP, pretrain runs long enough to be interrupted.
    char wrap[600], cmd[4096];
    snprintf(wrap, sizeof wrap, "%s/long_pretrain.sh", f->dir);
    FILE *fp = fopen(wrap, "w");
    assert_non_null(fp);
    fputs("#!/bin/sh\ncase \"$1\" in */pretrain) exec \"$@\" --steps 100000 --eval-every 5 --eval-batches 1 "
          "--save-every 100000 ;; esac\nexec \"$@\"\n", fp);
    fclose(fp);
    chmod(wrap, 0755);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/cwd && cd %s/cwd && MINIRLHF_WRAP=%s exec %sscripts/pipeline.sh --config smoke "
             "--out %s/intr --until ppo", f->dir, f->dir, wrap, f->root, f->dir);
    int sent;
    int rc = run_split_signal(cmd, "pretrain 5/100000", SIGINT, 300, o->out, sizeof o->out, o->err, sizeof o->err, &sent);
    printf("    pipeline after Ctrl-C: exit %d\n", rc);
    if (rc != EXIT_STOPPED) printf("%s%s", o->out, o->err);
    assert_true(sent);
    assert_int_equal(rc, EXIT_STOPPED);
    // The stage's log is there, with its last words.
    char path[600], log[OUT_N];
    snprintf(path, sizeof path, "%s/intr/pretrain/log.txt", f->dir);
    fp = fopen(path, "r");
    assert_non_null(fp);
    size_t got = fread(log, 1, sizeof log - 1, fp);
    fclose(fp);
    log[got] = '\0';
    assert_non_null(strstr(log, "pretrain 5/100000"));
    assert_non_null(strstr(log, "interrupted after step"));
    // No later stage ran.
    snprintf(path, sizeof path, "%s/intr/sft", f->dir);
    struct stat st;
    assert_int_not_equal(lstat(path, &st), 0);
    // The printed resume command, run as printed (stopped again one step on).
    char resume[2048], cont[2048], again[4096], pattern[700];
    snprintf(pattern, sizeof pattern, "pretrain --resume %s/intr/pretrain", f->dir);
    assert_int_equal(line_with(o->err, pattern, resume, sizeof resume), 0);
    assert_int_equal(line_with(o->err, "--from sft --until ppo", cont, sizeof cont), 0);
    snprintf(path, sizeof path, "%s/intr/pretrain/model.bin", f->dir);
    CkptHeader h;
    Error err;
    assert_int_equal(ckpt_verify(path, &h, &err), 0);
    assert_true(h.step >= 5 && h.step < 100000);
    snprintf(again, sizeof again, "%s --stop-after %llu", resume, (unsigned long long)h.step + 1);
    rc = run_split(again, 120, o->out, sizeof o->out, o->err, sizeof o->err);
    if (rc != EXIT_STOPPED) printf("%s: exit %d\n%s%s", again, rc, o->out, o->err);
    assert_int_equal(rc, EXIT_STOPPED);
    assert_non_null(strstr(o->out, "resuming"));
    CkptHeader h2;
    assert_int_equal(ckpt_verify(path, &h2, &err), 0);
    assert_int_equal(h2.step, h.step + 1);
    free(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_with_quotes_is_data_not_code),
        cmocka_unit_test(test_from_after_until_refused),
        cmocka_unit_test(test_seed_out_of_range_refused),
        cmocka_unit_test(test_control_character_in_out_refused),
        cmocka_unit_test(test_sigint_reaches_the_stage),
        cmocka_unit_test(test_kl_sweep_stopped_ppo_says_how_to_resume),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
