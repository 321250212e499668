// Issue 17, plots a reader can read and the KL sweep's table. On the smoke
// config, pipeline.sh and kl_sweep.sh print no gnuplot warning and write PNGs
// of the expected size; scripts/plot.gp, drawn again as SVG (text with
// coordinates), gives every panel the x and y label it should have, keeps
// every legend entry outside the plot areas and below the x label, labels the
// sweep's points with their beta and shows the SFT reference; the sweep's
// terminal table is rounded, with "±", and agrees with sweep.csv.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "tests/testutil.h"

enum { OUT_N = 1 << 17, ERR_N = 1 << 14 };

typedef struct {
    char dir[256], root[512], bin[512];
    int pipeline_rc, sweep_rc;
    char pipeline_out[OUT_N], pipeline_err[ERR_N], sweep_out[OUT_N], sweep_err[ERR_N];
} Fixture;

// The whole smoke pipeline into DIR/run, then a sweep of two betas into
// DIR/sweep, both started from DIR; their output is kept for the tests.
static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    *state = f;
    make_temp_dir(f->dir, sizeof f->dir);
    src_path(f->root, sizeof f->root, "");
    bin_path(f->bin, sizeof f->bin, "");
    if (!f->dir[0]) return -1;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && MINIRLHF_BIN=%s exec %sscripts/pipeline.sh --config smoke --out %s/run", f->dir,
             f->bin, f->root, f->dir);
    f->pipeline_rc = run_split(cmd, 600, f->pipeline_out, OUT_N, f->pipeline_err, ERR_N);
    if (f->pipeline_rc) {
        printf("pipeline.sh: exit %d\n%s%s", f->pipeline_rc, f->pipeline_out, f->pipeline_err);
        return -1;
    }
    snprintf(cmd, sizeof cmd, "cd %s && MINIRLHF_BIN=%s exec %sscripts/kl_sweep.sh --config smoke --run %s/run --out %s/sweep "
             "--betas 0,0.5", f->dir, f->bin, f->root, f->dir, f->dir);
    f->sweep_rc = run_split(cmd, 600, f->sweep_out, OUT_N, f->sweep_err, ERR_N);
    if (f->sweep_rc) printf("kl_sweep.sh: exit %d\n%s%s", f->sweep_rc, f->sweep_out, f->sweep_err);
    return f->sweep_rc ? -1 : 0;
}

static int teardown(void **state) {
    Fixture *f = *state;
    char out[256];
    if (f->dir[0]) run_cmd(out, sizeof out, "rm -rf %s", f->dir);
    free(f);
    return 0;
}

// A gnuplot warning went to the scripts' stderr ("y2 axis range undefined").
// Nothing else writes there on success: the stages' output goes to stdout.
static void test_scripts_print_no_gnuplot_warning(void **state) {
    Fixture *f = *state;
    assert_int_equal(f->pipeline_rc, 0);
    assert_int_equal(f->sweep_rc, 0);
    assert_string_equal(f->pipeline_err, "");
    assert_string_equal(f->sweep_err, "");
    const char *outs[] = {f->pipeline_out, f->sweep_out};
    for (int i = 0; i < 2; i++) {
        assert_null(strstr(outs[i], "arning"));
        assert_null(strstr(outs[i], "gnuplot"));
    }
}

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

// A PNG with the signature, an IHDR of width x height and an IEND at the end.
static void assert_png(const char *path, uint32_t width, uint32_t height) {
    unsigned char *buf;
    size_t len;
    Error err;
    if (read_file(path, 1 << 24, &buf, &len, &err)) fail_msg("%s", err.msg);
    assert_true(len > 57);
    assert_memory_equal(buf, "\x89PNG\r\n\x1a\n", 8);
    assert_int_equal(be32(buf + 8), 13);
    assert_memory_equal(buf + 12, "IHDR", 4);
    if (be32(buf + 16) != width || be32(buf + 20) != height)
        fail_msg("%s: %ux%u, expected %ux%u", path, be32(buf + 16), be32(buf + 20), width, height);
    assert_memory_equal(buf + len - 8, "IEND", 4);
    free(buf);
}

