// The held-out evaluation (ppo/heldout.c) end to end on the smoke config:
// evaluate --dump writes every sample, and every average of eval.json is
// recomputed from the dump; each dumped response scored again by `score`
// gets the dump's reward and gold (one encoding everywhere); ppo
// --eval-every writes heldout.csv from step 0, a resumed run writes the same
// rows, and a checkpoint kept with --keep-every evaluates to its row.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "model/checkpoint.h"
#include "tests/testutil.h"

typedef struct {
    char dir[256], bin[512], data[512], common[2048];
} Fixture;

enum { MAX_ROWS = 256 };

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    make_temp_dir(f->dir, sizeof f->dir);
    bin_path(f->bin, sizeof f->bin, "");
    src_path(f->data, sizeof f->data, "data");
    snprintf(f->common, sizeof f->common,
             "--config smoke --policy sft/model.bin --rm rm/model.bin --tokenizer tok.bin --prompts %s/prompts_train.jsonl "
             "--eval-prompts %s/prompts_eval.jsonl --data-dir %s", f->data, f->data, f->data);
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

static double num(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v)) fail_msg("no number \"%s\"", name);
    return v->valuedouble;
}

static cJSON *read_json_file(const char *path) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    cJSON *o = cJSON_Parse(buf);
    assert_non_null(o);
    return o;
}

// ---- recomputing eval.json from the dump ----------------------------------

typedef struct {
    int n;
    cJSON *rec[4096];
} Side;

static void mean_se(const double *x, int n, double *mean, double *se) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += x[i], ss += x[i] * x[i];
    *mean = s / n;
    double var = n > 1 ? (ss - s * s / n) / (n - 1) : 0;
    *se = sqrt(var > 0 ? var / n : 0);
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double distinct(const Side *s, int order) {
    uint64_t *keys = malloc(sizeof(uint64_t) * 4096 * 64);
    size_t count = 0, d = 0;
    for (int i = 0; i < s->n; i++) {
        const cJSON *ids = cJSON_GetObjectItem(s->rec[i], "ids");
        int L = cJSON_GetArraySize(ids) - cJSON_IsTrue(cJSON_GetObjectItem(s->rec[i], "ended"));
        for (int k = 0; k + order <= L; k++) {
            uint64_t a = (uint64_t)cJSON_GetArrayItem(ids, k)->valuedouble;
            keys[count++] = order == 2 ? a << 21 | (uint64_t)cJSON_GetArrayItem(ids, k + 1)->valuedouble : a;
        }
    }
    qsort(keys, count, sizeof *keys, compare_u64);
    for (size_t i = 0; i < count; i++) d += i == 0 || keys[i] != keys[i - 1];
    free(keys);
    return (double)d / count;
}

