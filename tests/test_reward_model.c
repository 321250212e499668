// The reward model: the Bradley–Terry loss, recovery of known scores from
// noisy pairwise labels, and the prefs -> train_rm -> score stages end to end.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonl.h"
#include "common/rng.h"
#include "data/prefs_io.h"
#include "model/adamw.h"
#include "model/checkpoint.h"
#include "reward_model/reward_model.h"
#include "tests/testutil.h"

static void test_bt_loss_values_and_gradient(void **state) {
    (void)state;
    double d;
    assert_float_equal(bt_loss(0, 0, 0, &d), log(2.0), 1e-12); // indifferent: log 2
    assert_float_equal(d, -0.5, 1e-12);
    assert_float_equal(bt_loss(2, 0, 0, NULL), log1p(exp(-2.0)), 1e-12);
    assert_float_equal(bt_loss(1, 0, 1, NULL), log(2.0), 1e-12); // the margin shifts the difference
    assert_true(isfinite(bt_loss(-800, 800, 0, &d)) && fabs(bt_loss(-800, 800, 0, &d) - 1600) < 1e-9);
    assert_float_equal(d, -1.0, 1e-12);
    for (double z = -5; z <= 5; z += 0.5) { // against central differences
        double h = 1e-6, num = (bt_loss(z + h, 0.3, 0.1, NULL) - bt_loss(z - h, 0.3, 0.1, NULL)) / (2 * h);
        bt_loss(z, 0.3, 0.1, &d);
        assert_float_equal(d, num, 1e-7);
    }
}

static double spearman(const double *a, const double *b, int n) {
    double ra[64], rb[64];
    for (int i = 0; i < n; i++) {
        ra[i] = rb[i] = 0;
        for (int j = 0; j < n; j++) ra[i] += a[j] < a[i], rb[i] += b[j] < b[i];
    }
    double d2 = 0;
    for (int i = 0; i < n; i++) d2 += (ra[i] - rb[i]) * (ra[i] - rb[i]);
    return 1 - 6 * d2 / (n * ((double)n * n - 1));
}

// 30 items with known true scores; 2000 pairs labelled by a Bradley–Terry
// draw (so about a quarter of labels go against the true order); a
// smoke-shaped reward model trained on the labels alone must recover the
// order: Spearman correlation at least 0.9.
static void test_bt_training_recovers_true_order(void **state) {
    (void)state;
    enum { ITEMS = 30, LEN = 6, V = 64, PAIRS = 2000, B = 16, STEPS = 400 };
    GPTConfig cfg = {.vocab_size = V};
    Error err;
    assert_int_equal(gpt_config_named(&cfg, "smoke", &err), 0);
    GPT m;
    assert_int_equal(gpt_create(&m, &cfg, &err), 0);
    gpt_init_random(&m, 1);
    assert_int_equal(gpt_alloc_training(&m, 2 * B, LEN, &err), 0);
    Rng rng;
    rng_seed(&rng, 2);
    int items[ITEMS][LEN], lens[2 * B];
    double truth[ITEMS];
    for (int i = 0; i < ITEMS; i++) {
        for (int t = 0; t < LEN; t++) items[i][t] = (int)rng_below(&rng, V);
        truth[i] = 1.5 * rng_normal(&rng);
    }
    int winner[PAIRS], loser[PAIRS], against = 0;
    for (int k = 0; k < PAIRS; k++) {
        int a = (int)rng_below(&rng, ITEMS), b = (int)((a + 1 + rng_below(&rng, ITEMS - 1)) % ITEMS);
        int a_wins = rng_uniform_double(&rng) < 1 / (1 + exp(-(truth[a] - truth[b])));
        winner[k] = a_wins ? a : b, loser[k] = a_wins ? b : a;
        against += truth[winner[k]] < truth[loser[k]];
    }
    printf("    %d of %d labels go against the true order\n", against, PAIRS);
    int *rows[2 * B], inputs[2 * B * LEN];
    float rewards[2 * B];
    AdamWConfig opt = adamw_defaults();
    for (int step = 0; step < STEPS; step++) {
        for (int i = 0; i < B; i++) {
            int k = (int)rng_below(&rng, PAIRS);
            rows[i] = items[winner[k]], rows[B + i] = items[loser[k]];
        }
        for (int i = 0; i < 2 * B; i++) lens[i] = LEN;
        int T = rm_fill_rows(inputs, rows, lens, 2 * B, 0);
        rm_forward(&m, inputs, lens, 2 * B, T, rewards);
        memset(m.bw.dhead, 0, sizeof(float) * 2 * B * T);
        for (int i = 0; i < B; i++) {
            double d;
            bt_loss(rewards[i], rewards[B + i], 0, &d);
            m.bw.dhead[i * T + LEN - 1] = (float)(d / B);
            m.bw.dhead[(B + i) * T + LEN - 1] = (float)(-d / B);
        }
        gpt_zero_grad(&m);
        gpt_backward(&m, inputs, 0, 1);
        gpt_clip_grad_norm(&m, 1.0f);
        adamw_update(&m, &opt, 1e-3f, step + 1);
    }
    double learned[ITEMS];
    for (int i = 0; i < ITEMS; i++) {
        float r;
        int len = LEN;
        rm_forward(&m, items[i], &len, 1, LEN, &r);
        learned[i] = r;
    }
    double rho = spearman(learned, truth, ITEMS);
    printf("    Spearman(learned, true) = %.3f\n", rho);
    assert_true(rho >= 0.9);
    gpt_free(&m);
}

