// Issue 17, README's figures come from a run of the current code.
//  - The drift rule: README's run-table block names the commit its figures
//    were made at; this test fails once a file that decides what a stage
//    computes differs between that commit and HEAD (skipped outside a git
//    checkout); the check itself is tried on a commit before a change to
//    model/gpt.c.
//  - scripts/readme_tables.sh on a made-up run folder with known figures:
//    the blocks it writes hold those figures (paths shown as runs/CONFIG,
//    "|" escaped in the table), the prose around them is kept, --check exits
//    0 on what it wrote, 1 with a diff after a figure is edited, 0 again
//    after regeneration; a usage error exits 2, a missing file 1 naming it.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/testutil.h"

enum { OUT_N = 1 << 16, ERR_N = 1 << 12 };

// What decides what a stage computes (git pathspecs; "*" also matches "/").
// README states this list in words beside its run table.
static const char *const STAGE_PATHS[] = {
    "model/*.[ch]",        "tokenizer/*.[ch]", "sft/*.[ch]",   "reward_model/*.[ch]", "ppo/*.[ch]", "dpo/*.[ch]",
    "evaluate/*.[ch]",     "data/*.[ch]",      "data/*.jsonl", "data/*.tsv",          "common/*.[ch]",
    "scripts/pipeline.sh", "CMakeLists.txt",
};

// The whole file (malloc'ed, NUL-terminated), or NULL.
static char *slurp(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len + 4096 + 1 > cap) {
            cap = 2 * cap + 4096 + 1;
            char *grown = realloc(buf, cap);
            if (!grown) break;
            buf = grown;
        }
        got = fread(buf + len, 1, 4096, fp);
        len += got;
    } while (got > 0);
    fclose(fp);
    if (buf) buf[len] = '\0';
    return buf;
}

// The commit README's run-table block names ("commit `SHA`"), or 0.
static int readme_commit(const char *readme, char *sha, size_t n) {
    const char *block = strstr(readme, "<!-- readme_tables:run-table begin");
    const char *end = block ? strstr(block, "<!-- readme_tables:run-table end") : NULL;
    const char *at = block ? strstr(block, "commit `") : NULL;
    if (!at || at > end) return 0;
    at += strlen("commit `");
    size_t k = strspn(at, "0123456789abcdef");
    if (k < 7 || k >= n || at[k] != '`') return 0;
    memcpy(sha, at, k);
    sha[k] = '\0';
    return 1;
}

// The files of STAGE_PATHS that differ between commit sha and HEAD, one a
// line, into out ("" when none); the exit status of git diff.
static int stage_files_changed(const char *root, const char *sha, char *out, size_t n) {
    char cmd[2048];
    int k = snprintf(cmd, sizeof cmd, "git -C '%s' diff --name-only '%s' HEAD --", root, sha);
    for (size_t i = 0; i < sizeof STAGE_PATHS / sizeof *STAGE_PATHS; i++)
        k += snprintf(cmd + k, sizeof cmd - (size_t)k, " '%s'", STAGE_PATHS[i]);
    return run_cmd(out, n, "%s", cmd);
}

// Skips the test (with a line saying why) outside a git checkout.
static void need_git(const char *root) {
    char out[256];
    if (run_cmd(out, sizeof out, "git -C '%s' rev-parse --is-inside-work-tree", root) != 0) {
        printf("# %s is not a git checkout: README's commit cannot be compared with HEAD; skipped\n", root);
        skip();
    }
}

