// Issue 17, run from anywhere: the smoke pipeline run from a folder outside
// the checkout; a PPO run stopped there, its whole run folder moved, and
// resumed from a third folder (it ends as the uninterrupted run does); `ckpt
// lineage` of the moved checkpoints followed back to pretraining, every
// parent found beside its child with the recorded fingerprint; stages started
// from a folder with no data/ find the shipped data files. Runs the scripts
// of MINIRLHF_ROOT with the programs of MINIRLHF_BIN on the smoke config.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/checkpoint.h"
#include "tests/testutil.h"

enum { OUT_N = 1 << 17, ERR_N = 1 << 14 };

typedef struct {
    char out[OUT_N], err[ERR_N];
} Output;

typedef struct {
    char dir[PATH_MAX];   // the test's folder (realpath): cwd/, moved/, third/, empty/
    char root[PATH_MAX];  // the checkout
    char bin[PATH_MAX];   // the executables, with a trailing '/'
    char old_run[PATH_MAX + 32], new_run[PATH_MAX + 32]; // the run folder before and after the move
    char stop_out[4096];  // the resume hint the PPO run stopped before the move printed
    int stop_status;
} Fixture;

static int run_in(const Fixture *f, const char *cwd, Output *o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// Runs a command built from fmt with f->dir/cwd as the current folder and
// OMP_NUM_THREADS=1 (the runs are compared bit for bit).
static int run_in(const Fixture *f, const char *cwd, Output *o, const char *fmt, ...) {
    char cmd[3 * PATH_MAX + 8192], tail[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof tail, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/%s && cd %s/%s && export OMP_NUM_THREADS=1 && %s", f->dir, cwd, f->dir, cwd,
             tail);
    return run_split(cmd, 300, o->out, sizeof o->out, o->err, sizeof o->err);
}

// The PPO options of both runs below, with paths relative to DIR/cwd.
#define PPO_ARGS "--config smoke --policy run/sft/model.bin --rm run/rm/model.bin --tokenizer run/tokenizer.bin"

// The pipeline in DIR/cwd/run; a PPO run stopped after step 2 and the same
// run uninterrupted, beside it; then the run folder moved to DIR/moved/run.
static int build_and_move(Fixture *f, Output *o) {
    int rc = run_in(f, "cwd", o, "%sscripts/pipeline.sh --config smoke --out run", f->root);
    if (rc) {
        printf("pipeline.sh: exit %d\n%s%s", rc, o->out, o->err);
        return -1;
    }
    rc = run_in(f, "cwd", o, "%sppo " PPO_ARGS " --out run/ppo_whole", f->bin);
    if (rc) {
        printf("ppo: exit %d\n%s%s", rc, o->out, o->err);
        return -1;
    }
    f->stop_status = run_in(f, "cwd", o, "%sppo " PPO_ARGS " --out run/ppo_stopped --stop-after 2", f->bin);
    const char *hint = strstr(o->out, "(continue with");
    snprintf(f->stop_out, sizeof f->stop_out, "%.4000s", hint ? hint : "");
    snprintf(f->old_run, sizeof f->old_run, "%s/cwd/run", f->dir);
    snprintf(f->new_run, sizeof f->new_run, "%s/moved/run", f->dir);
    rc = run_in(f, ".", o, "mkdir moved && mv cwd/run moved/run");
    return rc ? -1 : 0;
}

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    char tmp[256];
    make_temp_dir(tmp, sizeof tmp);
    *state = f;
    if (!tmp[0] || !realpath(tmp, f->dir)) return -1;
    src_path(f->root, sizeof f->root, "");
    bin_path(f->bin, sizeof f->bin, "");
    Output *o = malloc(sizeof *o);
    int rc = build_and_move(f, o);
    free(o);
    return rc;
}

static int teardown(void **state) {
    Fixture *f = *state;
    char out[256];
    run_cmd(out, sizeof out, "rm -rf %s", f->dir);
    free(f);
    return 0;
}