static void test_rm_encode_keeps_end_token_last(void **state) {
    (void)state;
    char dir[256], out[8192], bpe[512], corpus[600], tok_path[600];
    make_temp_dir(dir, sizeof dir);
    bin_path(bpe, sizeof bpe, "bpe");
    src_path(corpus, sizeof corpus, "data/fortunes.jsonl");
    snprintf(tok_path, sizeof tok_path, "%s/t.bin", dir);
    assert_int_equal(run_cmd(out, sizeof out, "%s train --input %s --jsonl-field text --vocab 300 --out %s", bpe, corpus, tok_path), 0);
    Tokenizer *tok;
    Error err;
    assert_int_equal(tokenizer_load(&tok, tok_path, &err), 0);
    int *ids, n;
    assert_int_equal(rm_encode(tok, "hi", "a very long response indeed, much too long to fit", 12, &ids, &n, &err), 0);
    assert_int_equal(n, 12);
    assert_int_equal(ids[0], tokenizer_special(tok, TOK_USER));
    assert_int_equal(ids[11], tokenizer_special(tok, TOK_ENDOFTEXT));
    free(ids);
    assert_int_equal(rm_encode(tok, "a prompt that is far too long", "x", 5, &ids, &n, &err), -1);
    assert_non_null(strstr(err.msg, "no room"));
    tokenizer_free(tok);
    run_cmd(out, sizeof out, "rm -rf %s", dir);
}

