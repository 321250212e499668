// The two user-facing scripts on the smoke config: pipeline.sh runs every
// stage and kl_sweep.sh compares two KL coefficients; every file they promise
// is checked (checkpoints that verify, CSVs with rows, JSON that parses, PNGs
// that are valid images), and evaluate refuses bad checkpoints clearly.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "common/bytes.h"
#include "common/fileio.h"
#include "model/checkpoint.h"
#include "tests/testutil.h"

typedef struct {
    char dir[256], root[512], bin[512];
} Fixture;

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    make_temp_dir(f->dir, sizeof f->dir);
    src_path(f->root, sizeof f->root, "");
    bin_path(f->bin, sizeof f->bin, "");
    *state = f;
    return f->dir[0] ? 0 : -1;
}

static int teardown(void **state) {
    Fixture *f = *state;
    char out[256];
    run_cmd(out, sizeof out, "rm -rf %s", f->dir);
    free(f);
    return 0;
}

// A PNG is valid here if it has the signature, an IHDR chunk with a non-zero
// size and a correct CRC, and ends with an IEND chunk.
static void assert_valid_png(const char *path) {
    unsigned char *buf;
    size_t len;
    Error err;
    assert_int_equal(read_file(path, 1 << 24, &buf, &len, &err), 0);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    assert_true(len > 57);
    assert_memory_equal(buf, sig, 8);
    uint32_t ihdr_len = (uint32_t)buf[8] << 24 | buf[9] << 16 | buf[10] << 8 | buf[11];
    assert_int_equal(ihdr_len, 13);
    assert_memory_equal(buf + 12, "IHDR", 4);
    uint32_t width = (uint32_t)buf[16] << 24 | buf[17] << 16 | buf[18] << 8 | buf[19];
    uint32_t height = (uint32_t)buf[20] << 24 | buf[21] << 16 | buf[22] << 8 | buf[23];
    assert_true(width > 0 && height > 0);
    uint32_t crc = (uint32_t)buf[29] << 24 | buf[30] << 16 | buf[31] << 8 | buf[32];
    assert_int_equal(crc, crc32(0, buf + 12, 17));
    assert_memory_equal(buf + len - 8, "IEND", 4);
    free(buf);
}

static int csv_rows(const char *path) {
    char out[64];
    if (run_cmd(out, sizeof out, "tail -n +2 %s | grep -c .", path) > 1) return -1;
    return atoi(out);
}