// training.png has four rows of two panels (pretrain, sft; the reward
// model's loss, its accuracy; ppo's scores, its KL; ppo's held-out scores,
// the reward model's agreement with gold on its samples), 420 pixels each.
static void test_pngs_exist_with_expected_size(void **state) {
    Fixture *f = *state;
    char path[1024];
    snprintf(path, sizeof path, "%s/run/training.png", f->dir);
    assert_png(path, 1200, 1680);
    snprintf(path, sizeof path, "%s/sweep/score_vs_kl.png", f->dir);
    assert_png(path, 900, 600);
    const char *steps[] = {"reward_over_steps.png", "kl_over_steps.png", "gold_over_steps.png"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/sweep/%s", f->dir, steps[i]);
        assert_png(path, 900, 550);
    }
}

// What an SVG of gnuplot holds that a reader sees: the plot areas (each
// border a closed rectangle path) and every text with its anchor, whether it
// is rotated (a y label) and whether it is a legend entry.
enum { MAX_RECTS = 16, MAX_TEXTS = 1024 };
typedef struct {
    double x0, y0, x1, y1;
} Rect;
typedef struct {
    double x, y;
    int rotated, key;
    char s[160];
} Text;
typedef struct {
    Rect rect[MAX_RECTS];
    int n_rects;
    Text text[MAX_TEXTS];
    int n_texts;
} Svg;

static void add_rect(Svg *svg, const char *d) {
    double x[5], y[5];
    int closed = 0; // the Z: a path of four lines back to its start
    if (sscanf(d, "M%lf,%lf L%lf,%lf L%lf,%lf L%lf,%lf L%lf,%lf Z%n", &x[0], &y[0], &x[1], &y[1], &x[2], &y[2], &x[3],
               &y[3], &x[4], &y[4], &closed) != 10 || !closed || x[0] != x[4] || y[0] != y[4])
        return;
    Rect r = {fmin(x[0], x[2]), fmin(y[0], y[2]), fmax(x[0], x[2]), fmax(y[0], y[2])};
    for (int i = 0; i < svg->n_rects; i++) // gnuplot draws each border twice
        if (fabs(svg->rect[i].x0 - r.x0) < 0.01 && fabs(svg->rect[i].y0 - r.y0) < 0.01) return;
    assert_true(svg->n_rects < MAX_RECTS);
    svg->rect[svg->n_rects++] = r;
}

// The text of a <text> element from p on: its <tspan>s joined, entities of
// the characters gnuplot escapes decoded.
static void text_content(const char *p, char *out, size_t n) {
    const char *end = strstr(p, "</text>");
    size_t k = 0;
    for (const char *q = strstr(p, "<tspan"); q && q < end; q = strstr(q, "<tspan")) {
        q = strchr(q, '>') + 1;
        for (; *q != '<' && k + 1 < n; q++) {
            static const char *ent[][2] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}};
            int done = 0;
            for (int e = 0; e < 5 && !done; e++)
                if (!strncmp(q, ent[e][0], strlen(ent[e][0]))) {
                    out[k++] = ent[e][1][0];
                    q += strlen(ent[e][0]) - 1;
                    done = 1;
                }
            if (!done) out[k++] = *q;
        }
    }
    out[k] = '\0';
}