// The value of "name = value" in a config.txt, into value (size n).
static void config_value(const char *config_path, const char *name, char *value, size_t n) {
    FILE *fp = fopen(config_path, "r");
    char line[8192];
    size_t len = strlen(name);
    value[0] = '\0';
    while (fp && fgets(line, sizeof line, fp)) {
        if (strncmp(line, name, len) || strncmp(line + len, " = ", 3)) continue;
        line[strcspn(line, "\n")] = '\0';
        snprintf(value, n, "%s", line + len + 3);
    }
    if (fp) fclose(fp);
}

static CkptHeader header_of(const char *run, const char *rel) {
    char path[PATH_MAX + 64];
    CkptHeader h;
    Error err;
    snprintf(path, sizeof path, "%s/%s", run, rel);
    if (ckpt_read_header(path, &h, &err)) fail_msg("%s", err.msg);
    return h;
}

// The stop hint names the run folder absolute, so it works from any folder;
// config.txt records every path absolute.
static void test_stop_hint_and_config_are_absolute(void **state) {
    Fixture *f = *state;
    char want[PATH_MAX + 200], value[PATH_MAX], config[PATH_MAX + 64];
    assert_int_equal(f->stop_status, EXIT_STOPPED);
    snprintf(want, sizeof want, "(continue with --resume %s/ppo_stopped)", f->old_run);
    assert_non_null(strstr(f->stop_out, want));
    snprintf(config, sizeof config, "%s/ppo_whole/config.txt", f->new_run);
    config_value(config, "policy", value, sizeof value);
    snprintf(want, sizeof want, "%s/sft/model.bin", f->old_run);
    assert_string_equal(value, want);
    config_value(config, "out", value, sizeof value);
    snprintf(want, sizeof want, "%s/ppo_whole", f->old_run);
    assert_string_equal(value, want);
    config_value(config, "data-dir", value, sizeof value); // the default: the checkout's data/
    char *data = realpath(f->root, NULL);
    snprintf(want, sizeof want, "%s/data", data);
    free(data);
    assert_string_equal(value, want);
}

// The moved run resumes from a third folder at step 2, finds its inputs
// beside it (saying so), and ends as the uninterrupted run did.
static void test_moved_run_resumes_from_another_folder(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    int rc = run_in(f, "third", o, "%sppo --resume ../moved/run/ppo_stopped", f->bin);
    if (rc) printf("%s%s", o->out, o->err);
    assert_int_equal(rc, 0);
    char want[3 * PATH_MAX + 300];
    snprintf(want, sizeof want, "ppo: resuming ../moved/run/ppo_stopped at step 2 of 6\n");
    assert_non_null(strstr(o->out, want));
    const char *inputs[][2] = {{"policy", "sft/model.bin"}, {"rm", "rm/model.bin"}, {"tokenizer", "tokenizer.bin"}};
    for (int i = 0; i < 3; i++) {
        snprintf(want, sizeof want, "ppo: --%s %s/%s is gone; using %s/%s, at the same place relative to the moved "
                 "run folder\n", inputs[i][0], f->old_run, inputs[i][1], f->new_run, inputs[i][1]);
        assert_non_null(strstr(o->out, want));
    }
    free(o);
    CkptHeader resumed = header_of(f->new_run, "ppo_stopped/model.bin");
    CkptHeader whole = header_of(f->new_run, "ppo_whole/model.bin");
    assert_int_equal(resumed.step, 6);
    assert_int_equal(whole.step, 6);
    assert_int_equal(resumed.payload_crc, whole.payload_crc); // the same parameters, bit for bit
    // The resumed run records where its inputs are now.
    char config[PATH_MAX + 64], value[PATH_MAX];
    snprintf(config, sizeof config, "%s/ppo_stopped/config.txt", f->new_run);
    config_value(config, "tokenizer", value, sizeof value);
    snprintf(want, sizeof want, "%s/tokenizer.bin", f->new_run);
    assert_string_equal(value, want);
}