static void test_prefs_train_rm_score_smoke(void **state) {
    (void)state;
    char dir[256], bin[512], data[512], out[16384];
    make_temp_dir(dir, sizeof dir);
    bin_path(bin, sizeof bin, "");
    src_path(data, sizeof data, "data");
    // The smoke chain up to prefs/, then the stage under test.
    int rc = make_smoke_chain(dir, "prefs");
    assert_int_equal(rc, 0);
    rc = run_cmd(out, sizeof out, "cd %s && %strain_rm --config smoke --init sft/model.bin --tokenizer tok.bin "
                 "--pairs prefs/prefs.jsonl --val prefs/prefs_val.jsonl --out rm", dir, bin);
    printf("%s", strstr(out, "train_rm:") ? strstr(out, "train_rm:") : out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "against the gold ordering"));
    char path[600];
    snprintf(path, sizeof path, "%s/rm/model.bin", dir);
    CkptHeader h, sft;
    Error err;
    assert_int_equal(ckpt_verify(path, &h, &err), 0);
    assert_int_equal(h.kind, CKPT_RM);
    assert_string_equal(h.stage, "train_rm");
    snprintf(path, sizeof path, "%s/sft/model.bin", dir);
    assert_int_equal(ckpt_read_header(path, &sft, &err), 0);
    assert_int_equal(h.parent_fp, sft.fingerprint);
    assert_true(h.reward_std > 0 && h.reward_std != 1.0f);
    double loss[64];
    snprintf(path, sizeof path, "%s/rm/metrics.csv", dir);
    assert_int_equal(read_csv_column(path, "loss", loss, 64), 30);
    // The normalisation: every response of the training pairs (samples from
    // the SFT policy) scores mean 0, std 1 through the score command.
    PrefPair *pairs;
    size_t n_pairs;
    snprintf(path, sizeof path, "%s/prefs/prefs.jsonl", dir);
    assert_int_equal(prefs_load(path, &pairs, &n_pairs, &err), 0);
    snprintf(path, sizeof path, "%s/responses.jsonl", dir);
    FILE *fp = fopen(path, "w");
    for (size_t i = 0; i < 2 * n_pairs; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "prompt", pairs[i / 2].prompt);
        cJSON_AddStringToObject(o, "response", i % 2 ? pairs[i / 2].rejected : pairs[i / 2].chosen);
        jsonl_write(fp, o);
        cJSON_Delete(o);
    }
    fclose(fp);
    prefs_free(pairs, n_pairs);
    rc = run_cmd(out, sizeof out, "%sscore --rm %s/rm/model.bin --tokenizer %s/tok.bin --input %s | "
                 "awk '{s+=$1; q+=$1*$1; n++} END {printf \"%%d %%.6f %%.6f\", n, s/n, sqrt(q/n-(s/n)^2)}'",
                 bin, dir, dir, path);
    assert_int_equal(rc, 0);
    int n;
    double mean, std;
    assert_int_equal(sscanf(out, "%d %lf %lf", &n, &mean, &std), 3);
    printf("    %d training responses score mean %.4f, std %.4f after normalisation\n", n, mean, std);
    assert_int_equal(n, (int)(2 * n_pairs));
    assert_true(fabs(mean) < 2e-3 && fabs(std - 1) < 2e-3); // printed with 4 decimals
    // Scoring with stdin, and the --jsonl echo.
    rc = run_cmd(out, sizeof out, "cd %s && echo '{\"prompt\":\"p\",\"response\":\"r\"}' | %sscore --rm rm/model.bin --tokenizer tok.bin --jsonl", dir, bin);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"reward\":"));
    // A stopped and resumed run reproduces the uninterrupted one bit for bit.
    const char *rm_args = "--config smoke --steps 8 --eval-every 100 --init sft/model.bin --tokenizer tok.bin "
                          "--pairs prefs/prefs.jsonl --val prefs/prefs_val.jsonl";
    assert_int_equal(run_cmd(out, sizeof out, "cd %s && %strain_rm %s --out rm_a && { %strain_rm %s --out rm_b --stop-after 3; [ $? = 3 ]; } && "
                             "%strain_rm --resume rm_b && cmp rm_a/model.bin rm_b/model.bin && cmp rm_a/model.opt rm_b/model.opt",
                             dir, bin, rm_args, bin, rm_args, bin), 0);
    // Wrong kinds and mismatched tokenizers are clear errors.
    rc = run_cmd(out, sizeof out, "cd %s && echo '{\"prompt\":\"p\",\"response\":\"r\"}' | %sscore --rm sft/model.bin --tokenizer tok.bin", dir, bin);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "is a language-model checkpoint; expected a reward-model"));
    rc = run_cmd(out, sizeof out,
        "cd %s && %sbpe train --input %s/fortunes.jsonl --jsonl-field text --vocab 400 --out other.bin && "
        "%strain_rm --config smoke --init sft/model.bin --tokenizer other.bin --pairs prefs/prefs.jsonl --val prefs/prefs_val.jsonl --out x",
        dir, bin, data, bin);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "tokenizer"));
    rc = run_cmd(out, sizeof out,
        "cd %s && printf '{\"prompt\":\"a\",\"chosen\":\"b\"}\\n' > bad.jsonl && "
        "%strain_rm --config smoke --init sft/model.bin --tokenizer tok.bin --pairs bad.jsonl --val bad.jsonl --out x", dir, bin);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "bad.jsonl:1"));
    run_cmd(out, sizeof out, "rm -rf %s", dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bt_loss_values_and_gradient),
        cmocka_unit_test(test_bt_training_recovers_true_order),
        cmocka_unit_test(test_rm_encode_keeps_end_token_last),
        cmocka_unit_test(test_prefs_train_rm_score_smoke),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