static void parse_svg(const char *path, Svg *svg) {
    unsigned char *buf;
    size_t len;
    Error err;
    if (read_file(path, 1 << 24, &buf, &len, &err)) fail_msg("%s", err.msg);
    const char *s = (const char *)buf, *key_title = NULL;
    svg->n_rects = svg->n_texts = 0;
    for (const char *p = s; *p; p++) {
        if (!strncmp(p, "d='M", 4)) add_rect(svg, p + 3);
        if (!strncmp(p, "<title>", 7) && p - s > 40) { // a curve's title: its legend entry follows
            const char *group = strstr(p - 40, "gnuplot_plot_");
            if (group && group < p) key_title = p + 7;
        }
        if (strncmp(p, "<g transform=\"translate(", 24)) continue;
        Text t = {0};
        if (sscanf(p + 24, "%lf,%lf", &t.x, &t.y) != 2) continue;
        const char *close = strchr(p + 24, ')');
        t.rotated = !strncmp(close, ") rotate(270)", 13);
        const char *txt = strstr(p, "<text>"), *next_g = strstr(p + 1, "<g ");
        if (!txt || (next_g && next_g < txt)) continue;
        text_content(txt, t.s, sizeof t.s);
        // A legend entry: the text right after the <title> of its curve.
        size_t title_len = key_title ? strcspn(key_title, "<") : 0;
        t.key = key_title && strlen(t.s) == title_len && !strncmp(t.s, key_title, title_len);
        if (t.key) key_title = NULL;
        assert_true(svg->n_texts < MAX_TEXTS);
        svg->text[svg->n_texts++] = t;
    }
    free(buf);
}

static int inside(const Rect *r, double x, double y) { return x > r->x0 && x < r->x1 && y > r->y0 && y < r->y1; }

typedef struct {
    const char *xlabel, *ylabel;
} Panel;

// Each plot area of the SVG, in drawing order, has exactly the labels of
// `panels`: the y label rotated, left of the area and beside it; the x label
// under the area and within its width. Every legend entry lies outside every
// plot area (12-pixel text: its baseline and its top), and one under a panel
// lies below that panel's x label, not on it.
static void check_panels(Svg *svg, const char *path, const Panel *panels, int n) {
    parse_svg(path, svg);
    if (svg->n_rects != n) fail_msg("%s: %d plot areas, expected %d", path, svg->n_rects, n);
    double xlabel_y[MAX_RECTS] = {0};
    for (int i = 0; i < n; i++) {
        const Rect *r = &svg->rect[i];
        int got_y = 0, got_x = 0;
        for (int t = 0; t < svg->n_texts; t++) {
            const Text *tx = &svg->text[t];
            if (tx->rotated && tx->x < r->x0 && tx->x > r->x0 - 90 && tx->y > r->y0 && tx->y < r->y1) {
                if (strcmp(tx->s, panels[i].ylabel)) fail_msg("%s panel %d: y label '%s', expected '%s'", path, i, tx->s, panels[i].ylabel);
                got_y++;
            }
            if (!tx->rotated && !tx->key && !strcmp(tx->s, panels[i].xlabel) && tx->x > r->x0 && tx->x < r->x1 &&
                tx->y > r->y1 && tx->y < r->y1 + 60) {
                xlabel_y[i] = tx->y;
                got_x++;
            }
        }
        if (got_y != 1 || got_x != 1) fail_msg("%s panel %d: %d y labels, %d x labels '%s'", path, i, got_y, got_x, panels[i].xlabel);
    }
    int keys = 0;
    for (int t = 0; t < svg->n_texts; t++) {
        const Text *tx = &svg->text[t];
        if (!tx->key) continue;
        keys++;
        for (int i = 0; i < n; i++) {
            const Rect *r = &svg->rect[i];
            if (inside(r, tx->x, tx->y) || inside(r, tx->x, tx->y - 12)) fail_msg("%s: legend '%s' inside panel %d", path, tx->s, i);
            int under = tx->y > r->y1 && tx->y < r->y1 + 150 && tx->x > r->x0 - 100 && tx->x < r->x1;
            if (under && tx->y - 12 < xlabel_y[i] + 3)
                fail_msg("%s: legend '%s' (baseline %.1f) on panel %d's x label (baseline %.1f)", path, tx->s, tx->y, i, xlabel_y[i]);
        }
    }
    assert_true(keys >= n); // every panel has a legend
}

static int count_text(const Svg *svg, const char *s, int key) {
    int c = 0;
    for (int t = 0; t < svg->n_texts; t++) c += !strcmp(svg->text[t].s, s) && svg->text[t].key == key;
    return c;
}