static void test_readme_figures_are_of_the_current_code(void **state) {
    (void)state;
    char root[512], out[OUT_N], path[600];
    src_path(root, sizeof root, "");
    need_git(root);
    snprintf(path, sizeof path, "%sREADME.md", root);
    char *readme = slurp(path), sha[41];
    assert_non_null(readme);
    if (!readme_commit(readme, sha, sizeof sha))
        fail_msg("%s: no 'commit `SHA`' in its readme_tables:run-table block: regenerate it with "
                 "scripts/readme_tables.sh runs/tiny --commit SHA",
                 path);
    free(readme);
    if (run_cmd(out, sizeof out, "git -C '%s' cat-file -e '%s^{commit}'", root, sha) != 0) {
        run_cmd(out, sizeof out, "git -C '%s' rev-parse --is-shallow-repository", root);
        if (strncmp(out, "true", 4) == 0) {
            printf("# a shallow clone without commit %s (README's figures): skipped\n", sha);
            skip();
        }
        fail_msg("README.md names commit %s for its figures, which is not in this repository", sha);
    }
    assert_int_equal(stage_files_changed(root, sha, out, sizeof out), 0);
    if (out[0]) {
        printf("# changed since %s:\n%s", sha, out); // cmocka cuts a long message short
        fail_msg("README.md's figures come from commit %s, and files that decide what a stage computes (listed above) "
                 "have changed since: re-run ./scripts/pipeline.sh and scripts/readme_tables.sh runs/tiny, then commit "
                 "README.md",
                 sha);
    }
}

// The rule's own check: a commit before the last change to model/gpt.c
// shows that file changed; HEAD shows nothing.
static void test_the_rule_sees_a_stage_change(void **state) {
    (void)state;
    char root[512], out[OUT_N], sha[64];
    src_path(root, sizeof root, "");
    need_git(root);
    if (run_cmd(sha, sizeof sha, "git -C '%s' log -1 --format=%%H -- model/gpt.c", root) != 0 || strlen(sha) < 40) {
        printf("# no commit of model/gpt.c in this clone's history; skipped\n");
        skip();
    }
    strcpy(sha + 40, "~1");
    if (stage_files_changed(root, sha, out, sizeof out) != 0) {
        printf("# %s is not in this clone's history; skipped\n", sha);
        skip();
    }
    assert_non_null(strstr(out, "model/gpt.c\n"));
    assert_int_equal(stage_files_changed(root, "HEAD", out, sizeof out), 0);
    assert_string_equal(out, "");
}

// --- scripts/readme_tables.sh on a made-up run ---

typedef struct {
    char dir[256], root[512];
} Fixture;