// Every figure of eval.json's `side` object, from the dump's records.
static void check_side(const Side *s, const cJSON *fig, int samples, int of_reference) {
    int n = s->n;
    double *x = malloc(sizeof(double) * n), mean, se;
    const char *per_sample[][2] = {{"gold", "gold"}, {"rm_score", "rm_score"}};
    for (int m = 0; m < 2; m++) {
        for (int i = 0; i < n; i++) x[i] = num(s->rec[i], per_sample[m][0]);
        mean_se(x, n, &mean, &se);
        assert_float_equal(num(fig, per_sample[m][1]), mean, 1e-12 * (1 + fabs(mean)));
        char name[64];
        snprintf(name, sizeof name, "%s_se", per_sample[m][1]);
        assert_float_equal(num(fig, name), se, 1e-12 * (1 + se));
    }
    // KL, the three estimates, and the perplexity under the reference.
    double k1 = 0, k3 = 0, nll = 0, tokens = 0, ended = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *lp = cJSON_GetObjectItem(s->rec[i], "logp"), *rp = cJSON_GetObjectItem(s->rec[i], "ref_logp");
        const cJSON *kt = cJSON_GetObjectItem(s->rec[i], "kl_full_tokens");
        int L = (int)num(s->rec[i], "length");
        assert_int_equal(cJSON_GetArraySize(lp), L);
        double row_k1 = 0, row_k3 = 0, row_full = 0;
        for (int k = 0; k < L; k++) {
            double log_rho = cJSON_GetArrayItem(rp, k)->valuedouble - cJSON_GetArrayItem(lp, k)->valuedouble;
            k1 -= log_rho, k3 += expm1(log_rho) - log_rho, row_k1 -= log_rho, row_k3 += expm1(log_rho) - log_rho;
            nll -= cJSON_GetArrayItem(rp, k)->valuedouble, tokens++;
            if (kt) {
                double t = cJSON_GetArrayItem(kt, k)->valuedouble;
                assert_true(t >= 0); // a KL is never negative
                row_full += t;
            }
        }
        ended += cJSON_IsTrue(cJSON_GetObjectItem(s->rec[i], "ended"));
        if (!of_reference) { // the per-response figures are the sums of the per-token ones
            assert_float_equal(num(s->rec[i], "k1"), row_k1, 1e-9);
            assert_float_equal(num(s->rec[i], "k3"), row_k3, 1e-9);
            assert_true(num(s->rec[i], "kl_full") == row_full);
        }
        x[i] = row_full;
    }
    if (!of_reference) {
        mean_se(x, n, &mean, &se);
        assert_float_equal(num(fig, "kl_full"), mean, 1e-12 * (1 + mean));
        assert_float_equal(num(fig, "kl_full_se"), se, 1e-12 * (1 + se));
        assert_float_equal(num(fig, "kl"), k1 / n, 1e-12 * (1 + fabs(k1)));
        assert_float_equal(num(fig, "kl_k3"), k3 / n, 1e-12 * (1 + k3));
    } else { // KL(reference || reference)
        assert_true(num(fig, "kl_full") == 0 && num(fig, "kl") == 0 && num(fig, "kl_k3") == 0);
    }
    assert_float_equal(num(fig, "perplexity_under_ref"), exp(nll / tokens), 1e-9);
    assert_float_equal(num(fig, "mean_length"), tokens / n, 1e-12);
    assert_float_equal(num(fig, "end_rate"), ended / n, 1e-12);
    assert_float_equal(num(fig, "distinct_1"), distinct(s, 1), 1e-12);
    assert_float_equal(num(fig, "distinct_2"), distinct(s, 2), 1e-12);
    // The gold's parts.
    const char *parts[][2] = {{"valence", "valence"}, {"topic", "topic"}, {"fluency", "fluency"}, {"length", "length"},
                              {"repetition", "repetition"}};
    for (int p = 0; p < 5; p++) {
        double m = 0;
        for (int i = 0; i < n; i++) m += num(cJSON_GetObjectItem(s->rec[i], "gold_parts"), parts[p][0]) / n;
        assert_float_equal(num(cJSON_GetObjectItem(fig, "gold_parts"), parts[p][1]), m, 1e-12);
    }
    // The reward model's agreement with gold on pairs of one prompt's samples.
    double rate[4096];
    int used = 0;
    long pairs_total = 0;
    for (int p = 0; p < n / samples; p++) {
        double agree = 0;
        int pairs = 0;
        for (int a = p * samples; a < (p + 1) * samples; a++)
            for (int b = a + 1; b < (p + 1) * samples; b++) {
                assert_int_equal((int)num(s->rec[a], "prompt_index"), (int)num(s->rec[b], "prompt_index"));
                double dg = num(s->rec[a], "gold") - num(s->rec[b], "gold");
                double ds = num(s->rec[a], "rm_score") - num(s->rec[b], "rm_score");
                if (dg == 0) continue;
                agree += ds == 0 ? 0.5 : (ds > 0) == (dg > 0), pairs++;
            }
        if (pairs) rate[used++] = agree / pairs;
        pairs_total += pairs;
    }
    assert_true(used > 2); // the test has pairs to count
    mean_se(rate, used, &mean, &se);
    assert_float_equal(num(fig, "rm_gold_agreement"), mean, 1e-12);
    assert_float_equal(num(fig, "rm_gold_agreement_se"), se, 1e-12);
    assert_int_equal((long)num(fig, "rm_gold_pairs"), pairs_total);
    free(x);
}