// Draws plot.gp's figure KIND ARGS as SVG; gnuplot must say nothing.
static void draw_svg(const Fixture *f, const char *args) {
    char out[4096];
    int rc = run_cmd(out, sizeof out, "gnuplot -e \"format = 'svg'\" -c %sscripts/plot.gp %s", f->root, args);
    if (rc || out[0]) fail_msg("plot.gp %s: exit %d: %s", args, rc, out);
}

static void test_training_panels_are_labelled_with_legends_outside(void **state) {
    Fixture *f = *state;
    char args[1024], path[1024];
    snprintf(args, sizeof args, "training %s/run 1 1 1", f->dir);
    draw_svg(f, args);
    const char *step = "step (optimiser updates)";
    const Panel panels[] = {{step, "loss (nats per token)"},
                            {step, "loss (nats per token)"},
                            {step, "loss (nats per pair, -log σ(margin))"},
                            {step, "accuracy (% of pairs)"},
                            {"PPO iteration", "score per response (mean over rollouts)"},
                            {"PPO iteration", "KL (nats per response)"},
                            {"PPO iteration", "score per response (mean ± standard error)"},
                            {"PPO iteration", "pairs ordered as gold orders them (%)"}};
    Svg *svg = malloc(sizeof *svg);
    snprintf(path, sizeof path, "%s/run/training.svg", f->dir);
    check_panels(svg, path, panels, 8);
    const char *keys[] = {"validation set", "held-out responses", "held-out pairs", "held-out vs gold order",
                          "gold score (annotator; never seen)", "KL, k1 estimate (penalised)",
                          "held-out KL, full vocabulary", "gold score (annotator)",
                          "agreement on pairs of held-out samples (same prompt)", "chance"};
    for (int i = 0; i < 10; i++) assert_int_equal(count_text(svg, keys[i], 1), 1);
    free(svg);
}

static void test_sweep_plots_label_betas_and_reference(void **state) {
    Fixture *f = *state;
    char args[1024], path[1024];
    Svg *svg = malloc(sizeof *svg);
    snprintf(args, sizeof args, "tradeoff %s/sweep", f->dir);
    draw_svg(f, args);
    const Panel tradeoff = {"KL(policy ‖ reference), nats per response", "held-out score (mean ± standard error)"};
    snprintf(path, sizeof path, "%s/sweep/score_vs_kl.svg", f->dir);
    check_panels(svg, path, &tradeoff, 1);
    // Each point labelled with its beta (gold and proxy), the reference
    // point labelled and in the legend.
    assert_int_equal(count_text(svg, "β = 0", 0), 2);
    assert_int_equal(count_text(svg, "β = 0.5", 0), 2);
    assert_int_equal(count_text(svg, "SFT", 0), 2);
    assert_int_equal(count_text(svg, "reference (SFT): gold", 1), 1);
    assert_int_equal(count_text(svg, "reference (SFT): reward model", 1), 1);
    for (int t = 0; t < svg->n_texts; t++) // the labels sit in the data area
        if (!strcmp(svg->text[t].s, "SFT") || !strncmp(svg->text[t].s, "β = ", 5)) assert_true(inside(&svg->rect[0], svg->text[t].x, svg->text[t].y));

    const char *steps[][3] = {{"reward_over_steps", "score", "reward-model score of rollouts (mean, normalised)"},
                              {"kl_over_steps", "kl", "KL to reference (nats per response, k1)"},
                              {"gold_over_steps", "gold", "gold score of rollouts (mean)"}};
    for (int i = 0; i < 3; i++) {
        // The labels kl_sweep.sh passes: compare with what the script says.
        char out[1024];
        assert_int_equal(run_cmd(out, sizeof out, "grep -c 'plot steps \"$out\" %s %s \"%s\"' %sscripts/kl_sweep.sh",
                                 steps[i][0], steps[i][1], steps[i][2], f->root), 0);
        snprintf(args, sizeof args, "steps %s/sweep %s %s '%s' '0 0.5'", f->dir, steps[i][0], steps[i][1], steps[i][2]);
        draw_svg(f, args);
        const Panel p = {"PPO iteration", steps[i][2]};
        snprintf(path, sizeof path, "%s/sweep/%s.svg", f->dir, steps[i][0]);
        check_panels(svg, path, &p, 1);
        assert_int_equal(count_text(svg, "β = 0", 1), 1);
        assert_int_equal(count_text(svg, "β = 0.5", 1), 1);
    }
    free(svg);
}

