// The helpers the end-to-end tests judge programs with: if run_split missed a
// hang or mixed the two streams, or dir_snapshot missed a changed byte, the
// reliability tests built on them would pass for the wrong reason.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/testutil.h"

static void test_run_split_keeps_streams_apart(void **state) {
    (void)state;
    char out[64], err[64];
    int rc = run_split("echo to-out; echo to-err >&2; exit 7", 5, out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 7);
    assert_string_equal(out, "to-out\n");
    assert_string_equal(err, "to-err\n");
    rc = run_split("kill -TERM $$", 5, out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 128 + 15);
}

static void test_run_split_kills_a_hang(void **state) {
    (void)state;
    char out[64], err[64];
    time_t t0 = time(NULL);
    // The child of the shell must die too, or the test would wait for it.
    int rc = run_split("sleep 30 & wait", 1, out, sizeof out, err, sizeof err);
    assert_int_equal(rc, -2);
    assert_true(time(NULL) - t0 < 10);
}

static void test_dir_snapshot_sees_every_change(void **state) {
    (void)state;
    char dir[256], out[512];
    make_temp_dir(dir, sizeof dir);
    assert_int_equal(run_cmd(out, sizeof out, "mkdir %s/sub && printf abc > %s/sub/f", dir, dir), 0);
    char *before = dir_snapshot(dir);
    assert_non_null(strstr(before, "./sub/f"));
    assert_int_equal(run_cmd(out, sizeof out, "printf abd > %s/sub/f", dir), 0); // same size, one byte
    char *changed = dir_snapshot(dir);
    assert_string_not_equal(before, changed);
    assert_int_equal(run_cmd(out, sizeof out, "printf abc > %s/sub/f && touch %s/sub/f.tmp.1", dir, dir), 0);
    char *extra = dir_snapshot(dir);
    assert_string_not_equal(before, extra);
    assert_int_equal(run_cmd(out, sizeof out, "rm %s/sub/f.tmp.1", dir), 0);
    char *again = dir_snapshot(dir);
    assert_string_equal(before, again);
    free(before);
    free(changed);
    free(extra);
    free(again);
    run_cmd(out, sizeof out, "rm -rf %s", dir);
}

static void test_is_one_line(void **state) {
    (void)state;
    assert_true(is_one_line("x.jsonl:3: bad\n"));
    assert_false(is_one_line(""));
    assert_false(is_one_line("\n"));
    assert_false(is_one_line("no newline"));
    assert_false(is_one_line("one\ntwo\n"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_split_keeps_streams_apart),
        cmocka_unit_test(test_run_split_kills_a_hang),
        cmocka_unit_test(test_dir_snapshot_sees_every_change),
        cmocka_unit_test(test_is_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
