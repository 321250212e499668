#include "sft/sft_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
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

int sft_sample_responses(const GPT *m, KVCache *kv, const SftSet *set, size_t first, int count, int eot,
                         uint64_t seed, int *out_tokens, int *out_lens, float *lps) {
    int ctx = m->config.max_seq_len, ended = 0;
    SamplerConfig sc = {1.0f, 0, 1.0f};
    Rng rng;
    rng_seed(&rng, seed);
    for (int at = 0; at < count; at += kv->slots) {
        int B = count - at < kv->slots ? count - at : kv->slots;
        const int *prompts[64];
        int lens[64];
        for (int i = 0; i < B; i++) {
            const SftExample *e = &set->ex[(first + at + i) % set->n];
            prompts[i] = e->ids, lens[i] = e->response_start;
        }
        generate(m, kv, prompts, lens, B, ctx, eot, &sc, &rng, out_tokens + (size_t)at * ctx, lps, out_lens + at);
        for (int i = 0; i < B; i++)
            ended += out_lens[at + i] > 0 && out_tokens[(size_t)(at + i) * ctx + out_lens[at + i] - 1] == eot;
    }
    return ended;
}

void sft_append_samples(const char *out_dir, long step, const GPT *m, KVCache *kv, const Tokenizer *tok,
                        const SftSet *set, uint64_t seed, int *tokens, int *lens, float *lps) {
    int N = set->n < 4 ? (int)set->n : 4;
    int ctx = m->config.max_seq_len, eot = tokenizer_special(tok, TOK_ENDOFTEXT);
    sft_sample_responses(m, kv, set, 0, N, eot, seed, tokens, lens, lps);
    char path[4096];
    Error err;
    FILE *fp = path_join(path, sizeof path, out_dir, "samples.txt", &err) ? NULL : fopen(path, "a");
    if (fp) fprintf(fp, "== step %ld (temperature 1) ==\n", step);
    for (int i = 0; fp && i < N; i++) {
        const SftExample *e = &set->ex[i];
        char *prompt = NULL, *response = NULL;
        size_t len;
        if (tokenizer_decode(tok, e->ids, e->response_start, &prompt, &len, &err) == 0 &&
            chat_response_text(tok, tokens + (size_t)i * ctx, lens[i], &response, &err) == 0) {
            int ended = lens[i] > 0 && tokens[(size_t)i * ctx + lens[i] - 1] == eot;
            fprintf(fp, "prompt:   %s\nresponse: %s%s\n", prompt, response, ended ? "" : " [no end token]");
        }
        free(prompt), free(response);
    }
    if (fp) fclose(fp);
}