// Writes text to DIR/rel, making rel's folder.
static void put(const Fixture *f, const char *rel, const char *text) {
    char path[1024], out[256];
    snprintf(path, sizeof path, "%s/%s", f->dir, rel);
    run_cmd(out, sizeof out, "mkdir -p \"$(dirname '%s')\"", path);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static const char FAKE_SUMMARY[] =
    "# minirlhf run: tiny config, seed 1337\n\n"
    "| stage | wall time (s) | peak memory (MiB) | result |\n"
    "| --- | --- | --- | --- |\n"
    "| bpe | 1 | 14.5 | wrote RUN/tokenizer.bin, fingerprint 0badf00d |\n"
    "| pretrain | 100 | 150.0 | done in 99.5 s: validation loss 4.500 nats/token, unigram entropy 6.500 (2.000 below) |\n"
    "| sft | 20 | 160.0 | held-out response loss 4.300 nats/token (pretrained model: 4.600); end-token rate 97.5% of "
    "200 held-out prompts at temperature 1 (pretrained model: 81.0%) |\n"
    "| prefs | 30 | 50.0 | label noise 15.5% (2480 of 16000 pairs with different gold scores labelled against the gold "
    "order; tau 0.2) |\n"
    "| train_rm | 40 | 200.0 | final: held-out accuracy 70.0% against labels, 77.7% against the gold ordering (1600 "
    "pairs; labels disagree with gold on 16.5%), loss 0.600, mean margin 0.800 |\n"
    "| ppo | 50 | 140.0 | held-out gold score 0.700 ± 0.010 (reference -0.010 ± 0.020); held-out reward-model score "
    "2.100 ± 0.020 (reference 0.002 ± 0.050); held-out KL(policy || reference) 9.876 nats per response; end-token "
    "rate 99.0% (reference 88.0%) |\n"
    "| evaluate | 5 | 130.0 | gold win rate of the policy against the reference: 91.0% |\n\n"
    "![training curves](training.png)\n";

static const char FAKE_EVAL_LOG[] =
    "evaluate: 960 samples (240 held-out prompts, 4 each; seed 1337, temperature 1, max-new 64, batch 32)\n"
    "                                           policy          reference\n"
    "  gold score                        0.711 ± 0.009     -0.012 ± 0.013\n"
    "  mean length (tokens)                        6.2               33.8\n"
    "evaluate: gold win rate of the policy against the reference: 91.0%\n"
    "evaluate: wrote RUN/eval/eval.json\n"
    "pipeline.sh: evaluate: wall time 5 s, peak resident memory 130.0 MiB\n";

// The logs and settings readme_tables.sh reads, with RUN the run's folder.
static const struct {
    const char *rel, *text;
} FAKE_FILES[] = {
    {"bpe/log.txt", "wrote RUN/tokenizer.bin, fingerprint 0badf00d\n"},
    {"pretrain/log.txt", "pretrain: tiny config, 1500000 parameters, 1 train / 1 validation tokens\n"
                         "pretrain: done in 99.5 s: validation loss 4.500 nats/token, unigram entropy 6.500 (2.000 "
                         "below)\n"},
    {"pretrain/config.txt", "config = tiny\nseed = 1337\nthreads = 3\nsteps = 1400\nbatch = 16\n"},
    {"pretrain/samples.txt", "== step 700 (temperature 0.8, top-k 40) ==\n[Early] sample\n"
                             "== step 1400 (temperature 0.8, top-k 40) ==\n[A `quoted`] skipped\n[A cat] sat on a mat.\n"},
    {"sft/log.txt", "sft: held-out response loss 4.300 nats/token (pretrained model: 4.600)\n"
                    "sft: end-token rate 97.5% of 200 held-out prompts at temperature 1 (pretrained model: 81.0%)\n"},
    {"prefs/log.txt", "prefs: 480 prompts, 16000 pairs from RUN/sft/model.bin (context 128 tokens), temperatures 1 and "
                      "0.7, tau 0.2\n"
                      "prefs: 16000 pairs (14400 train, 1600 validation); 3 identical pairs resampled; 2325 pairs with "
                      "equal gold scores resampled; 0 prompt slots given up after 8 tries\n"
                      "prefs: label noise 15.5% (2480 of 16000 pairs with different gold scores labelled against the "
                      "gold order; tau 0.2)\n"},
    {"prefs/config.txt", "seed = 1337\nthreads = 3\n"},
    {"rm/log.txt", "train_rm: final: held-out accuracy 70.0% against labels, 77.7% against the gold ordering (1600 "
                   "pairs; labels disagree with gold on 16.5%), loss 0.600, mean margin 0.800\n"},
    {"ppo/log.txt", "ppo: evaluating on 240 held-out prompts, 2 samples each (seed 1338, temperature 1, max-new 64, "
                    "batch 32)...\n"
                    "ppo: held-out gold score 0.700 ± 0.010 (reference -0.010 ± 0.020)\n"
                    "ppo: held-out reward-model score 2.100 ± 0.020 (reference 0.002 ± 0.050)\n"
                    "ppo: held-out KL(policy || reference) 9.876 ± 0.321 nats per response (full vocabulary; k1 9.9); "
                    "end-token rate 99.0% (reference 88.0%)\n"
                    "ppo: the reward model orders pairs of the policy's samples as gold does 58.3% ± 3.1 of the time "
                    "(the reference's: 74.2% ± 2.5)\n"},
    {"ppo/config.txt", "seed = 1337\nthreads = 3\nsteps = 120\nbatch = 32\nkl-coef = 0.05\ntarget-kl = 0\n"
                       "eval-every = 60\n"},
    {"ppo/heldout.csv", "step,gold,gold_se,rm_score,rm_score_se,kl_full,kl_full_se,kl,kl_k3,mean_length,end_rate,"
                        "rm_gold_agreement,rm_gold_agreement_se,distinct_1,distinct_2\n"
                        "0,-0.01,0.02,0.002,0.05,0,0,0,0,30,0.88,0.742,0.025,0.1,0.6\n"
                        "60,0.3004,0.0151,1.5,0.03,4.56,0.2,4.5,4.6,20,0.95,0.65,0.03,0.08,0.5\n"
                        "120,0.7,0.01,2.1,0.02,9.876,0.321,9.9,10,10,0.99,0.583,0.031,0.05,0.4\n"},
};

static const char FAKE_README[] = "# project\n\nProse before.\n\n"
                                  "<!-- readme_tables:run-table begin -->\nold table\n"
                                  "<!-- readme_tables:run-table end -->\n\nProse between, 1.23 kept.\n\n"
                                  "<!-- readme_tables:stages begin -->\n- old figures\n"
                                  "<!-- readme_tables:stages end -->\n\nProse after.\n";

// text with each "RUN" replaced by the fixture's run folder (malloc'ed).
static char *with_run(const Fixture *f, const char *text) {
    size_t n = strlen(text) * 4 + 4096;
    char *out = malloc(n), *w = out;
    for (const char *p = text; *p;) {
        if (strncmp(p, "RUN", 3) == 0) {
            w += sprintf(w, "%s/run", f->dir);
            p += 3;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
    return out;
}

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    *state = f;
    make_temp_dir(f->dir, sizeof f->dir);
    src_path(f->root, sizeof f->root, "");
    if (!f->dir[0]) return -1;
    char *text = with_run(f, FAKE_SUMMARY), rel[64];
    put(f, "run/summary.md", text);
    free(text);
    text = with_run(f, FAKE_EVAL_LOG);
    put(f, "run/eval/log.txt", text);
    free(text);
    for (size_t i = 0; i < sizeof FAKE_FILES / sizeof *FAKE_FILES; i++) {
        snprintf(rel, sizeof rel, "run/%s", FAKE_FILES[i].rel);
        text = with_run(f, FAKE_FILES[i].text);
        put(f, rel, text);
        free(text);
    }
    put(f, "README.md", FAKE_README);
    return 0;
}

static int teardown(void **state) {
    Fixture *f = *state;
    char out[256];
    if (f->dir[0]) run_cmd(out, sizeof out, "rm -rf %s", f->dir);
    free(f);
    return 0;
}

// Runs readme_tables.sh on the fake run and README with extra arguments.
static int tables(const Fixture *f, const char *args, char *out, char *err) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "exec %sscripts/readme_tables.sh %s/run --readme %s/README.md %s", f->root, f->dir, f->dir,
             args);
    return run_split(cmd, 60, out, OUT_N, err, ERR_N);
}

