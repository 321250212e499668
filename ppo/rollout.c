#include "ppo/rollout.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonl.h"
#include "data/chat_template.h"
#include "data/prompt_record.h"
#include "model/loss.h"
#include "reward_model/reward_model.h"

void prompts_free(PromptSet *ps) {
    for (size_t i = 0; i < ps->n; i++) free(ps->text[i]), free(ps->ids[i]);
    free(ps->text), free(ps->ids), free(ps->len), free(ps->category);
    memset(ps, 0, sizeof *ps);
}

static int prompts_grow(PromptSet *ps, size_t *cap) {
    if (ps->n < *cap) return 0;
    *cap = *cap ? 2 * *cap : 256;
    char **t = realloc(ps->text, *cap * sizeof *t);
    if (t) ps->text = t;
    int **ids = realloc(ps->ids, *cap * sizeof *ids);
    if (ids) ps->ids = ids;
    int *len = realloc(ps->len, *cap * sizeof *len);
    if (len) ps->len = len;
    int *cat = realloc(ps->category, *cap * sizeof *cat);
    if (cat) ps->category = cat;
    return t && ids && len && cat ? 0 : -1;
}

int prompts_load(PromptSet *ps, const Tokenizer *tok, const Annotator *ann, const char *path, int ctx,
                 int max_new_min, Error *err) {
    memset(ps, 0, sizeof *ps);
    JsonlReader r;
    if (jsonl_open(&r, path, err)) return -1;
    size_t cap = 0;
    int rc;
    cJSON *o;
    while ((rc = jsonl_next(&r, &o, err)) == 1) {
        rc = 0;
        const char *prompt = jsonl_string(&r, o, "prompt", err);
        int category = -1;
        if (!prompt || prompt_record_category(ann, &r, o, prompt, &category, err)) rc = -1;
        if (rc == 0 && category < 0)
            rc = error_set(err, "%s:%ld: no annotator category for this prompt", path, r.line);
        int *ids = NULL;
        size_t n = 0;
        Error e2;
        if (rc == 0 && chat_format(tok, prompt, NULL, &ids, &n, NULL, &e2))
            rc = error_set(err, "%s:%ld: %s", path, r.line, e2.msg);
        if (rc == 0 && (int)n + max_new_min > ctx)
            rc = error_set(err, "%s:%ld: prompt of %zu tokens leaves less than %d for a response in a context of %d",
                           path, r.line, n, max_new_min, ctx);
        if (rc == 0 && prompts_grow(ps, &cap)) rc = error_set(err, "out of memory");
        if (rc == 0) {
            ps->text[ps->n] = strdup(prompt);
            ps->ids[ps->n] = ids, ps->len[ps->n] = (int)n, ps->category[ps->n] = category;
            ps->n++;
        } else {
            free(ids);
        }
        cJSON_Delete(o);
        if (rc) break;
    }
    jsonl_close(&r);
    if (rc == 0 && ps->n == 0) rc = error_set(err, "%s: no prompts", path);
    if (rc) prompts_free(ps);
    return rc;
}

int rollout_alloc(Rollout *r, int n, int max_new, int rm_ctx, Error *err) {
    memset(r, 0, sizeof *r);
    r->n = n, r->max_new = max_new, r->rm_ctx = rm_ctx;
    size_t nk = (size_t)n * max_new;
    r->prompt = calloc(n, sizeof(int)), r->resp = calloc(nk, sizeof(int));
    r->resp_len = calloc(n, sizeof(int)), r->ended = calloc(n, sizeof(int));
    float **per_token[] = {&r->sample_logp, &r->logp, &r->ref_logp, &r->values, &r->entropy,
                           &r->kl_full, &r->rewards, &r->adv, &r->returns};
    int ok = r->prompt && r->resp && r->resp_len && r->ended;
    for (size_t i = 0; i < sizeof per_token / sizeof per_token[0]; i++) ok &= (*per_token[i] = calloc(nk, sizeof(float))) != NULL;
    ok &= (r->score = calloc(n, sizeof(float))) && (r->gold = calloc(n, sizeof(float)));
    ok &= (r->rm_ids = calloc((size_t)n * rm_ctx, sizeof(int))) && (r->rm_len = calloc(n, sizeof(int)));
    if (!ok) {
        rollout_free(r);
        return error_set(err, "out of memory for a rollout of %d x %d", n, max_new);
    }
    return 0;
}