static void test_pipeline_and_sweep_write_every_file(void **state) {
    Fixture *f = *state;
    char out[65536], path[1024];
    int rc = run_cmd(out, sizeof out, "cd %s && MINIRLHF_BIN=%s %sscripts/pipeline.sh --config smoke --out %s/run",
                     f->dir, f->bin, f->root, f->dir);
    printf("%s", strstr(out, "# minirlhf run") ? strstr(out, "# minirlhf run") : out);
    assert_int_equal(rc, 0);
    const char *ckpts[][2] = {{"pretrain/model.bin", "pretrain"}, {"sft/model.bin", "sft"}, {"rm/model.bin", "train_rm"},
                              {"ppo/model.bin", "ppo"}};
    for (int i = 0; i < 4; i++) {
        CkptHeader h;
        Error err;
        snprintf(path, sizeof path, "%s/run/%s", f->dir, ckpts[i][0]);
        assert_int_equal(ckpt_verify(path, &h, &err), 0);
        assert_string_equal(h.stage, ckpts[i][1]);
        char metrics[1024];
        snprintf(metrics, sizeof metrics, "%s/run/%.*s/metrics.csv", f->dir, (int)(strchr(ckpts[i][0], '/') - ckpts[i][0]), ckpts[i][0]);
        assert_true(csv_rows(metrics) > 0);
    }
    snprintf(path, sizeof path, "%s/run/prefs/prefs.jsonl", f->dir);
    assert_true(file_exists(path));
    snprintf(path, sizeof path, "%s/run/eval/eval.json", f->dir);
    unsigned char *json;
    size_t len;
    Error err;
    assert_int_equal(read_file(path, 1 << 20, &json, &len, &err), 0);
    cJSON *o = cJSON_Parse((char *)json);
    free(json);
    assert_non_null(o);
    const cJSON *pol = cJSON_GetObjectItem(o, "policy");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(pol, "gold")) && cJSON_IsNumber(cJSON_GetObjectItem(o, "gold_win_rate")));
    cJSON_Delete(o);
    snprintf(path, sizeof path, "%s/run/summary.md", f->dir);
    assert_int_equal(run_cmd(out, sizeof out, "grep -c '^| [a-z_]* | [0-9]* |' %s", path), 0);
    assert_int_equal(atoi(out), 7); // one row per stage, evaluate included
    // Every row has a positive peak memory (MiB) next to its wall time, and
    // agrees with the KiB figure in the stage's folder.
    assert_int_equal(run_cmd(out, sizeof out, "grep -c '^| stage | wall time (s) | peak memory (MiB) |' %s", path), 0);
    assert_int_equal(atoi(out), 1);
    assert_int_equal(run_cmd(out, sizeof out, "awk -F' [|] ' '/^[|] [a-z_]+ [|] [0-9]+ [|] / && $3 + 0 > 0' %s | wc -l", path),
                     0);
    assert_int_equal(atoi(out), 7);
    const char *folders[] = {"bpe", "pretrain", "sft", "prefs", "rm", "ppo", "eval"};
    for (int i = 0; i < 7; i++) {
        snprintf(path, sizeof path, "%s/run/%s/peak_rss_kb.txt", f->dir, folders[i]);
        unsigned char *kb;
        assert_int_equal(read_file(path, 64, &kb, &len, &err), 0);
        long k = atol((char *)kb);
        free(kb);
        assert_true(k > 1024); // a stage holds at least its binary and libraries: over 1 MiB
        assert_int_equal(run_cmd(out, sizeof out, "grep -c '^| [a-z_]* | [0-9]* | %.1f |' %s/run/summary.md", k / 1024.0,
                                 f->dir), 0);
        assert_true(atoi(out) >= 1);
    }
    snprintf(path, sizeof path, "%s/run/summary.md", f->dir);
    assert_int_equal(run_cmd(out, sizeof out, "grep -c 'training.png' %s", path), 0);
    snprintf(path, sizeof path, "%s/run/training.png", f->dir);
    assert_valid_png(path);

    rc = run_cmd(out, sizeof out, "cd %s && MINIRLHF_BIN=%s %sscripts/kl_sweep.sh --config smoke --run %s/run --out %s/sweep --betas 0,0.5",
                 f->dir, f->bin, f->root, f->dir, f->dir);
    assert_int_equal(rc, 0);
    snprintf(path, sizeof path, "%s/sweep/sweep.csv", f->dir);
    assert_int_equal(csv_rows(path), 2);
    assert_int_equal(run_cmd(out, sizeof out, "cut -d, -f1 %s | tail -n 2 | tr '\\n' ' '", path), 0);
    assert_string_equal(out, "0 0.5 ");
    const char *pngs[] = {"score_vs_kl.png", "reward_over_steps.png", "kl_over_steps.png", "gold_over_steps.png"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/sweep/%s", f->dir, pngs[i]);
        assert_valid_png(path);
    }
    snprintf(path, sizeof path, "%s/sweep/beta_0.5/model.bin", f->dir);
    CkptHeader h;
    assert_int_equal(ckpt_verify(path, &h, &err), 0);
    // --method dpo over the same run: dpo trains from the same SFT model and
    // pairs, evaluate writes eval_dpo/ and leaves ppo's eval/ as it was.
    char *ppo_eval = dir_snapshot_at(f->dir, "run/eval");
    rc = run_cmd(out, sizeof out, "cd %s && MINIRLHF_BIN=%s %sscripts/pipeline.sh --config smoke --out %s/run "
                 "--method dpo --from dpo", f->dir, f->bin, f->root, f->dir);
    printf("%s", strstr(out, "# minirlhf run") ? strstr(out, "# minirlhf run") : out);
    assert_int_equal(rc, 0);
    snprintf(path, sizeof path, "%s/run/dpo/model.bin", f->dir);
    assert_int_equal(ckpt_verify(path, &h, &err), 0);
    assert_string_equal(h.stage, "dpo");
    assert_int_equal(h.kind, CKPT_POLICY);
    snprintf(path, sizeof path, "%s/run/dpo/heldout.csv", f->dir);
    assert_true(csv_rows(path) >= 2);
    snprintf(path, sizeof path, "%s/run/eval_dpo/eval.json", f->dir);
    assert_true(file_exists(path));
    char *ppo_eval_after = dir_snapshot_at(f->dir, "run/eval");
    assert_string_equal(ppo_eval, ppo_eval_after);
    free(ppo_eval), free(ppo_eval_after);
    snprintf(path, sizeof path, "%s/run/summary.md", f->dir);
    assert_int_equal(run_cmd(out, sizeof out, "grep -c '^| dpo | [0-9]* | [0-9.]* | held-out pairs: loss' %s", path), 0);
    assert_int_equal(atoi(out), 1);
    assert_int_equal(run_cmd(out, sizeof out, "%sscripts/pipeline.sh --method sgd", f->root), 2);
    assert_non_null(strstr(out, "--method must be ppo or dpo"));
    // Bad arguments are refused before anything runs.
    assert_int_equal(run_cmd(out, sizeof out, "%sscripts/kl_sweep.sh --betas 0,abc", f->root), 2);
    assert_non_null(strstr(out, "'abc' in --betas is not a number"));
    assert_int_equal(run_cmd(out, sizeof out, "%sscripts/pipeline.sh --from nowhere", f->root), 2);
    // --help is the whole header comment and nothing of the code after it.
    const char *scripts[] = {"pipeline.sh", "kl_sweep.sh"}, *last_words[] = {"nothing is installed or built.", "are used."};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(run_cmd(out, sizeof out, "%sscripts/%s --help", f->root, scripts[i]), 0);
        assert_non_null(strstr(out, last_words[i]));
        assert_null(strstr(out, "set -e"));
    }
}

