// Fuzzes the config.txt reader (cli_apply_settings, what cli_load_settings
// runs on a file's bytes) against an option table like a training stage's.
// Whatever it accepts must survive a round trip: written back with
// cli_write_settings and read again, every option has the same value, bit
// for bit (the promise that lets --resume rebuild a run's settings).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"

typedef struct {
    const char *config, *tokenizer, *data, *out, *resume;
    int seed, threads, steps, batch, warmup, stop_after, flag;
    float lr, min_lr_frac, weight_decay, grad_clip;
} Settings;

static int make_options(Settings *s, CliOption *opts) {
    const CliOption table[] = {
        {"config", CLI_STRING, &s->config, 0, 0, ""},
        {"tokenizer", CLI_STRING, &s->tokenizer, 0, 0, ""},
        {"data", CLI_STRING, &s->data, 0, 0, ""},
        {"out", CLI_STRING, &s->out, 0, 0, ""},
        {"resume", CLI_STRING, &s->resume, 0, 0, ""},
        {"seed", CLI_INT, &s->seed, 0, 2147483647, ""},
        {"threads", CLI_INT, &s->threads, 0, 256, ""},
        {"steps", CLI_INT, &s->steps, 1, 10000000, ""},
        {"batch", CLI_INT, &s->batch, 1, 1024, ""},
        {"lr", CLI_FLOAT, &s->lr, 1e-7, 1, ""},
        {"min-lr-frac", CLI_FLOAT, &s->min_lr_frac, 0, 1, ""},
        {"warmup", CLI_INT, &s->warmup, 0, 10000000, ""},
        {"weight-decay", CLI_FLOAT, &s->weight_decay, 0, 10, ""},
        {"grad-clip", CLI_FLOAT, &s->grad_clip, 0, 1e6, ""},
        {"stop-after", CLI_INT, &s->stop_after, 0, 10000000, ""},
        {"raw", CLI_FLAG, &s->flag, 0, 0, ""},
    };
    int n = (int)(sizeof table / sizeof table[0]);
    memcpy(opts, table, sizeof table);
    return n;
}

static int same_string(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int same_settings(const Settings *a, const Settings *b) {
    return same_string(a->config, b->config) && same_string(a->tokenizer, b->tokenizer) &&
           same_string(a->data, b->data) && same_string(a->out, b->out) && same_string(a->resume, b->resume) &&
           a->seed == b->seed && a->threads == b->threads && a->steps == b->steps && a->batch == b->batch &&
           a->warmup == b->warmup && a->stop_after == b->stop_after && a->flag == b->flag &&
           memcmp(&a->lr, &b->lr, sizeof a->lr) == 0 && memcmp(&a->min_lr_frac, &b->min_lr_frac, 4) == 0 &&
           memcmp(&a->weight_decay, &b->weight_decay, 4) == 0 && memcmp(&a->grad_clip, &b->grad_clip, 4) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const skip[] = {"threads", "stop-after", NULL};
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    Settings first = {.lr = 3e-4f, .steps = 10, .batch = 1}, second;
    CliOption opts[32];
    int n = make_options(&first, opts);
    Error err;
    if (cli_apply_settings("config.txt", text, size, opts, n, skip, &err) == 0) {
        char *written = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&written, &len);
        if (!mem) abort();
        cli_write_settings(mem, opts, n);
        fclose(mem);
        second = (Settings){.lr = 3e-4f, .steps = 10, .batch = 1};
        make_options(&second, opts);
        // What the reader accepted, the writer wrote: reading it must not fail.
        if (cli_apply_settings("config.txt", written, len, opts, n, skip, &err) != 0) abort();
        second.threads = first.threads, second.stop_after = first.stop_after; // skipped on purpose
        if (!same_settings(&first, &second)) abort();
        free(written);
    }
    free(text);
    return 0;
}
