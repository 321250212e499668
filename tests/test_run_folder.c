// The run-folder guard (model/run_folder.c) end to end: one process per run
// folder, no fresh run over another run's files without --force, no output
// that is an input, logs that a resumed run does not repeat, and dead
// writers' temporary files cleared. Each refusal is one stderr line naming the
// folder or file, exit status 1, and the folder byte-identical afterwards.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "model/run_folder.h"
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
    return make_smoke_chain(f->dir, "rm");
}

static int teardown(void **state) {
    Fixture *f = *state;
    char out[256];
    run_cmd(out, sizeof out, "rm -rf %s", f->dir);
    free(f);
    return 0;
}

// Runs a shell command in the fixture's folder; returns its exit status.
static int sh(const Fixture *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(const Fixture *f, const char *fmt, ...) {
    char cmd[8192], out[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = run_cmd(out, sizeof out, "cd %s && %s", f->dir, cmd);
    if (rc) printf("    %s\n    -> %d: %s\n", cmd, rc, out);
    return rc;
}

// The sft command line of these tests (short, evaluating and sampling often).
static void sft_cmd(const Fixture *f, char *cmd, size_t n, const char *init, const char *out, const char *more) {
    snprintf(cmd, n, "%ssft --config smoke --eval-prompts 2 --steps 8 --eval-every 2 --save-every 4 --init %s "
             "--tokenizer tok.bin --data %s/sft.jsonl --val %s/sft_val.jsonl --out %s %s",
             f->bin, init, f->data, f->data, out, more);
}

// Runs `args` (a whole command line, run in the fixture's folder) and asserts
// the refusal: exit status 1, one stderr line holding `want`, `folder`
// byte-identical before and after, and nothing on stdout (refused at once,
// before the program loads its inputs).
static void assert_refused(const Fixture *f, const char *args, const char *folder, const char *want) {
    char cmd[8192], path[512], out[8192], err[4096];
    snprintf(path, sizeof path, "%s/%s", f->dir, folder);
    snprintf(cmd, sizeof cmd, "cd %s && %s", f->dir, args);
    char *before = dir_snapshot(path);
    int rc = run_split(cmd, 60, out, sizeof out, err, sizeof err);
    char *after = dir_snapshot(path);
    if (rc != 1 || !strstr(err, want) || !is_one_line(err))
        printf("    %s\n    -> %d, stderr: %s    (expected one line with '%s')\n", args, rc, err, want);
    assert_int_equal(rc, 1);
    assert_true(is_one_line(err));
    assert_non_null(strstr(err, want));
    assert_string_equal(before, after);
    assert_string_equal(out, "");
    free(before);
    free(after);
}

static int files_equal(const Fixture *f, const char *a, const char *b) {
    return sh(f, "cmp %s %s", a, b) == 0;
}

// A fresh run (no --resume) into a stopped run's folder is refused; with
// --force it replaces that run entirely: what it leaves is what a fresh run
// into a new folder leaves (samples.txt included, nothing appended).
static void test_fresh_run_over_stopped_run_needs_force(void **state) {
    Fixture *f = *state;
    char cmd[4096];
    sft_cmd(f, cmd, sizeof cmd, "pre/model.bin", "stopped", "--stop-after 4");
    int rc = sh(f, "%s", cmd);
    assert_true(rc == 0 || rc == 3); // stopped before its last step (3 once stages report it)
    sft_cmd(f, cmd, sizeof cmd, "pre/model.bin", "stopped", "");
    assert_refused(f, cmd, "stopped", "stopped: holds another run's files (config.txt, metrics.csv, model.bin");
    sft_cmd(f, cmd, sizeof cmd, "pre/model.bin", "stopped", "--force");
    assert_int_equal(sh(f, "%s", cmd), 0);
    sft_cmd(f, cmd, sizeof cmd, "pre/model.bin", "fresh", "");
    assert_int_equal(sh(f, "%s", cmd), 0);
    assert_true(files_equal(f, "stopped/samples.txt", "fresh/samples.txt"));
    assert_true(files_equal(f, "stopped/model.bin", "fresh/model.bin"));
    // Files that are not a run's (a user's notes, the pipeline's log.txt) do
    // not make a folder another run's, and --force leaves them alone.
    assert_int_equal(sh(f, "mkdir mine && echo keep > mine/notes.txt && echo keep > stopped/notes.txt"), 0);
    sft_cmd(f, cmd, sizeof cmd, "pre/model.bin", "mine", "--steps 2");
    assert_int_equal(sh(f, "%s", cmd), 0);
    sft_cmd(f, cmd, sizeof cmd, "pre/model.bin", "stopped", "--steps 2 --force");
    assert_int_equal(sh(f, "%s", cmd), 0);
    assert_int_equal(sh(f, "grep -q keep mine/notes.txt && grep -q keep stopped/notes.txt"), 0);
}

// Another stage pointed at a run folder is refused too, prefs and evaluate
// (their own code, not run_begin) included.
static void test_other_stage_into_run_folder_refused(void **state) {
    Fixture *f = *state;
    char cmd[4096];
    assert_int_equal(sh(f, "cp -a sft sft_copy && cp -a prefs prefs_copy"), 0);
    snprintf(cmd, sizeof cmd, "%strain_rm --config smoke --steps 2 --init pre/model.bin --tokenizer tok.bin "
             "--pairs prefs/prefs.jsonl --val prefs/prefs_val.jsonl --out sft_copy", f->bin);
    assert_refused(f, cmd, "sft_copy", "sft_copy: holds another run's files");
    snprintf(cmd, sizeof cmd, "%sprefs --policy sft/model.bin --tokenizer tok.bin --prompts %s/prompts_train.jsonl "
             "--data-dir %s --pairs 8 --out prefs_copy", f->bin, f->data, f->data);
    assert_refused(f, cmd, "prefs_copy", "prefs_copy: holds another run's files (config.txt, prefs.jsonl, "
                   "prefs_val.jsonl); pass --force to replace them");
    snprintf(cmd, sizeof cmd, "%sevaluate --config smoke --samples 1 --n-prompts 2 --policy sft/model.bin "
             "--ref sft/model.bin --rm rm/model.bin --tokenizer tok.bin --prompts %s/prompts_eval.jsonl --data-dir %s "
             "--out prefs_copy", f->bin, f->data, f->data);
    assert_refused(f, cmd, "prefs_copy", "prefs_copy: holds another run's files");
    // --force: prefs replaces the old run's files (its own, written again).
    snprintf(cmd, sizeof cmd, "%sprefs --policy sft/model.bin --tokenizer tok.bin --prompts %s/prompts_train.jsonl "
             "--data-dir %s --pairs 8 --out prefs_copy --force", f->bin, f->data, f->data);
    assert_int_equal(sh(f, "%s", cmd), 0);
    assert_int_equal(sh(f, "[ $(wc -l < prefs_copy/prefs.jsonl) -lt 8 ] && ! grep -q '^force' prefs_copy/config.txt"), 0);
}

// sft --out X --init X/model.bin would overwrite its own input: refused even
// with --force, however X is spelled (a symlink, X/../X) and for a hard link
// to one of X's files.
static void test_output_that_is_an_input_refused(void **state) {
    Fixture *f = *state;
    char cmd[4096];
    assert_int_equal(sh(f, "cp -a pre own && ln -s own own_link && ln own/model.bin hard.bin"), 0);
    sft_cmd(f, cmd, sizeof cmd, "own/model.bin", "own", "");
    assert_refused(f, cmd, "own", "own/model.bin: lies inside the output folder own;");
    sft_cmd(f, cmd, sizeof cmd, "own/model.bin", "own_link", "--force");
    assert_refused(f, cmd, "own", "own/model.bin: lies inside the output folder own_link;");
    sft_cmd(f, cmd, sizeof cmd, "own_link/../own/model.bin", "./own/../own", "");
    assert_refused(f, cmd, "own", "own_link/../own/model.bin: lies inside the output folder ./own/../own;");
    sft_cmd(f, cmd, sizeof cmd, "hard.bin", "own", "--force");
    assert_refused(f, cmd, "own", "hard.bin: is the same file as own/model.bin in the output folder");
    // The tokenizer and a data file are inputs as much as the checkpoint.
    assert_int_equal(sh(f, "cp tok.bin own/tok.bin"), 0);
    snprintf(cmd, sizeof cmd, "%spretrain --config smoke --steps 2 --tokenizer own/tok.bin --data %s/fortunes.jsonl "
             "--out own --force", f->bin, f->data);
    assert_refused(f, cmd, "own", "own/tok.bin: lies inside the output folder own;");
    snprintf(cmd, sizeof cmd, "%strain_rm --config smoke --steps 2 --init sft/model.bin --tokenizer tok.bin "
             "--pairs prefs/prefs.jsonl --val prefs/prefs_val.jsonl --out prefs --force", f->bin);
    assert_refused(f, cmd, "prefs", "prefs/prefs.jsonl: lies inside the output folder prefs;");
}

// Starts `cmd` (exec'ed by sh, so the pid is the program's) in its own process group.
static pid_t spawn(const Fixture *f, const char *cmd) {
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        char line[8192];
        snprintf(line, sizeof line, "cd %s && exec %s >/dev/null 2>&1", f->dir, cmd);
        execl("/bin/sh", "sh", "-c", line, (char *)NULL);
        _exit(127);
    }
    return pid;
}

// Two processes on one --out: the second is refused at once, naming the
// first; the kernel drops the lock when the first is killed.
static void test_second_process_on_same_out_refused(void **state) {
    Fixture *f = *state;
    char cmd[4096], busy[512], want[128];
    snprintf(busy, sizeof busy, "%s/busy", f->dir);
    snprintf(cmd, sizeof cmd, "%spretrain --config smoke --steps 10000000 --save-every 1000000 --tokenizer tok.bin "
             "--data %s/fortunes.jsonl --out busy", f->bin, f->data);
    pid_t first = spawn(f, cmd);
    assert_true(first > 0);
    pid_t holder = 0;
    char metrics[600];
    snprintf(metrics, sizeof metrics, "%s/metrics.csv", busy);
    // Up to 60 s for the first to take its lock and write metrics.csv (after
    // config.txt, which `--resume busy` below reads: stopped between its lock
    // and config.txt, the first would make that command fail for another reason).
    for (int i = 0; i < 600 && !(holder == first && file_exists(metrics)); i++) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
        holder = run_folder_holder(busy);
        if (!holder && file_exists(metrics)) break; // an old binary: no lock, but it runs
    }
    kill(first, SIGSTOP); // the folder holds still while the second one tries
    snprintf(cmd, sizeof cmd, "%spretrain --config smoke --steps 2 --tokenizer tok.bin --data %s/fortunes.jsonl "
             "--out busy", f->bin, f->data);
    snprintf(want, sizeof want, "busy: in use by another run (process %ld)", (long)first);
    assert_refused(f, cmd, "busy", want);
    snprintf(cmd, sizeof cmd, "%spretrain --resume busy", f->bin); // --resume and --force are no way round it
    assert_refused(f, cmd, "busy", want);
    snprintf(cmd, sizeof cmd, "%spretrain --config smoke --steps 2 --tokenizer tok.bin --data %s/fortunes.jsonl "
             "--out busy --force", f->bin, f->data);
    assert_refused(f, cmd, "busy", want);
    kill(first, SIGKILL);
    kill(first, SIGCONT);
    waitpid(first, NULL, 0);
    assert_int_equal(run_folder_holder(busy), 0);
    // The lock died with its process: a fresh run may start there now.
    snprintf(cmd, sizeof cmd, "%spretrain --config smoke --steps 2 --tokenizer tok.bin --data %s/fortunes.jsonl "
             "--out busy --force", f->bin, f->data);
    assert_int_equal(sh(f, "%s", cmd), 0);
}