static void test_dump_recomputes_eval_json(void **state) {
    Fixture *f = *state;
    static char out[1 << 16], err[1 << 16];
    int rc = run_in_dir(f->dir, 300, out, sizeof out, err, sizeof err,
                        "%sevaluate --config smoke --samples 3 --policy sft/model.bin --ref pre/model.bin --rm rm/model.bin "
                        "--tokenizer tok.bin --prompts %s/prompts_eval.jsonl --data-dir %s --out ev --dump ev/dump.jsonl",
                        f->bin, f->data, f->data);
    if (rc) printf("%s%s", out, err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "reward model agrees with gold"));
    assert_non_null(strstr(out, "KL to reference (full vocab)"));
    char path[600];
    snprintf(path, sizeof path, "%s/ev/eval.json", f->dir);
    cJSON *ev = read_json_file(path);
    snprintf(path, sizeof path, "%s/ev/dump.jsonl", f->dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    static Side sides[2];
    sides[0].n = sides[1].n = 0;
    static char line[1 << 18];
    while (fgets(line, sizeof line, fp)) {
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        const char *model = cJSON_GetStringValue(cJSON_GetObjectItem(o, "model"));
        assert_non_null(model);
        Side *s = &sides[strcmp(model, "policy") == 0 ? 0 : 1];
        assert_true(s->n < 4096);
        s->rec[s->n++] = o;
    }
    fclose(fp);
    int n = (int)num(ev, "samples");
    assert_int_equal(sides[0].n, n);
    assert_int_equal(sides[1].n, n);
    assert_int_equal(n, 16 * 3);
    check_side(&sides[0], cJSON_GetObjectItem(ev, "policy"), 3, 0);
    check_side(&sides[1], cJSON_GetObjectItem(ev, "reference"), 3, 1);
    double win = 0;
    for (int i = 0; i < n; i++) {
        double a = num(sides[0].rec[i], "gold"), b = num(sides[1].rec[i], "gold");
        win += a > b ? 1.0 : a == b ? 0.5 : 0.0;
    }
    assert_float_equal(num(ev, "gold_win_rate"), win / n, 1e-12);

    // Each response scored again from its text, as a user would: the same
    // reward (one encoding everywhere) and the same gold.
    snprintf(path, sizeof path, "%s/ev/responses.jsonl", f->dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < n; i++) {
            const cJSON *r = sides[s].rec[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "prompt", cJSON_GetStringValue(cJSON_GetObjectItem(r, "prompt")));
            cJSON_AddStringToObject(o, "response", cJSON_GetStringValue(cJSON_GetObjectItem(r, "response")));
            cJSON_AddBoolToObject(o, "ended", cJSON_IsTrue(cJSON_GetObjectItem(r, "ended")));
            char *text = cJSON_PrintUnformatted(o);
            fprintf(fp, "%s\n", text);
            free(text);
            cJSON_Delete(o);
        }
    fclose(fp);
    static char scored[1 << 20], serr[1 << 16];
    rc = run_in_dir(f->dir, 300, scored, sizeof scored, serr, sizeof serr,
                    "%sscore --rm rm/model.bin --tokenizer tok.bin --gold --data-dir %s --jsonl --input ev/responses.jsonl",
                    f->bin, f->data);
    if (rc) printf("%s", serr);
    assert_int_equal(rc, 0);
    char *at = scored;
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < n; i++) {
            char *end = strchr(at, '\n');
            assert_non_null(end);
            *end = '\0';
            cJSON *o = cJSON_Parse(at);
            assert_non_null(o);
            // Batches of other shapes sum in another order.
            assert_float_equal(num(o, "reward"), num(sides[s].rec[i], "rm_score"), 1e-4);
            assert_true((float)num(o, "gold") == (float)num(sides[s].rec[i], "gold"));
            cJSON_Delete(o);
            at = end + 1;
        }
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < sides[s].n; i++) cJSON_Delete(sides[s].rec[i]);
    cJSON_Delete(ev);
}

// --dump naming a file evaluate reads is refused before anything is written.
static void test_dump_never_replaces_an_input(void **state) {
    Fixture *f = *state;
    static char out[1 << 16], err[1 << 16];
    char *before = dir_snapshot(f->dir);
    const char *targets[] = {"sft/model.bin", "tok.bin", "rm/model.bin"};
    for (int i = 0; i < 3; i++) {
        int rc = run_in_dir(f->dir, 60, out, sizeof out, err, sizeof err,
                            "%sevaluate --config smoke --policy sft/model.bin --ref sft/model.bin --rm rm/model.bin "
                            "--tokenizer tok.bin --prompts %s/prompts_eval.jsonl --data-dir %s --dump %s", f->bin,
                            f->data, f->data, targets[i]);
        assert_int_equal(rc, 2);
        assert_true(is_one_line(err));
        assert_non_null(strstr(err, "is the input"));
        assert_non_null(strstr(err, targets[i]));
    }
    int rc = run_in_dir(f->dir, 60, out, sizeof out, err, sizeof err,
                        "%sevaluate --config smoke --policy sft/model.bin --ref sft/model.bin --rm rm/model.bin "
                        "--tokenizer tok.bin --data-dir %s --dump %s/keywords.tsv", f->bin, f->data, f->data);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "annotator's folder"));
    char *after = dir_snapshot(f->dir);
    assert_string_equal(before, after);
    free(before), free(after);
}

// ---- ppo --eval-every ---------------------------------------------------------

static int csv_column(const Fixture *f, const char *run, const char *col, double *v) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s/heldout.csv", f->dir, run);
    return read_csv_column(path, col, v, MAX_ROWS);
}