void rollout_free(Rollout *r) {
    free(r->prompt), free(r->resp), free(r->resp_len), free(r->ended);
    free(r->sample_logp), free(r->logp), free(r->ref_logp), free(r->values), free(r->entropy), free(r->kl_full);
    free(r->rewards), free(r->adv), free(r->returns), free(r->score), free(r->gold);
    free(r->rm_ids), free(r->rm_len);
    memset(r, 0, sizeof *r);
}

void rollout_generate(Rollout *r, const GPT *policy, KVCache *kv, const PromptSet *ps, float temperature,
                      int eot, Rng *rng) {
    SamplerConfig sc = {temperature, 0, 1.0f};
    for (int at = 0; at < r->n; at += kv->slots) {
        int B = r->n - at < kv->slots ? r->n - at : kv->slots;
        const int *prompts[256];
        int lens[256];
        for (int i = 0; i < B && i < 256; i++) prompts[i] = ps->ids[r->prompt[at + i]], lens[i] = ps->len[r->prompt[at + i]];
        generate(policy, kv, prompts, lens, B, r->max_new, eot, &sc, rng, r->resp + (size_t)at * r->max_new,
                 r->sample_logp + (size_t)at * r->max_new, r->resp_len + at);
    }
    for (int i = 0; i < r->n; i++)
        r->ended[i] = r->resp_len[i] > 0 && r->resp[(size_t)i * r->max_new + r->resp_len[i] - 1] == eot;
}

void rollout_sample_heldout(Rollout *r, int n_prompts, int samples, const GPT *from, KVCache *kv,
                            const PromptSet *ps, float temperature, int eot, uint64_t seed) {
    r->n = n_prompts * samples;
    for (int i = 0; i < r->n; i++) r->prompt[i] = i / samples;
    Rng rng;
    rng_seed(&rng, seed);
    rollout_generate(r, from, kv, ps, temperature, eot, &rng);
}

int rollout_rows(int *inputs, int *lens, const Rollout *r, const PromptSet *ps, const int *idx, int rows, int pad,
                 int ctx) {
    int T = 1;
    for (int i = 0; i < rows; i++) {
        int s = idx[i], q = ps->len[r->prompt[s]];
        lens[i] = q + r->resp_len[s];
        if (lens[i] > ctx) lens[i] = ctx;
        T = lens[i] > T ? lens[i] : T;
    }
    for (int i = 0; i < rows; i++) {
        int s = idx[i], q = ps->len[r->prompt[s]];
        int *row = inputs + (size_t)i * T;
        for (int t = 0; t < T; t++)
            row[t] = t >= lens[i] ? pad : t < q ? ps->ids[r->prompt[s]][t] : r->resp[(size_t)s * r->max_new + t - q];
    }
    return T;
}

int rollout_token_stats(GPT *m, const Rollout *r, const PromptSet *ps, const int *idx, int rows, float temperature,
                         int pad, int *inputs, int *lens, float *logp, float *values, float *entropy) {
    int ctx = m->config.max_seq_len, V = m->config.vocab_size;
    int T = rollout_rows(inputs, lens, r, ps, idx, rows, pad, ctx);
    gpt_forward(m, inputs, rows, T, 1);
    for (int i = 0; i < rows; i++) {
        int s = idx[i], q = ps->len[r->prompt[s]], L = r->resp_len[s];
        size_t at = (size_t)s * r->max_new;
        // Response token k sits at position q + k and was drawn from the
        // distribution at position q + k - 1, where the value is read too.
        const float *logits = m->acts.logits + ((size_t)i * T + q - 1) * V;
        logprob_forward(logp + at, logits, r->resp + at, L, V, temperature);
        if (values)
            for (int k = 0; k < L; k++) values[at + k] = m->head[i * T + q - 1 + k];
        if (entropy) entropy_forward(entropy + at, logits, L, V, temperature);
    }
    return T;
}

