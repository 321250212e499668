#include "inspect/ckpt_report.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonl.h"
#include "model/gpt.h"

// Index of the option that `arg` ("--name" or "--name=value") names, or -1.
static int option_index(const CliOption *opts, int n_opts, const char *arg) {
    const char *name = arg + 2;
    size_t len = strcspn(name, "=");
    for (int i = 0; i < n_opts; i++)
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len)) return i;
    return -1;
}

int ckpt_parse_args(const char *prog, const char *usage, const char *summary,
                    const CliOption *opts, int n_opts, int argc, char **argv, const char **files,
                    int min_files, int max_files, int *n_given, Error *err) {
    // cli_parse stops at the first positional argument (getopt's "+"), so
    // `ckpt info F --json` would leave --json unread: put the options, with
    // their values, in front of the positional arguments first.
    char **ordered = calloc((size_t)argc + 1, sizeof *ordered);
    const char **positional = calloc((size_t)argc + 1, sizeof *positional);
    if (!ordered || !positional) {
        free(ordered), free(positional);
        return error_set(err, "out of memory");
    }
    int n_ordered = 0, n_positional = 0, only_positional = 0;
    ordered[n_ordered++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_positional || a[0] != '-' || a[1] == '\0') {
            positional[n_positional++] = a;
        } else if (!strcmp(a, "--")) {
            only_positional = 1;
        } else {
            ordered[n_ordered++] = argv[i];
            int k = a[1] == '-' ? option_index(opts, n_opts, a) : -1;
            int takes_value = k >= 0 && (opts[k].type & ~CLI_REQUIRED) != CLI_FLAG && !strchr(a, '=');
            if (takes_value && i + 1 < argc) ordered[n_ordered++] = argv[++i];
        }
    }
    int first = 0, rc = cli_parse(prog, opts, n_opts, n_ordered, ordered, &first, err);
    if (rc == CLI_HELP) cli_print_help(stdout, usage, summary, opts, n_opts);
    if (rc == 0 && (n_positional < min_files || n_positional > max_files)) {
        char expected[64];
        if (min_files == max_files) snprintf(expected, sizeof expected, "%d", min_files);
        else snprintf(expected, sizeof expected, "%d or more", min_files);
        rc = usage_error(err, "%s expects %s file%s, got %d (see %s --help)", prog, expected,
                         max_files == 1 ? "" : "s", n_positional, prog);
    }
    for (int i = 0; rc == 0 && i < n_positional; i++) files[i] = positional[i];
    if (rc == 0 && n_given) *n_given = n_positional;
    free(ordered), free(positional);
    return rc;
}

void format_shape(char *out, size_t n, const GPTConfig *cfg, int i) {
    size_t shape[3];
    int rank = gpt_param_shape(cfg, i, shape);
    size_t at = (size_t)snprintf(out, n, "(");
    for (int d = 0; d < rank && at < n; d++)
        at += (size_t)snprintf(out + at, n - at, d ? ", %zu" : "%zu", shape[d]);
    if (at < n) snprintf(out + at, n - at, ")");
}

cJSON *shape_json(const GPTConfig *cfg, int i) {
    size_t shape[3];
    int rank = gpt_param_shape(cfg, i, shape);
    cJSON *a = cJSON_CreateArray();
    for (int d = 0; d < rank; d++) cJSON_AddItemToArray(a, jsonl_number_item((double)shape[d]));
    return a;
}

void json_add_hex(cJSON *obj, const char *name, uint32_t value) {
    char hex[16];
    snprintf(hex, sizeof hex, "%08" PRIx32, value);
    cJSON_AddStringToObject(obj, name, hex);
}

void print_header(const char *path, const CkptHeader *h) {
    const GPTConfig *c = &h->config;
    printf("file          %s\n", path);
    printf("format        MRLHFCKP, version %" PRIu32 "\n", h->version);
    printf("kind          %s\n", ckpt_kind_name((CkptKind)h->kind));
    printf("config        vocab %d, context %d, layers %d, heads %d, embd %d\n", c->vocab_size,
           c->max_seq_len, c->n_layer, c->n_head, c->n_embd);
    printf("parameters    %" PRIu64 "\n", h->num_params);
    printf("tokenizer     %08" PRIx32 "\n", h->tokenizer_fp);
    printf("stage         %s\n", h->stage);
    printf("step          %" PRIu64 "\n", h->step);
    if (h->parent_fp)
        printf("parent        %08" PRIx32 "  %s\n", h->parent_fp, h->parent_path);
    else
        printf("parent        none (trained from scratch)\n");
    printf("reward norm   mean %g, std %g\n", (double)h->reward_mean, (double)h->reward_std);
    printf("payload crc   %08" PRIx32 "\n", h->payload_crc);
    printf("fingerprint   %08" PRIx32 "\n", h->fingerprint);
}