static void test_ppo_eval_every_and_keep_every(void **state) {
    Fixture *f = *state;
    static char out[1 << 16], err[1 << 16];
    const char *along = "--steps 6 --eval-every 2 --keep-every 2 --eval-n 8";
    int rc = run_in_dir(f->dir, 300, out, sizeof out, err, sizeof err, "%sppo %s %s --out pe", f->bin, f->common, along);
    if (rc) printf("%s%s", out, err);
    assert_int_equal(rc, 0);
    double step[MAX_ROWS], gold[MAX_ROWS], kl_full[MAX_ROWS], agree[MAX_ROWS], kl[MAX_ROWS];
    assert_int_equal(csv_column(f, "pe", "step", step), 4);
    for (int i = 0; i < 4; i++) assert_true(step[i] == 2 * i); // 0, 2, 4 and the final 6
    assert_int_equal(csv_column(f, "pe", "gold", gold), 4);
    assert_int_equal(csv_column(f, "pe", "kl_full", kl_full), 4);
    assert_int_equal(csv_column(f, "pe", "kl", kl), 4);
    assert_int_equal(csv_column(f, "pe", "rm_gold_agreement", agree), 4);
    assert_true(kl_full[0] == 0 && kl[0] == 0); // step 0: the policy is the reference
    for (int i = 1; i < 4; i++) assert_true(kl_full[i] > 0);
    for (int i = 0; i < 4; i++) assert_true(agree[i] >= 0 && agree[i] <= 1);
    // The last row is the final evaluation's.
    char path[600];
    snprintf(path, sizeof path, "%s/pe/heldout.json", f->dir);
    cJSON *j = read_json_file(path);
    const cJSON *pol = cJSON_GetObjectItem(j, "policy");
    assert_true(num(pol, "gold") == gold[3] && num(pol, "kl_full") == kl_full[3]);
    assert_int_equal((int)num(j, "samples_per_prompt"), 2);
    cJSON_Delete(j);
    // Kept checkpoints load, at their step; the one at step 4 evaluates to
    // its row with the held-out settings ppo printed.
    for (int s = 2; s <= 6; s += 2) {
        CkptHeader h;
        Error e;
        snprintf(path, sizeof path, "%s/pe/model_step%d.bin", f->dir, s);
        assert_int_equal(ckpt_verify(path, &h, &e), 0);
        assert_int_equal((int)h.step, s);
        assert_int_equal(h.kind, CKPT_POLICY);
    }
    assert_non_null(strstr(out, "evaluating on 8 held-out prompts, 2 samples each (seed 1338, temperature 1, max-new 24, "
                                "batch 8)"));
    rc = run_in_dir(f->dir, 300, out, sizeof out, err, sizeof err,
                    "%sevaluate --config smoke --samples 2 --n-prompts 8 --seed 1338 --max-new 24 --batch 8 "
                    "--policy pe/model_step4.bin --ref sft/model.bin --rm rm/model.bin --tokenizer tok.bin "
                    "--prompts %s/prompts_eval.jsonl --data-dir %s --out pe4", f->bin, f->data, f->data);
    assert_int_equal(rc, 0);
    snprintf(path, sizeof path, "%s/pe4/eval.json", f->dir);
    j = read_json_file(path);
    assert_true(num(cJSON_GetObjectItem(j, "policy"), "gold") == gold[2]);
    cJSON_Delete(j);

    // Stopped after step 3 and resumed: the same rows, byte for byte.
    rc = run_in_dir(f->dir, 300, out, sizeof out, err, sizeof err, "%sppo %s %s --out pr --stop-after 3", f->bin,
                    f->common, along);
    assert_int_equal(rc, 3);
    assert_int_equal(csv_column(f, "pr", "step", step), 2); // steps 0 and 2
    rc = run_in_dir(f->dir, 300, out, sizeof out, err, sizeof err, "%sppo --resume pr", f->bin);
    assert_int_equal(rc, 0);
    rc = run_in_dir(f->dir, 60, out, sizeof out, err, sizeof err, "cmp pe/heldout.csv pr/heldout.csv && "
                    "cmp pe/model_step4.bin pr/model_step4.bin");
    if (rc) printf("%s%s", out, err);
    assert_int_equal(rc, 0);
    // A fresh run over the folder needs --force, and --force removes the kept checkpoints.
    rc = run_in_dir(f->dir, 300, out, sizeof out, err, sizeof err, "%sppo %s --steps 1 --out pr", f->bin, f->common);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "model_step2.bin"));
    rc = run_in_dir(f->dir, 300, out, sizeof out, err, sizeof err, "%sppo %s --steps 1 --eval-n 2 --out pr --force && "
                    "test ! -e pr/model_step2.bin", f->bin, f->common);
    assert_int_equal(rc, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dump_recomputes_eval_json),
        cmocka_unit_test(test_dump_never_replaces_an_input),
        cmocka_unit_test(test_ppo_eval_every_and_keep_every),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
