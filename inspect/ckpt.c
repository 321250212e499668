// ckpt: looks inside checkpoints. `info` shows every header field, the
// lineage and per-tensor statistics; `diff` what training moved between two
// checkpoints of the same shape; `verify` recomputes the payload checksum;
// `lineage` follows the parents back to pretraining. Each has --json.
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inspect/ckpt_report.h"
#include "inspect/tensor_stats.h"
#include "common/jsonl.h"
#include "common/version.h"
#include "model/gpt.h"
#include "model/run.h"

// Prints the message and gives the exit status for rc, what the failing call
// returned: EXIT_USAGE for a usage error, 1 otherwise.
static int fail(int rc, const Error *err) {
    fprintf(stderr, "ckpt: %s\n", err->msg);
    return rc == ERR_USAGE ? EXIT_USAGE : 1;
}

// Prints a figure that may be undefined (NaN) or infinite as text.
static void print_figure(const char *fmt, int width, double v) {
    if (isfinite(v)) printf(fmt, v);
    else printf("%*s", width, isnan(v) ? "n/a" : "inf");
}

// ---- info ----------------------------------------------------------------

static void print_tensor_table(const CkptHeader *h, const TensorStats *stats) {
    printf("%2s  %-9s %-14s %9s %11s %10s %11s %11s %10s\n", "#", "tensor", "shape", "count", "mean",
           "std", "min", "max", "non-finite");
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        const TensorStats *s = &stats[i];
        char shape[64];
        format_shape(shape, sizeof shape, &h->config, i);
        printf("%2d  %-9s %-14s %9zu ", i, gpt_param_name(i), shape, s->count);
        print_figure("%+11.3e", 11, s->mean);
        print_figure(" %10.3e", 11, s->std);
        print_figure(" %+11.3e", 12, s->min);
        print_figure(" %+11.3e", 12, s->max);
        printf(" %10zu\n", s->nonfinite);
    }
}

static cJSON *tensor_stats_json(const CkptHeader *h, const TensorStats *stats) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "name", gpt_param_name(i));
        cJSON_AddItemToObject(t, "shape", shape_json(&h->config, i));
        jsonl_add_number(t, "count", (double)stats[i].count);
        jsonl_add_number(t, "mean", stats[i].mean); // NaN and inf print as null
        jsonl_add_number(t, "std", stats[i].std);
        jsonl_add_number(t, "min", stats[i].min);
        jsonl_add_number(t, "max", stats[i].max);
        jsonl_add_number(t, "nonfinite", (double)stats[i].nonfinite);
        cJSON_AddItemToArray(a, t);
    }
    return a;
}

static void report_info(const char *path, const CkptHeader *h, const Lineage *lineage,
                        const TensorStats *stats, int json) {
    if (json) {
        cJSON *doc = header_json(path, h);
        cJSON_AddItemToObject(doc, "lineage", lineage_json(lineage));
        cJSON_AddItemToObject(doc, "tensors", tensor_stats_json(h, stats));
        print_json(doc);
        return;
    }
    print_header(path, h);
    printf("\nlineage (newest first)\n");
    print_lineage(lineage, "  ");
    if (lineage->end != LINEAGE_COMPLETE) printf("  ! %s\n", lineage->problem);
    printf("\n");
    print_tensor_table(h, stats);
}

static int cmd_info(int argc, char **argv) {
    int json = 0, threads = 0;
    CliOption opts[] = {
        {"json", CLI_FLAG, &json, 0, 0, "machine-readable output (JSON)"},
        {"threads", CLI_INT, &threads, 0, 256, "threads for the statistics (0: all cores)"},
    };
    const char *path;
    Error err;
    int rc = ckpt_parse_args("ckpt info", "ckpt info FILE",
                             "Shows every header field, the lineage and statistics of each tensor.",
                             opts, 2, argc, argv, &path, 1, 1, NULL, &err);
    if (rc) return rc > 0 ? 0 : fail(rc, &err);
    run_set_threads(threads);
    CkptHeader h;
    float *params = NULL;
    Lineage lineage;
    if (ckpt_load(path, &h, &params, &err)) return fail(-1, &err);
    if (lineage_follow(path, &lineage, &err)) {
        free(params);
        return fail(-1, &err);
    }
    size_t sizes[NUM_PARAMETER_TENSORS], at = 0;
    TensorStats stats[NUM_PARAMETER_TENSORS];
    gpt_param_sizes(&h.config, sizes);
    for (int i = 0; i < NUM_PARAMETER_TENSORS; at += sizes[i], i++) tensor_stats(params + at, sizes[i], &stats[i]);
    report_info(path, &h, &lineage, stats, json);
    lineage_free(&lineage);
    free(params);
    return 0;
}