static char *fake_readme(const Fixture *f) {
    char path[600];
    snprintf(path, sizeof path, "%s/README.md", f->dir);
    char *text = slurp(path);
    assert_non_null(text);
    return text;
}

static void assert_has(const char *text, const char *want) {
    if (strstr(text, want)) return;
    printf("%s\n", text); // cmocka cuts a long message short
    fail_msg("missing (README above): %s", want);
}

static void test_tables_hold_the_runs_figures(void **state) {
    Fixture *f = *state;
    static char out[OUT_N], err[ERR_N];
    assert_int_equal(tables(f, "--commit 0123abc", out, err), 0);
    char *readme = fake_readme(f);
    // The run line and the table (paths shown as runs/tiny, "|" escaped, the defaults' command).
    assert_has(readme, "<!-- readme_tables:run-table begin -->\nAt commit `0123abc`, `./scripts/pipeline.sh` (the "
                       "`tiny` config, seed 1337, 3\n  threads);");
    assert_has(readme, "wall times in seconds,\n  246 s in all;");
    assert_has(readme, "| bpe | 1 | 14.5 | wrote runs/tiny/tokenizer.bin, fingerprint 0badf00d |\n");
    assert_has(readme, "| ppo | 50 | 140.0 | held-out gold score 0.700 ± 0.010 (reference -0.010 ± 0.020); held-out "
                       "reward-model score 2.100 ± 0.020 (reference 0.002 ± 0.050); held-out KL(policy \\|\\| "
                       "reference) 9.876 nats per response; end-token rate 99.0% (reference 88.0%) |\n"
                       "| evaluate | 5 | 130.0 | gold win rate of the policy against the reference: 91.0% |\n\n"
                       "<!-- readme_tables:run-table end -->\n");
    assert_null(strstr(readme, "training.png"));
    // The stage-by-stage figures.
    assert_has(readme, "- **pretrain** (1.50M parameters, 1,400 steps of 16 x 128 tokens): validation\n  loss 4.500");
    assert_has(readme, "4.500 nats/token against 6.500 for a model");
    assert_has(readme, "`[A cat] sat on a mat.`");
    assert_has(readme, "goes from 4.600 to 4.300 nats/token");
    assert_has(readme, "from 81.0% (the pretrained\n  model) to 97.5% (temperature 1).");
    assert_has(readme, "- **prefs**: 16,000 pairs from the SFT model, the first response of each at\n"
                       "  temperature 1 and the second at 0.7; 2,325 draws");
    assert_has(readme, "15.5% of the pairs whose");
    assert_has(readme, "ranks 77.7% of the 1,600 held-out");
    assert_has(readme, "disagree with gold 16.5% of the time.");
    assert_has(readme, "- **ppo** (120 iterations of 32 rollouts, β = 0.05): on 240 held-out prompts");
    assert_has(readme, "on 240 held-out prompts\n  (2 samples each, seed 1338) the gold score");
    assert_has(readme, "-0.010 ± 0.020 (the SFT reference) to 0.700 ± 0.010");
    assert_has(readme, "from 0.002 to 2.100, at a KL of 9.876 ± 0.321");
    assert_has(readme, "orders the SFT reference's as gold does 74.2% ± 2.5 of the time and the");
    assert_has(readme, "policy's 58.3% ± 3.1 (pairs whose gold differs");
    assert_has(readme, "every 60 iterations):\n\n| iteration | gold score | reward-model score | KL (nats per response) | "
                       "reward model agrees with gold |\n| --- | --- | --- | --- | --- |\n"
                       "| 0 | -0.010 ± 0.020 | 0.002 ± 0.050 | 0.000 | 74.2% ± 2.5 |\n"
                       "| 60 | 0.300 ± 0.015 | 1.500 ± 0.030 | 4.560 | 65.0% ± 3.0 |\n"
                       "| 120 | 0.700 ± 0.010 | 2.100 ± 0.020 | 9.876 | 58.3% ± 3.1 |\n\n- **evaluate**");
    assert_has(readme, "- **evaluate** (4 samples for each of the 240 held-out prompts, from both\n  models):\n\n```\n"
                       "evaluate: 960 samples (240 held-out prompts, 4 each; seed 1337, temperature 1, max-new 64, "
                       "batch 32)\n");
    assert_has(readme, "  mean length (tokens)                        6.2               33.8\n"
                       "evaluate: gold win rate of the policy against the reference: 91.0%\n```\n\n"
                       "<!-- readme_tables:stages end -->\n\nProse after.\n");
    assert_null(strstr(readme, "eval.json"));
    // The prose outside the blocks, as it was.
    assert_has(readme, "# project\n\nProse before.\n\n<!-- readme_tables:run-table begin -->\n");
    assert_has(readme, "<!-- readme_tables:run-table end -->\n\nProse between, 1.23 kept.\n\n"
                       "<!-- readme_tables:stages begin -->\n");
    assert_null(strstr(readme, "old table"));
    assert_null(strstr(readme, "old figures"));
    free(readme);
}