// A run that logged (metrics.csv, samples.txt) past its last checkpoint and
// was then killed: resumed, it logs those steps again, so its logs are cut
// back to the checkpoint's step first and end up as the uninterrupted run's.
static void test_samples_after_resume_equal_uninterrupted(void **state) {
    Fixture *f = *state;
    char cmd[4096];
    sft_cmd(f, cmd, sizeof cmd, "pre/model.bin", "whole", "");
    assert_int_equal(sh(f, "%s", cmd), 0);
    sft_cmd(f, cmd, sizeof cmd, "pre/model.bin", "cut", "--stop-after 4");
    int rc = sh(f, "%s", cmd);
    assert_true(rc == 0 || rc == 3);
    // Killed during the last save: the logs run to step 8, the checkpoint is step 4's.
    assert_int_equal(sh(f, "cp whole/samples.txt whole/metrics.csv cut/ && grep -q '== step 6' cut/samples.txt"), 0);
    assert_int_equal(sh(f, "%ssft --resume cut", f->bin), 0);
    assert_true(files_equal(f, "whole/samples.txt", "cut/samples.txt"));
    assert_true(files_equal(f, "whole/model.bin", "cut/model.bin"));
    assert_int_equal(sh(f, "[ $(grep -c '^6,' cut/metrics.csv) = 1 ]"), 0);
}