// ---- diff ----------------------------------------------------------------

// Tensor shapes depend on everything in the config but the head count; a
// different head count is refused too, since the same numbers mean different
// things when the heads are split differently.
static int check_same_shape(const char *pa, const CkptHeader *a, const char *pb, const CkptHeader *b,
                            Error *err) {
    const GPTConfig *x = &a->config, *y = &b->config;
    if (!memcmp(x, y, sizeof *x)) return 0;
    return error_set(err,
                     "cannot compare %s and %s: the models have different shapes "
                     "(vocab %d/%d, context %d/%d, layers %d/%d, heads %d/%d, embd %d/%d)",
                     pa, pb, x->vocab_size, y->vocab_size, x->max_seq_len, y->max_seq_len, x->n_layer,
                     y->n_layer, x->n_head, y->n_head, x->n_embd, y->n_embd);
}

static void print_diff_row(int i, const char *name, const char *shape, const DiffSums *d) {
    if (i >= 0) printf("%2d  ", i);
    else printf("    ");
    printf("%-11s %-14s ", name, shape);
    print_figure("%11.4e", 11, diff_relative_change(d));
    print_figure("  %9.6f", 11, diff_cosine(d));
    printf("  %11.4e  %11.4e  %11.4e\n", d->max_abs_diff, sqrt(d->sq_a), sqrt(d->sq_b));
}

static cJSON *diff_json(const DiffSums *d) {
    cJSON *o = cJSON_CreateObject();
    jsonl_add_number(o, "rel_change", diff_relative_change(d));
    jsonl_add_number(o, "cosine", diff_cosine(d));
    jsonl_add_number(o, "max_abs_diff", d->max_abs_diff);
    jsonl_add_number(o, "norm_a", sqrt(d->sq_a));
    jsonl_add_number(o, "norm_b", sqrt(d->sq_b));
    return o;
}

static cJSON *checkpoint_brief_json(const char *path, const CkptHeader *h) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", path);
    cJSON_AddStringToObject(o, "kind", ckpt_kind_name((CkptKind)h->kind));
    cJSON_AddStringToObject(o, "stage", h->stage);
    jsonl_add_number(o, "step", (double)h->step);
    json_add_hex(o, "fingerprint", h->fingerprint);
    return o;
}

static void report_diff(const char *const paths[2], const CkptHeader h[2], const DiffSums *per,
                        const DiffSums *total, int json) {
    const GPTConfig *cfg = &h[0].config;
    if (json) {
        cJSON *doc = cJSON_CreateObject(), *tensors = cJSON_CreateArray();
        cJSON_AddItemToObject(doc, "a", checkpoint_brief_json(paths[0], &h[0]));
        cJSON_AddItemToObject(doc, "b", checkpoint_brief_json(paths[1], &h[1]));
        cJSON_AddBoolToObject(doc, "same_tokenizer", h[0].tokenizer_fp == h[1].tokenizer_fp);
        for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
            cJSON *t = diff_json(&per[i]);
            cJSON_AddStringToObject(t, "name", gpt_param_name(i));
            cJSON_AddItemToObject(t, "shape", shape_json(cfg, i));
            cJSON_AddItemToArray(tensors, t);
        }
        cJSON_AddItemToObject(doc, "tensors", tensors);
        cJSON_AddItemToObject(doc, "total", diff_json(total));
        print_json(doc);
        return;
    }
    for (int k = 0; k < 2; k++)
        printf("%s  %-9s step %-8" PRIu64 " %-15s %08" PRIx32 "  %s\n", k ? "B" : "A", h[k].stage, h[k].step,
               ckpt_kind_name((CkptKind)h[k].kind), h[k].fingerprint, paths[k]);
    if (h[0].tokenizer_fp != h[1].tokenizer_fp)
        printf("note: the two were trained with different tokenizers (%08" PRIx32 ", %08" PRIx32 ")\n",
               h[0].tokenizer_fp, h[1].tokenizer_fp);
    printf("\n%2s  %-11s %-14s %11s  %9s  %11s  %11s  %11s\n", "#", "tensor", "shape", "|A-B|/|A|", "cosine",
           "max|A-B|", "|A|", "|B|");
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        char shape[64];
        format_shape(shape, sizeof shape, cfg, i);
        print_diff_row(i, gpt_param_name(i), shape, &per[i]);
    }
    char count[32];
    snprintf(count, sizeof count, "(%" PRIu64 ")", h[0].num_params);
    print_diff_row(-1, "whole model", count, total);
}