// The longest run of digits after a decimal point in s.
static int max_decimals(const char *s) {
    int best = 0;
    for (const char *p = s; *p; p++)
        if (*p == '.' && p > s && p[-1] >= '0' && p[-1] <= '9') {
            int k = 0;
            while (p[1 + k] >= '0' && p[1 + k] <= '9') k++;
            if (k > best) best = k;
        }
    return best;
}

// The sweep's table was `column -t` of sweep.csv: 20-digit floats.
static void test_sweep_table_is_rounded_with_plus_minus(void **state) {
    Fixture *f = *state;
    const char *head = strstr(f->sweep_out, "\nbeta ");
    assert_non_null(head);
    head++;
    const char *end = strstr(head, "\nSFT reference");
    assert_non_null(end);
    end = strchr(end + 1, '\n');
    char table[4096];
    snprintf(table, sizeof table, "%.*s", (int)(end - head), head);
    printf("%s\n", table);
    assert_true(max_decimals(table) <= 4);
    assert_non_null(strstr(table, "gold score"));
    // Each row shows sweep.csv's figures rounded: KL, gold ± se, score ± se.
    char csv[1024], out[4096];
    snprintf(csv, sizeof csv, "%s/sweep/sweep.csv", f->dir);
    const char *betas[] = {"0", "0.5"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(run_cmd(out, sizeof out, "awk -F, -v b=%s '$1 == b { printf \"%%.3f %%.3f ± %%.3f %%.3f ± %%.3f %%.1f%%%%\", "
                                                  "$2, $4, $5, $6, $7, 100 * $10 }' %s", betas[i], csv), 0);
        char kl[32], gold[64], rm[64], win[32];
        char *tok[8];
        int nt = 0;
        for (char *t = strtok(out, " "); t && nt < 8; t = strtok(NULL, " ")) tok[nt++] = t;
        assert_int_equal(nt, 8);
        snprintf(kl, sizeof kl, "%s", tok[0]);
        snprintf(gold, sizeof gold, "%s ± %s", tok[1], tok[3]);
        snprintf(rm, sizeof rm, "%s ± %s", tok[4], tok[6]);
        snprintf(win, sizeof win, "%s", tok[7]);
        char row[512] = "";
        for (const char *line = table; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
            if (!strncmp(line, betas[i], strlen(betas[i])) && line[strlen(betas[i])] == ' ')
                snprintf(row, sizeof row, "%.*s", (int)strcspn(line, "\n"), line);
        if (!strstr(row, kl) || !strstr(row, gold) || !strstr(row, rm) || !strstr(row, win))
            fail_msg("beta %s: row '%s' lacks %s / %s / %s / %s", betas[i], row, kl, gold, rm, win);
    }
    assert_int_equal(run_cmd(out, sizeof out, "awk -F, 'NR == 2 { printf \"%%.3f\", $8 }' %s", csv), 0);
    assert_non_null(strstr(strstr(table, "SFT reference"), out));
    // sweep.csv keeps the exact values.
    assert_int_equal(run_cmd(out, sizeof out, "awk -F, 'NR == 2 { print $4 }' %s", csv), 0);
    assert_true(max_decimals(out) > 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scripts_print_no_gnuplot_warning),
        cmocka_unit_test(test_pngs_exist_with_expected_size),
        cmocka_unit_test(test_training_panels_are_labelled_with_legends_outside),
        cmocka_unit_test(test_sweep_plots_label_betas_and_reference),
        cmocka_unit_test(test_sweep_table_is_rounded_with_plus_minus),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