static void test_check_finds_an_edited_figure(void **state) {
    Fixture *f = *state;
    static char out[OUT_N], err[ERR_N];
    char path[600], cmd[1024];
    snprintf(path, sizeof path, "%s/README.md", f->dir);
    assert_int_equal(tables(f, "--commit 0123abc", out, err), 0);
    assert_int_equal(tables(f, "--check", out, err), 0);
    assert_string_equal(out, "");
    // Prose outside the blocks is not --check's business.
    snprintf(cmd, sizeof cmd, "sed -i 's/Prose after./Prose edited./' %s", path);
    assert_int_equal(run_cmd(out, sizeof out, "%s", cmd), 0);
    assert_int_equal(tables(f, "--check", out, err), 0);
    // A figure inside one is: a diff on stdout, one line on stderr, exit 1, README untouched.
    snprintf(cmd, sizeof cmd, "sed -i 's/^| evaluate | 5 | 130.0 | gold win rate of the policy against the "
                              "reference: 91.0%% |$/| evaluate | 5 | 130.0 | gold win rate of the policy against the "
                              "reference: 92.6%% |/' %s",
             path);
    assert_int_equal(run_cmd(out, sizeof out, "%s", cmd), 0);
    char *before = fake_readme(f);
    assert_has(before, "92.6%");
    assert_int_equal(tables(f, "--check", out, err), 1);
    assert_has(out, "-| evaluate | 5 | 130.0 | gold win rate of the policy against the reference: 92.6% |\n"
                    "+| evaluate | 5 | 130.0 | gold win rate of the policy against the reference: 91.0% |\n");
    assert_true(is_one_line(err));
    assert_has(err, "README.md differs from what");
    char *after = fake_readme(f);
    assert_string_equal(before, after);
    free(after);
    free(before);
    // Regenerated: --check passes, the prose edit is kept.
    assert_int_equal(tables(f, "--commit 0123abc", out, err), 0);
    assert_int_equal(tables(f, "--check", out, err), 0);
    after = fake_readme(f);
    assert_has(after, "Prose edited.");
    assert_null(strstr(after, "92.6%"));
    free(after);
}