// `ckpt lineage --json FILE` run from DIR/third, parsed.
static cJSON *lineage_json(const Fixture *f, const char *file, int *status) {
    Output *o = malloc(sizeof *o);
    *status = run_in(f, "third", o, "%sckpt lineage --json %s", f->bin, file);
    cJSON *doc = cJSON_Parse(o->out);
    if (!doc) fail_msg("not JSON: %s%s", o->out, o->err);
    free(o);
    return doc;
}

// Follows the lineage of a moved checkpoint: every link found, in order,
// with the stages and fingerprints of the files beside it.
static void check_moved_lineage(const Fixture *f, const char *child, const char *const *rels, int n) {
    char file[PATH_MAX + 64];
    int status;
    snprintf(file, sizeof file, "../moved/run/%s", child);
    cJSON *doc = lineage_json(f, file, &status);
    assert_int_equal(status, 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "complete")));
    const cJSON *chain = cJSON_GetObjectItem(doc, "chain");
    assert_int_equal(cJSON_GetArraySize(chain), n);
    for (int i = 0; i < n; i++) {
        const cJSON *link = cJSON_GetArrayItem(chain, i);
        CkptHeader h = header_of(f->new_run, rels[i]);
        char fp[16], path[PATH_MAX + 64], recorded[PATH_MAX + 64];
        snprintf(fp, sizeof fp, "%08" PRIx32, h.fingerprint);
        assert_string_equal(cJSON_GetObjectItem(link, "stage")->valuestring, h.stage);
        assert_string_equal(cJSON_GetObjectItem(link, "fingerprint")->valuestring, fp);
        if (i == 0) continue;
        snprintf(path, sizeof path, "%s/%s", f->new_run, rels[i]);
        snprintf(recorded, sizeof recorded, "%s/%s", f->old_run, rels[i]);
        assert_string_equal(cJSON_GetObjectItem(link, "path")->valuestring, path);
        assert_string_equal(cJSON_GetObjectItem(link, "recorded_path")->valuestring, recorded);
    }
    cJSON_Delete(doc);
}

static void test_lineage_of_moved_checkpoints(void **state) {
    Fixture *f = *state;
    const char *ppo[] = {"ppo/model.bin", "sft/model.bin", "pretrain/model.bin"};
    const char *rm[] = {"rm/model.bin", "sft/model.bin", "pretrain/model.bin"};
    const char *resumed[] = {"ppo_stopped/model.bin", "sft/model.bin", "pretrain/model.bin"};
    check_moved_lineage(f, ppo[0], ppo, 3);
    check_moved_lineage(f, rm[0], rm, 3);
    check_moved_lineage(f, resumed[0], resumed, 3);
    assert_string_equal(header_of(f->new_run, "ppo/model.bin").stage, "ppo");
    assert_string_equal(header_of(f->new_run, "rm/model.bin").stage, "train_rm");
    assert_string_equal(header_of(f->new_run, "pretrain/model.bin").stage, "pretrain");
    // The text output says which parents were found beside their child.
    Output *o = malloc(sizeof *o);
    assert_int_equal(run_in(f, "third", o, "%sckpt lineage ../moved/run/ppo/model.bin", f->bin), 0);
    char want[PATH_MAX + 200];
    snprintf(want, sizeof want, "  (found beside the child; recorded as %s/sft/model.bin)\n", f->old_run);
    assert_non_null(strstr(o->out, want));
    free(o);
}

// A file beside the child with another fingerprint is not the parent: the
// chain breaks there, as when nothing is found.
static void test_lineage_beside_checks_the_fingerprint(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    assert_int_equal(run_in(f, ".", o, "cp -r moved/run copy && cp copy/sft/model.bin copy/pretrain/model.bin"), 0);
    int status;
    cJSON *doc = lineage_json(f, "../copy/ppo/model.bin", &status);
    assert_int_equal(status, 1);
    assert_string_equal(cJSON_GetObjectItem(doc, "end")->valuestring, "missing");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "chain")), 2);
    cJSON_Delete(doc);
    status = run_in(f, "third", o, "%sckpt lineage ../copy/ppo/model.bin", f->bin);
    assert_int_equal(status, 1);
    assert_true(is_one_line(o->err));
    char want[PATH_MAX + 200];
    snprintf(want, sizeof want, "is missing: no file at %s/pretrain/model.bin, nor beside it", f->old_run);
    assert_non_null(strstr(o->err, want));
    free(o);
}