void rollout_rm_scores(GPT *rm, const CkptHeader *rm_header, Rollout *r, const int *idx, int rows, int pad,
                       int *inputs, int *lens) {
    // The rows and the forward pass of train_rm (reward_model.h).
    int *ids[ROLLOUT_MAX_ROWS] = {NULL};
    float raw[ROLLOUT_MAX_ROWS] = {0};
    for (int i = 0; i < rows; i++) ids[i] = r->rm_ids + (size_t)idx[i] * r->rm_ctx, lens[i] = r->rm_len[idx[i]];
    int T = rm_fill_rows(inputs, ids, lens, rows, pad);
    rm_forward(rm, inputs, lens, rows, T, raw);
    for (int i = 0; i < rows; i++) r->score[idx[i]] = (raw[i] - rm_header->reward_mean) / rm_header->reward_std;
}

void rollout_score(Rollout *r, const PromptSet *ps, GPT *policy, GPT *ref, GPT *rm, const CkptHeader *rm_header,
                   float temperature, int pad, ScoreScratch *sc) {
    for (int i = 0; i < r->n; i++) sc->order[i] = i;
    for (int at = 0; at < r->n; at += sc->rows) {
        int rows = r->n - at < sc->rows ? r->n - at : sc->rows;
        const int *idx = sc->order + at;
        int T = 0;
        if (policy)
            T = rollout_token_stats(policy, r, ps, idx, rows, temperature, pad, sc->inputs, sc->lens, r->logp,
                                    r->values, r->entropy);
        rollout_token_stats(ref, r, ps, idx, rows, temperature, pad, sc->inputs, sc->lens, r->ref_logp, NULL, NULL);
        // Both models hold their logits of the same rows now.
        for (int i = 0; policy && i < rows; i++) {
            int s = idx[i], q = ps->len[r->prompt[s]], V = ref->config.vocab_size;
            size_t first = ((size_t)i * T + q - 1) * V;
            kl_full_forward(r->kl_full + (size_t)s * r->max_new, policy->acts.logits + first, ref->acts.logits + first,
                            r->resp_len[s], V, temperature);
        }
        rollout_rm_scores(rm, rm_header, r, idx, rows, pad, sc->inputs, sc->lens);
    }
}

int rollout_decode(Rollout *r, const PromptSet *ps, const Tokenizer *tok, const Annotator *ann,
                   AnnotatorParts *parts, Error *err) {
    for (int i = 0; i < r->n; i++) {
        const char *prompt = ps->text[r->prompt[i]];
        char *text = NULL;
        int *ids = NULL, n = 0;
        if (rm_encode_generated(tok, prompt, r->resp + (size_t)i * r->max_new, r->resp_len[i], r->rm_ctx, &ids, &n,
                                &text, err))
            return -1;
        memcpy(r->rm_ids + (size_t)i * r->rm_ctx, ids, (size_t)n * sizeof *ids);
        r->rm_len[i] = n;
        if (ann)
            r->gold[i] = (float)annotator_gold_category(ann, ps->category[r->prompt[i]], text, r->ended[i],
                                                        parts ? &parts[i] : NULL);
        free(ids), free(text);
    }
    return 0;
}

void mean_se(const float *x, int n, double *mean, double *se) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += x[i], ss += (double)x[i] * x[i];
    *mean = n ? s / n : NAN;
    double var = n > 1 ? (ss - s * s / n) / (n - 1) : 0;
    *se = n > 1 ? sqrt(var > 0 ? var / n : 0) : NAN;
}