static int cmd_diff(int argc, char **argv) {
    int json = 0, threads = 0;
    CliOption opts[] = {
        {"json", CLI_FLAG, &json, 0, 0, "machine-readable output (JSON)"},
        {"threads", CLI_INT, &threads, 0, 256, "threads for the statistics (0: all cores)"},
    };
    const char *paths[2];
    Error err;
    int rc = ckpt_parse_args("ckpt diff", "ckpt diff A B",
                             "Per tensor and for the whole model: the relative change |A-B|/|A| and the\n"
                             "cosine similarity of B to A. Kinds may differ; shapes may not.",
                             opts, 2, argc, argv, paths, 2, 2, NULL, &err);
    if (rc) return rc > 0 ? 0 : fail(rc, &err);
    run_set_threads(threads);
    CkptHeader h[2];
    float *params[2] = {NULL, NULL};
    // Headers first, so that models of different shapes are refused before
    // either payload is read.
    rc = ckpt_read_header(paths[0], &h[0], &err) || ckpt_read_header(paths[1], &h[1], &err) ||
         check_same_shape(paths[0], &h[0], paths[1], &h[1], &err) ||
         ckpt_load(paths[0], &h[0], &params[0], &err) || ckpt_load(paths[1], &h[1], &params[1], &err);
    if (!rc) {
        size_t sizes[NUM_PARAMETER_TENSORS], at = 0;
        DiffSums per[NUM_PARAMETER_TENSORS], total = {0};
        gpt_param_sizes(&h[0].config, sizes);
        for (int i = 0; i < NUM_PARAMETER_TENSORS; at += sizes[i], i++) {
            diff_sums(params[0] + at, params[1] + at, sizes[i], &per[i]);
            diff_sums_add(&total, &per[i]);
        }
        report_diff(paths, h, per, &total, json);
    }
    free(params[0]), free(params[1]);
    return rc ? fail(-1, &err) : 0;
}

// ---- verify and lineage --------------------------------------------------

// Verifies one file: "OK FINGERPRINT FILE" on standard output, or the reason
// on standard error (one line); with json, the object for it (added to list).
static int verify_one(const char *path, int json, cJSON *list) {
    CkptHeader h;
    Error err;
    int bad = ckpt_verify(path, &h, &err) != 0;
    if (json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "file", path);
        cJSON_AddBoolToObject(doc, "ok", !bad);
        if (bad) cJSON_AddStringToObject(doc, "error", err.msg);
        else json_add_hex(doc, "fingerprint", h.fingerprint);
        cJSON_AddItemToArray(list, doc);
    } else if (!bad) {
        printf("OK %08" PRIx32 " %s\n", h.fingerprint, path);
    }
    if (bad) fail(-1, &err);
    return bad;
}

static int cmd_verify(int argc, char **argv) {
    int json = 0;
    CliOption opts[] = {{"json", CLI_FLAG, &json, 0, 0, "machine-readable output (JSON)"}};
    const char **paths = calloc((size_t)argc + 1, sizeof *paths);
    Error err;
    if (!paths) return fail(error_set(&err, "out of memory"), &err);
    int n_paths = 0;
    int rc = ckpt_parse_args("ckpt verify", "ckpt verify FILE...",
                             "Checks the header and recomputes the payload checksum (streaming) of each\n"
                             "FILE: \"OK FINGERPRINT FILE\" for an intact one, a line on standard error for\n"
                             "each other. Exit status 0 if every checkpoint is intact, 1 otherwise.\n"
                             "With --json: one object for one FILE, an array of them for several.",
                             opts, 1, argc, argv, paths, 1, argc + 1, &n_paths, &err);
    if (rc) {
        free(paths);
        return rc > 0 ? 0 : fail(rc, &err);
    }
    cJSON *list = cJSON_CreateArray();
    int n_bad = 0;
    for (int i = 0; i < n_paths; i++) n_bad += verify_one(paths[i], json, list);
    if (json && n_paths == 1) print_json(cJSON_DetachItemFromArray(list, 0));
    else if (json) print_json(cJSON_Duplicate(list, 1));
    cJSON_Delete(list);
    free(paths);
    return n_bad ? 1 : 0;
}

