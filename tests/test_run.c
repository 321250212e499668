// The training-loop plumbing every stage shares: a NaN stops training with a
// message naming the step and the tensor, and never reaches a checkpoint;
// checkpoints are due at the right steps; settings round-trip through
// config.txt.
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

#include "common/fileio.h"
#include "model/run.h"
#include "tests/testutil.h"

typedef struct {
    char dir[256];
    GPT m;
    CkptHeader h;
    RunLoop loop;
} Fixture;

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    make_temp_dir(f->dir, sizeof f->dir);
    GPTConfig cfg = {.vocab_size = 16};
    Error err;
    if (gpt_config_named(&cfg, "smoke", &err) || gpt_create(&f->m, &cfg, &err) ||
        gpt_alloc_training(&f->m, 1, 4, &err) || ckpt_header_init(&f->h, CKPT_LM, &cfg, "pretrain", &err))
        return -1;
    gpt_init_random(&f->m, 1);
    f->loop = (RunLoop){"test", f->dir, 0, 1, 10, 4, 0, "step,loss", NULL, 0, .tokenizer = {NULL, 0, 0}};
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fixture *f = *state;
    char out[256];
    run_cmd(out, sizeof out, "rm -rf %s", f->dir);
    gpt_free(&f->m);
    free(f);
    return 0;
}

static void read_all(const char *path, unsigned char **buf, size_t *len) {
    Error err;
    assert_int_equal(read_file(path, 1 << 24, buf, len, &err), 0);
}

static void test_nan_stops_training_and_never_reaches_disk(void **state) {
    Fixture *f = *state;
    Error err;
    Rng rng;
    rng_seed(&rng, 3);
    char path[600];
    snprintf(path, sizeof path, "%s/model.bin", f->dir);
    assert_int_equal(run_save(&f->loop, &f->m, &f->h, 4, &rng, NULL, &err), 0); // a good checkpoint
    unsigned char *before, *after;
    size_t n_before, n_after;
    read_all(path, &before, &n_before);

    AdamWConfig opt = adamw_defaults();
    gpt_zero_grad(&f->m);
    assert_true(run_optimizer_step(&f->loop, &f->m, &opt, NAN, 1.0f, 1e-3f, 4, &err) < 0);
    assert_non_null(strstr(err.msg, "loss is nan at step 5"));
    // A NaN in one tensor's gradient: the message names that tensor.
    f->m.grads.fcw[7] = NAN;
    assert_true(run_optimizer_step(&f->loop, &f->m, &opt, 1.0f, 1.0f, 1e-3f, 4, &err) < 0);
    assert_non_null(strstr(err.msg, "gradient of fcw holds a NaN or infinity at step 5"));
    gpt_zero_grad(&f->m);
    // A poisoned parameter is never written, and the file on disk is untouched.
    f->m.params.lnfb[3] = INFINITY;
    assert_int_equal(run_save(&f->loop, &f->m, &f->h, 8, &rng, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "parameter tensor lnfb holds a NaN or infinity at step 8"));
    read_all(path, &after, &n_after);
    assert_int_equal(n_after, n_before);
    assert_memory_equal(after, before, n_before);
    free(before), free(after);
    f->m.params.lnfb[3] = 0.0f;
    assert_null(gpt_first_nonfinite(&f->m, f->m.params_memory));
}

static void test_checkpoints_are_due_at_the_right_steps(void **state) {
    Fixture *f = *state;
    Error err;
    Rng rng;
    rng_seed(&rng, 3);
    char path[600];
    snprintf(path, sizeof path, "%s/due/model.bin", f->dir);
    char dir[400];
    snprintf(dir, sizeof dir, "%s/due", f->dir);
    assert_int_equal(make_dirs(dir, &err), 0);
    RunLoop loop = f->loop;
    loop.out = dir, loop.stop_after = 6;
    CkptHeader h;
    for (uint64_t step = 1; step <= 5; step++) {
        assert_int_equal(run_after_step(&loop, &f->m, &f->h, step, &rng, NULL, &err), 0);
        int exists = ckpt_read_header(path, &h, &err) == 0;
        assert_int_equal(exists, step >= 4); // save_every 4
        if (exists) assert_int_equal(h.step, 4);
    }
    assert_int_equal(run_after_step(&loop, &f->m, &f->h, 6, &rng, NULL, &err), 1); // --stop-after
    assert_int_equal(ckpt_read_header(path, &h, &err), 0);
    assert_int_equal(h.step, 6);
    loop.stop_after = 0;
    assert_int_equal(run_after_step(&loop, &f->m, &f->h, 10, &rng, NULL, &err), 0); // the last step
    assert_int_equal(ckpt_read_header(path, &h, &err), 0);
    assert_int_equal(h.step, 10);
}

static void test_settings_round_trip_through_config_txt(void **state) {
    Fixture *f = *state;
    int steps = 5, flag = 1;
    float lr = 0.25f;
    const char *name = "abc", *resume = "x";
    CliOption opts[] = {{"steps", CLI_INT, &steps, 1, 100, ""}, {"lr", CLI_FLOAT, &lr, 0, 1, ""},
                        {"name", CLI_STRING, &name, 0, 0, ""}, {"verbose", CLI_FLAG, &flag, 0, 0, ""},
                        {"resume", CLI_STRING, &resume, 0, 0, ""}};
    Error err;
    assert_int_equal(run_write_config(f->dir, opts, 5, &err), 0);
    steps = 1, lr = 0, name = NULL, flag = 0, resume = NULL;
    char path[600], *storage;
    snprintf(path, sizeof path, "%s/config.txt", f->dir);
    const char *const skip[] = {"resume", NULL};
    assert_int_equal(cli_load_settings(path, opts, 5, skip, &storage, &err), 0);
    assert_int_equal(steps, 5);
    assert_true(lr == 0.25f);
    char cwd[4096], name_absolute[4200];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(name_absolute, sizeof name_absolute, "%s/abc", cwd);
    assert_string_equal(name, name_absolute); // a string option is a path: recorded absolute
    assert_int_equal(flag, 1);
    assert_null(resume); // skipped: it belongs to one invocation
    free(storage);
    FILE *fp = fopen(path, "a");
    fputs("bogus = 1\n", fp);
    fclose(fp);
    assert_int_equal(cli_load_settings(path, opts, 5, skip, &storage, &err), -1);
    assert_non_null(strstr(err.msg, "config.txt:6: unknown setting 'bogus'"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nan_stops_training_and_never_reaches_disk),
        cmocka_unit_test(test_checkpoints_are_due_at_the_right_steps),
        cmocka_unit_test(test_settings_round_trip_through_config_txt),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