static void test_bad_uses_are_refused(void **state) {
    Fixture *f = *state;
    static char out[OUT_N], err[ERR_N];
    char cmd[2048];
    char *before = fake_readme(f);
    assert_int_equal(tables(f, "--commit 0123abc --colour", out, err), 2);
    assert_true(is_one_line(err));
    snprintf(cmd, sizeof cmd, "exec %sscripts/readme_tables.sh --readme %s/README.md", f->root, f->dir);
    assert_int_equal(run_split(cmd, 60, out, OUT_N, err, ERR_N), 2);
    assert_true(is_one_line(err));
    // A run folder without evaluate's log: one line naming the file, README untouched.
    snprintf(cmd, sizeof cmd, "mv %s/run/eval/log.txt %s/eval.log", f->dir, f->dir);
    assert_int_equal(run_cmd(out, sizeof out, "%s", cmd), 0);
    assert_int_equal(tables(f, "--commit 0123abc", out, err), 1);
    assert_true(is_one_line(err));
    assert_has(err, "/run/eval/log.txt: no such file");
    snprintf(cmd, sizeof cmd, "mv %s/eval.log %s/run/eval/log.txt", f->dir, f->dir);
    assert_int_equal(run_cmd(out, sizeof out, "%s", cmd), 0);
    char *after = fake_readme(f);
    assert_string_equal(before, after);
    free(after);
    free(before);
}

int main(void) {
    const struct CMUnitTest drift[] = {
        cmocka_unit_test(test_the_rule_sees_a_stage_change),
        cmocka_unit_test(test_readme_figures_are_of_the_current_code),
    };
    const struct CMUnitTest script[] = {
        cmocka_unit_test(test_tables_hold_the_runs_figures),
        cmocka_unit_test(test_check_finds_an_edited_figure),
        cmocka_unit_test(test_bad_uses_are_refused),
    };
    int failed = cmocka_run_group_tests_name("readme drift", drift, NULL, NULL);
    return failed + cmocka_run_group_tests_name("readme_tables.sh", script, setup, teardown);
}