static int cmd_lineage(int argc, char **argv) {
    int json = 0;
    CliOption opts[] = {{"json", CLI_FLAG, &json, 0, 0, "machine-readable output (JSON)"}};
    const char *path;
    Error err;
    int rc = ckpt_parse_args("ckpt lineage", "ckpt lineage FILE",
                             "The chain of checkpoints back to pretraining, newest first: stage, step,\n"
                             "kind, fingerprint, path. Parent paths are recorded absolute (older\n"
                             "relative ones are read from the current folder); a parent whose path is\n"
                             "gone is looked for beside the child (the recorded path's last components\n"
                             "under the child's folder and its parents) and accepted only with the\n"
                             "recorded fingerprint; such a line says so. Exit status 1 if the\n"
                             "chain breaks (a parent missing or replaced); 0 when it ends at a parent\n"
                             "whose path was too long to record (known by fingerprint only).",
                             opts, 1, argc, argv, &path, 1, 1, NULL, &err);
    if (rc) return rc > 0 ? 0 : fail(rc, &err);
    Lineage l;
    if (lineage_follow(path, &l, &err)) return fail(-1, &err);
    if (json) {
        cJSON *doc = lineage_json(&l);
        cJSON_AddStringToObject(doc, "file", path);
        print_json(doc);
    } else {
        print_lineage(&l, "");
    }
    // A parent known by fingerprint only (its path did not fit in the
    // header) is not a broken chain: say so, and exit 0.
    if (l.end == LINEAGE_UNRECORDED && !json) printf("! %s\n", l.problem);
    int complete = l.end == LINEAGE_COMPLETE || l.end == LINEAGE_UNRECORDED;
    if (!complete) error_set(&err, "%s", l.problem);
    lineage_free(&l);
    return complete ? 0 : fail(-1, &err);
}

static void print_usage(FILE *fp) {
    fprintf(fp, "usage: ckpt COMMAND [options] FILE...\n"
                "Looks inside minirlhf checkpoints.\n\n"
                "commands:\n"
                "  info FILE      every header field, the lineage, and per tensor its shape, mean,\n"
                "                 std, min, max and count of non-finite values\n"
                "  diff A B       per tensor and overall: |A-B|/|A| and cosine similarity\n"
                "  verify FILE... recompute the payload checksum; exit status 0 if all intact\n"
                "  lineage FILE   the chain of checkpoints back to pretraining\n\n"
                "options (every command):\n"
                "  --json         machine-readable output\n"
                "  --help         show a command's options, e.g. `ckpt info --help`\n"
                "  --version      show the version and commit\n");
}

int main(int argc, char **argv) {
    Error err;
    if (argc < 2)
        return fail(usage_error(&err, "no command (expected info, diff, verify or lineage; see ckpt --help)"), &err);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        print_usage(stdout);
        return stdout_finish("ckpt", 0);
    }
    if (!strcmp(cmd, "--version")) {
        version_print(stdout, "ckpt");
        return stdout_finish("ckpt", 0);
    }
    if (!strcmp(cmd, "info")) return stdout_finish("ckpt", cmd_info(argc - 1, argv + 1));
    if (!strcmp(cmd, "diff")) return stdout_finish("ckpt", cmd_diff(argc - 1, argv + 1));
    if (!strcmp(cmd, "verify")) return stdout_finish("ckpt", cmd_verify(argc - 1, argv + 1));
    if (!strcmp(cmd, "lineage")) return stdout_finish("ckpt", cmd_lineage(argc - 1, argv + 1));
    return fail(usage_error(&err, "unknown command '%s' (expected info, diff, verify or lineage; see ckpt --help)", cmd),
                &err);
}