// Stages started from a folder with no data/ read the checkout's data files
// by default (the annotator's tables, the corpora and prompt files);
// $MINIRLHF_DATA_DIR replaces that folder.
static void test_stages_find_data_without_data_folder(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    char run[PATH_MAX + 64];
    snprintf(run, sizeof run, "%s", f->new_run);
    int rc = run_in(f, "empty", o, "%sprefs --policy %s/sft/model.bin --tokenizer %s/tokenizer.bin --pairs 8 "
                    "--batch 4 --out prefs", f->bin, run, run);
    if (rc) printf("%s%s", o->out, o->err);
    assert_int_equal(rc, 0);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/empty/prefs", f->dir);
    assert_int_equal(run_cmd(o->out, 64, "cat %s/prefs.jsonl %s/prefs_val.jsonl | wc -l", path, path), 0);
    assert_int_equal(atoi(o->out), 8); // train + validation pairs
    char config[2 * PATH_MAX], value[PATH_MAX], want[PATH_MAX + 64];
    snprintf(config, sizeof config, "%s/config.txt", path);
    config_value(config, "data-dir", value, sizeof value);
    char *data = realpath(f->root, NULL);
    snprintf(want, sizeof want, "%s/data", data);
    free(data);
    assert_string_equal(value, want);
    rc = run_in(f, "empty", o, "%ssft --config smoke --steps 2 --init %s/pretrain/model.bin --tokenizer "
                "%s/tokenizer.bin --out sft", f->bin, run, run);
    if (rc) printf("%s%s", o->out, o->err);
    assert_int_equal(rc, 0);
    rc = run_in(f, "empty", o, "%spretrain --config smoke --steps 2 --tokenizer %s/tokenizer.bin --out pre", f->bin,
                run);
    if (rc) printf("%s%s", o->out, o->err);
    assert_int_equal(rc, 0);
    // The override: a data folder without the tables is the one refused.
    rc = run_in(f, "empty", o, "env MINIRLHF_DATA_DIR=%s/empty %sppo --config smoke --policy %s/sft/model.bin "
                "--rm %s/rm/model.bin --tokenizer %s/tokenizer.bin --out ppo", f->dir, f->bin, run, run, run);
    assert_int_equal(rc, 1);
    assert_true(is_one_line(o->err));
    snprintf(want, sizeof want, "%s/empty/afinn165.tsv", f->dir);
    assert_non_null(strstr(o->err, want));
    free(o);
}

// Absolute paths do not get an input inside the run folder past the
// run-folder guard (model/run_folder.h): refused, the folder left as it was.
static void test_guard_refuses_absolute_input_inside_out(void **state) {
    Fixture *f = *state;
    Output *o = malloc(sizeof *o);
    char guard[PATH_MAX + 64];
    snprintf(guard, sizeof guard, "%s/guard", f->dir);
    assert_int_equal(run_in(f, ".", o, "mkdir guard && cp moved/run/tokenizer.bin guard/"), 0);
    char *before = dir_snapshot(guard);
    int rc = run_in(f, "empty", o, "%spretrain --config smoke --steps 2 --tokenizer %s/tokenizer.bin --out %s --force",
                    f->bin, guard, guard);
    char *after = dir_snapshot(guard);
    assert_int_equal(rc, 1);
    assert_true(is_one_line(o->err));
    assert_non_null(strstr(o->err, "tokenizer.bin"));
    assert_string_equal(before, after);
    free(before);
    free(after);
    free(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_hint_and_config_are_absolute),
        cmocka_unit_test(test_moved_run_resumes_from_another_folder),
        cmocka_unit_test(test_lineage_of_moved_checkpoints),
        cmocka_unit_test(test_lineage_beside_checks_the_fingerprint),
        cmocka_unit_test(test_stages_find_data_without_data_folder),
        cmocka_unit_test(test_guard_refuses_absolute_input_inside_out),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