static void test_evaluate_refuses_bad_checkpoints(void **state) {
    Fixture *f = *state;
    char out[8192];
    const char *run = "--tokenizer run/tokenizer.bin --config smoke";
    int rc = run_cmd(out, sizeof out, "cd %s && %sevaluate %s --policy run/missing.bin --ref run/sft/model.bin --rm run/rm/model.bin --data-dir %sdata",
                     f->dir, f->bin, run, f->root);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "run/missing.bin"));
    rc = run_cmd(out, sizeof out, "cd %s && head -c 1000 run/sft/model.bin > cut.bin && %sevaluate %s --policy cut.bin --ref run/sft/model.bin --rm run/rm/model.bin --data-dir %sdata",
                 f->dir, f->bin, run, f->root);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "cut.bin"));
    rc = run_cmd(out, sizeof out, "cd %s && %sevaluate %s --policy run/rm/model.bin --ref run/sft/model.bin --rm run/rm/model.bin --data-dir %sdata",
                 f->dir, f->bin, run, f->root);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "is a reward-model checkpoint"));
    rc = run_cmd(out, sizeof out, "cd %s && %sevaluate %s --policy run/ppo/model.bin --ref run/sft/model.bin --rm run/sft/model.bin --data-dir %sdata",
                 f->dir, f->bin, run, f->root);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "expected a reward-model"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline_and_sweep_write_every_file),
        cmocka_unit_test(test_evaluate_refuses_bad_checkpoints),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