// The same for ppo, whose samples.txt blocks read "== step N: kl_coef ...".
static void test_ppo_samples_after_resume_equal_uninterrupted(void **state) {
    Fixture *f = *state;
    char args[2048];
    snprintf(args, sizeof args, "--config smoke --steps 6 --save-every 2 --sample-every 1 --eval-n 4 --policy sft/model.bin "
             "--rm rm/model.bin --tokenizer tok.bin --prompts %s/prompts_train.jsonl --eval-prompts %s/prompts_eval.jsonl "
             "--data-dir %s", f->data, f->data, f->data);
    assert_int_equal(sh(f, "%sppo %s --out ppo_whole", f->bin, args), 0);
    int rc = sh(f, "%sppo %s --out ppo_cut --stop-after 2", f->bin, args);
    assert_true(rc == 0 || rc == 3);
    assert_int_equal(sh(f, "cp ppo_whole/samples.txt ppo_whole/metrics.csv ppo_cut/"), 0);
    assert_int_equal(sh(f, "%sppo --resume ppo_cut", f->bin), 0);
    assert_true(files_equal(f, "ppo_whole/samples.txt", "ppo_cut/samples.txt"));
    assert_true(files_equal(f, "ppo_whole/model.bin", "ppo_cut/model.bin"));
}