cJSON *header_json(const char *path, const CkptHeader *h) {
    cJSON *o = cJSON_CreateObject(), *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", path);
    cJSON_AddStringToObject(o, "magic", "MRLHFCKP");
    jsonl_add_number(o, "version", h->version);
    cJSON_AddStringToObject(o, "kind", ckpt_kind_name((CkptKind)h->kind));
    jsonl_add_number(cfg, "vocab_size", h->config.vocab_size);
    jsonl_add_number(cfg, "max_seq_len", h->config.max_seq_len);
    jsonl_add_number(cfg, "n_layer", h->config.n_layer);
    jsonl_add_number(cfg, "n_head", h->config.n_head);
    jsonl_add_number(cfg, "n_embd", h->config.n_embd);
    cJSON_AddItemToObject(o, "config", cfg);
    jsonl_add_number(o, "num_params", (double)h->num_params);
    json_add_hex(o, "tokenizer_fp", h->tokenizer_fp);
    cJSON_AddStringToObject(o, "stage", h->stage);
    jsonl_add_number(o, "step", (double)h->step);
    json_add_hex(o, "parent_fp", h->parent_fp);
    cJSON_AddStringToObject(o, "parent_path", h->parent_path);
    jsonl_add_number(o, "reward_mean", h->reward_mean);
    jsonl_add_number(o, "reward_std", h->reward_std);
    json_add_hex(o, "payload_crc", h->payload_crc);
    json_add_hex(o, "fingerprint", h->fingerprint);
    return o;
}

void print_lineage(const Lineage *l, const char *indent) {
    for (int i = 0; i < l->n; i++) {
        const CkptHeader *h = &l->links[i].h;
        char step[32];
        snprintf(step, sizeof step, "step %" PRIu64, h->step);
        printf("%s%-9s %-11s %-15s %08" PRIx32 "  %s", indent, h->stage, step,
               ckpt_kind_name((CkptKind)h->kind), h->fingerprint, l->links[i].path);
        if (l->links[i].recorded) printf("  (found beside the child; recorded as %s)", l->links[i].recorded);
        printf("\n");
    }
}

cJSON *lineage_json(const Lineage *l) {
    cJSON *o = cJSON_CreateObject(), *chain = cJSON_CreateArray();
    for (int i = 0; i < l->n; i++) {
        const CkptHeader *h = &l->links[i].h;
        cJSON *link = cJSON_CreateObject();
        cJSON_AddStringToObject(link, "stage", h->stage);
        jsonl_add_number(link, "step", (double)h->step);
        cJSON_AddStringToObject(link, "kind", ckpt_kind_name((CkptKind)h->kind));
        json_add_hex(link, "fingerprint", h->fingerprint);
        json_add_hex(link, "parent_fp", h->parent_fp);
        cJSON_AddStringToObject(link, "path", l->links[i].path);
        // Where the child's header said the parent was, when it was found beside the child instead.
        if (l->links[i].recorded) cJSON_AddStringToObject(link, "recorded_path", l->links[i].recorded);
        else cJSON_AddNullToObject(link, "recorded_path");
        cJSON_AddItemToArray(chain, link);
    }
    cJSON_AddItemToObject(o, "chain", chain);
    cJSON_AddBoolToObject(o, "complete", l->end == LINEAGE_COMPLETE);
    cJSON_AddStringToObject(o, "end", lineage_end_name(l->end));
    if (l->end == LINEAGE_COMPLETE) cJSON_AddNullToObject(o, "problem");
    else cJSON_AddStringToObject(o, "problem", l->problem);
    return o;
}

void print_json(cJSON *doc) {
    char *text = cJSON_Print(doc);
    if (text) printf("%s\n", text);
    free(text);
    cJSON_Delete(doc);
}
