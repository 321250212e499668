// Crash safety: SIGKILL at random moments of a run that writes a checkpoint
// at every step. After each kill the checkpoint under the final name verifies
// and the run resumes from it (the training state that belongs to it is
// found whichever write the kill interrupted).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/rng.h"
#include "model/checkpoint.h"
#include "tests/testutil.h"

// Enough kills that one lands between the writes of a checkpoint and its state
// with near certainty (one in three runs of 8 kills caught the old bug).
enum { KILLS = 24 };

static void test_sigkill_never_leaves_a_broken_checkpoint(void **state) {
    (void)state;
    char dir[256], bin[512], data[512], out[8192], path[600];
    make_temp_dir(dir, sizeof dir);
    bin_path(bin, sizeof bin, "");
    src_path(data, sizeof data, "data");
    assert_int_equal(run_cmd(out, sizeof out, "%sbpe train --input %s/fortunes.jsonl --jsonl-field text --vocab 300 --out %s/tok.bin",
                             bin, data, dir), 0);
    Rng rng;
    rng_seed(&rng, 17);
    snprintf(path, sizeof path, "%s/run/model.bin", dir);
    int killed_mid_run = 0;
    for (int k = 0; k < KILLS; k++) {
        // Start (or resume) a run that saves at every step, let it reach a
        // random moment, and kill it without warning.
        const char *how = k == 0 ? "" : "--resume";
        int delay_ms = (int)rng_below(&rng, 150);
        int rc = run_cmd(out, sizeof out,
                         "cd %s && if [ -z '%s' ]; then %spretrain --config smoke --steps 1000000 --save-every 1 "
                         "--eval-every 1000000 --tokenizer tok.bin --data %s/fortunes.jsonl --out run & "
                         "else %spretrain --resume run & fi; pid=$!; "
                         "for i in $(seq 600); do [ $(cat run/metrics.csv 2>/dev/null | wc -l) -ge 3 ] && break; sleep 0.1; done; "
                         "sleep %d.%03d; kill -KILL $pid; wait $pid; echo status $?",
                         dir, how, bin, data, bin, delay_ms / 1000, delay_ms % 1000);
        (void)rc;
        killed_mid_run += strstr(out, "status 137") != NULL;
        CkptHeader h;
        Error err;
        assert_int_equal(ckpt_verify(path, &h, &err), 0);
        assert_true(h.step >= 1);
        // Its training state is there: the run resumes and takes a step.
        rc = run_cmd(out, sizeof out, "cd %s && %spretrain --resume run --stop-after %llu", dir, bin,
                     (unsigned long long)h.step + 1);
        if (rc != EXIT_STOPPED) printf("%s\n", out);
        assert_int_equal(rc, EXIT_STOPPED); // stopped before its last step
        assert_int_equal(ckpt_verify(path, &h, &err), 0);
    }
    printf("    %d of %d runs were killed mid-run\n", killed_mid_run, KILLS);
    assert_true(killed_mid_run >= KILLS - 2);
    run_cmd(out, sizeof out, "rm -rf %s", dir);
}

// A full file system: a 600 KB tmpfs holds one checkpoint and its training
// state (about 150 + 300 KB at the smoke shape) but not the next state beside
// them. The second save fails with a message naming the file and the cause,
// and the first checkpoint still verifies and resumes.
static void test_full_disk_keeps_the_last_checkpoint(void **state) {
    (void)state;
    char dir[256], bin[512], data[512], out[8192], path[600];
    make_temp_dir(dir, sizeof dir);
    bin_path(bin, sizeof bin, "");
    src_path(data, sizeof data, "data");
    if (run_cmd(out, sizeof out, "mkdir -p %s/full && mount -t tmpfs -o size=600k tmpfs %s/full", dir, dir) != 0) {
        printf("    skipped: cannot mount a tmpfs here (%s)\n", out);
        run_cmd(out, sizeof out, "rm -rf %s", dir);
        skip();
    }
    int rc = run_cmd(out, sizeof out,
                     "cd %s && %sbpe train --input %s/fortunes.jsonl --jsonl-field text --vocab 300 --out tok.bin && "
                     "%spretrain --config smoke --steps 30 --save-every 10 --eval-every 100 --tokenizer tok.bin "
                     "--data %s/fortunes.jsonl --out full/run", dir, bin, data, bin, data);
    printf("%s", strstr(out, "pretrain: ") ? strstr(out, "pretrain: ") : out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "No space left on device"));
    CkptHeader h;
    Error err;
    snprintf(path, sizeof path, "%s/full/run/model.bin", dir);
    assert_int_equal(ckpt_verify(path, &h, &err), 0);
    assert_int_equal(h.step, 10);
    run_cmd(out, sizeof out, "ls %s/full/run", dir);
    assert_null(strstr(out, ".tmp.")); // no temporary file left behind
    // The run resumes from it elsewhere once there is room.
    rc = run_cmd(out, sizeof out, "cd %s && cp -r full/run roomy && %spretrain --resume roomy --stop-after 12", dir, bin);
    assert_int_equal(rc, EXIT_STOPPED);
    run_cmd(out, sizeof out, "umount %s/full; rm -rf %s", dir, dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_never_leaves_a_broken_checkpoint),
        cmocka_unit_test(test_full_disk_keeps_the_last_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