// A pid that is certainly not running: a child that has exited and been reaped.
static pid_t dead_pid(void) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
    return pid;
}

// NAME.tmp.PID files of the run's outputs whose writer is dead are removed
// when a stage starts; a live writer's, and files that are not the run's, stay.
static void test_dead_writers_temporaries_removed(void **state) {
    Fixture *f = *state;
    char cmd[4096];
    long dead = (long)dead_pid(), live = (long)getpid();
    assert_int_equal(sh(f, "cp -a sft leftovers && echo x > leftovers/model.bin.tmp.%ld && echo x > "
                        "leftovers/config.txt.tmp.%ld && echo x > leftovers/model.bin.tmp.%ld && echo x > "
                        "leftovers/notes.txt.tmp.%ld", dead, dead, live, dead), 0);
    assert_int_equal(sh(f, "%ssft --resume leftovers --steps 42", f->bin), 0); // the smoke sft ran 40
    assert_int_equal(sh(f, "[ ! -e leftovers/model.bin.tmp.%ld ] && [ ! -e leftovers/config.txt.tmp.%ld ] && "
                        "[ -e leftovers/model.bin.tmp.%ld ] && [ -e leftovers/notes.txt.tmp.%ld ]",
                        dead, dead, live, dead), 0);
    // A fresh run (--force) clears them too.
    assert_int_equal(sh(f, "echo x > leftovers/model.opt.tmp.%ld", dead), 0);
    sft_cmd(f, cmd, sizeof cmd, "pre/model.bin", "leftovers", "--steps 2 --force");
    assert_int_equal(sh(f, "%s", cmd), 0);
    assert_int_equal(sh(f, "[ ! -e leftovers/model.opt.tmp.%ld ] && [ -e leftovers/model.bin.tmp.%ld ]", dead, live),
                     0);
}

