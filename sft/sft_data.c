#include "sft/sft_data.h"

#include <stdlib.h>
#include <string.h>

#include "common/jsonl.h"
#include "data/chat_template.h"

int sft_load(SftSet *set, const Tokenizer *tok, const char *path, int ctx, Error *err) {
    memset(set, 0, sizeof *set);
    JsonlReader r;
    if (jsonl_open(&r, path, err)) return -1;
    size_t cap = 0;
    int rc;
    cJSON *o;
    while ((rc = jsonl_next(&r, &o, err)) == 1) {
        const char *prompt = jsonl_string(&r, o, "prompt", err);
        const char *response = prompt ? jsonl_string(&r, o, "response", err) : NULL;
        int *ids = NULL;
        size_t n = 0, start = 0;
        Error e2;
        rc = 0;
        if (!response) rc = -1;
        else if (chat_format(tok, prompt, response, &ids, &n, &start, &e2))
            rc = error_set(err, "%s:%ld: %s", path, r.line, e2.msg);
        cJSON_Delete(o);
        if (rc) break;
        if (n > (size_t)ctx + 1) {
            set->skipped_long++;
            free(ids);
            continue;
        }
        if (set->n == cap) {
            cap = cap ? 2 * cap : 1024;
            SftExample *grown = realloc(set->ex, cap * sizeof *grown);
            if (!grown) {
                free(ids);
                rc = error_set(err, "out of memory reading %s", path);
                break;
            }
            set->ex = grown;
        }
        set->ex[set->n++] = (SftExample){ids, (int)n, (int)start};
    }
    jsonl_close(&r);
    if (rc == 0 && set->n == 0 && set->skipped_long == 0) rc = error_set(err, "%s: no pairs in the file", path);
    if (rc == 0 && set->n == 0)
        rc = error_set(err, "%s: none of its %zu pairs fits the model's context of %d tokens", path, set->skipped_long, ctx);
    if (rc) sft_free(set);
    return rc;
}

void sft_free(SftSet *set) {
    for (size_t i = 0; i < set->n; i++) free(set->ex[i].ids);
    free(set->ex);
    memset(set, 0, sizeof *set);
}

int sft_fill_batch(LmBatch *b, const SftSet *set, const size_t *idx, int B, int pad_id) {
    int T = 1;
    for (int i = 0; i < B; i++) {
        int len = set->ex[idx[i]].n - 1;
        T = len > T ? len : T;
    }
    if (T > b->max_T) T = b->max_T;
    for (int i = 0; i < B; i++) sft_fill_row(b, i, T, &set->ex[idx[i]], pad_id);
    return T;
}

void sft_fill_row(LmBatch *b, int row, int T, const SftExample *e, int pad_id) {
    int *in = b->inputs + (size_t)row * T, *tg = b->targets + (size_t)row * T;
    float *w = b->weights + (size_t)row * T;
    for (int t = 0; t < T; t++) {
        int real = t + 1 < e->n;
        in[t] = real ? e->ids[t] : pad_id;
        tg[t] = real ? e->ids[t + 1] : pad_id;
        w[t] = real && t + 1 >= e->response_start ? 1.0f : 0.0f;
    }
}