// --force belongs to one invocation: not in config.txt, so --resume does not
// re-apply it.
static void test_force_not_stored_in_config(void **state) {
    Fixture *f = *state;
    char cmd[4096];
    assert_int_equal(sh(f, "cp -a sft forced"), 0);
    sft_cmd(f, cmd, sizeof cmd, "pre/model.bin", "forced", "--force --stop-after 2");
    int rc = sh(f, "%s", cmd);
    assert_true(rc == 0 || rc == 3);
    assert_int_equal(sh(f, "! grep -q '^force' forced/config.txt"), 0);
    assert_int_equal(sh(f, "%ssft --resume forced", f->bin), 0);
    assert_int_equal(sh(f, "! grep -q '^force' forced/config.txt"), 0);
}

// pipeline.sh --from STAGE and a second kl_sweep.sh run re-run stages over
// their own folders: they pass --force, and each stage it re-runs starts
// afresh (sft's and ppo's samples.txt are the first run's, not appended to).
static void test_scripts_rerun_stages(void **state) {
    Fixture *f = *state;
    char root[512];
    src_path(root, sizeof root, "");
    assert_int_equal(sh(f, "MINIRLHF_BIN=%s %sscripts/pipeline.sh --config smoke --out pipe >/dev/null 2>&1", f->bin,
                        root), 0);
    assert_int_equal(sh(f, "cp pipe/sft/samples.txt sft_samples && cp pipe/ppo/samples.txt ppo_samples"), 0);
    assert_int_equal(sh(f, "MINIRLHF_BIN=%s %sscripts/pipeline.sh --config smoke --out pipe --from sft >/dev/null 2>&1",
                        f->bin, root), 0);
    assert_true(files_equal(f, "pipe/sft/samples.txt", "sft_samples"));
    assert_true(files_equal(f, "pipe/ppo/samples.txt", "ppo_samples"));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sh(f, "MINIRLHF_BIN=%s %sscripts/kl_sweep.sh --config smoke --run pipe --out sweep --betas 0.5 "
                            ">/dev/null 2>&1", f->bin, root), 0);
        if (i == 0) assert_int_equal(sh(f, "cp sweep/beta_0.5/samples.txt sweep_samples"), 0);
    }
    assert_true(files_equal(f, "sweep/beta_0.5/samples.txt", "sweep_samples"));
}

// log_truncate_after_step keeps the blocks up to the step, and a file without
// blocks past it unchanged.
static void test_log_truncate_after_step(void **state) {
    Fixture *f = *state;
    char path[512];
    snprintf(path, sizeof path, "%s/log.txt", f->dir);
    const char *text = "== step 2 (t) ==\na\n== step 4 (t) ==\nb\n== step 6: kl ==\nc\n== step 10 ==\nd\n";
    Error err;
    assert_int_equal(write_file_atomic(path, text, strlen(text), &err), 0);
    assert_int_equal(log_truncate_after_step(path, 10, &err), 0);
    unsigned char *buf;
    size_t len;
    assert_int_equal(read_file(path, 1 << 20, &buf, &len, &err), 0);
    assert_string_equal((char *)buf, text);
    free(buf);
    assert_int_equal(log_truncate_after_step(path, 5, &err), 0);
    assert_int_equal(read_file(path, 1 << 20, &buf, &len, &err), 0);
    assert_string_equal((char *)buf, "== step 2 (t) ==\na\n== step 4 (t) ==\nb\n");
    free(buf);
    assert_int_equal(log_truncate_after_step(path, 0, &err), 0);
    assert_int_equal(read_file(path, 1 << 20, &buf, &len, &err), 0);
    assert_int_equal(len, 0);
    free(buf);
    snprintf(path, sizeof path, "%s/missing.txt", f->dir);
    assert_int_equal(log_truncate_after_step(path, 3, &err), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_run_over_stopped_run_needs_force),
        cmocka_unit_test(test_other_stage_into_run_folder_refused),
        cmocka_unit_test(test_output_that_is_an_input_refused),
        cmocka_unit_test(test_second_process_on_same_out_refused),
        cmocka_unit_test(test_samples_after_resume_equal_uninterrupted),
        cmocka_unit_test(test_ppo_samples_after_resume_equal_uninterrupted),
        cmocka_unit_test(test_dead_writers_temporaries_removed),
        cmocka_unit_test(test_force_not_stored_in_config),
        cmocka_unit_test(test_scripts_rerun_stages),
        cmocka_unit_test(test_log_truncate_after_step),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
