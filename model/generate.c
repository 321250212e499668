#include "model/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/fastmath.h"
#include "model/layers.h"

int kvcache_create(KVCache *c, const GPTConfig *cfg, int slots, Error *err) {
    memset(c, 0, sizeof *c);
    size_t S = slots, T = cfg->max_seq_len, C = cfg->n_embd, L = cfg->n_layer, V = cfg->vocab_size;
    c->slots = slots, c->max_T = cfg->max_seq_len, c->C = cfg->n_embd, c->V = cfg->vocab_size;
    c->NH = cfg->n_head;
    float **ptrs[] = {&c->k, &c->v, &c->x, &c->ln, &c->mean, &c->rstd, &c->qkv, &c->atty,
                      &c->proj, &c->fch, &c->fch_gelu, &c->att, &c->logits, &c->head, &c->probs};
    size_t sizes[] = {L * S * T * C, L * S * T * C, S * C, S * C, S, S, S * 3 * C, S * C, S * C,
                      S * 4 * C, S * 4 * C, S * cfg->n_head * T, S * V, S, V};
    size_t total = 0, n = sizeof sizes / sizeof sizes[0];
    for (size_t i = 0; i < n; i++) total += sizes[i];
    int **iptrs[] = {&c->order, &c->pos, &c->tok, &c->row_seq, &c->row_pos, &c->done};
    size_t isizes[] = {2 * V, S, S, S, S, S};
    size_t itotal = 0, ni = sizeof isizes / sizeof isizes[0];
    for (size_t i = 0; i < ni; i++) itotal += isizes[i];
    c->memory = malloc(total * sizeof(float));
    c->int_memory = malloc(itotal * sizeof(int));
    if (!c->memory || !c->int_memory) {
        kvcache_free(c);
        return error_set(err, "out of memory for a KV cache of %d slots", slots);
    }
    float *p = c->memory;
    for (size_t i = 0; i < n; i++) {
        *ptrs[i] = p;
        p += sizes[i];
    }
    int *q = c->int_memory;
    for (size_t i = 0; i < ni; i++) {
        *iptrs[i] = q;
        q += isizes[i];
    }
    return 0;
}

void kvcache_free(KVCache *c) {
    free(c->memory);
    free(c->int_memory);
    memset(c, 0, sizeof *c);
}

// Single-query attention of each row against its cached keys and values.
static void attention_decode(KVCache *c, int l, const int *pos, const int *slots, int n) {
    int C = c->C, NH = c->NH, hs = C / NH, T = c->max_T;
    float scale = 1.0f / sqrtf((float)hs);
    size_t layer = (size_t)l * c->slots * T * C;
#pragma omp parallel for collapse(2)
    for (int i = 0; i < n; i++) {
        for (int h = 0; h < NH; h++) {
            const float *q = c->qkv + (size_t)i * 3 * C + h * hs;
            const float *kc = c->k + layer + (size_t)slots[i] * T * C + h * hs;
            const float *vc = c->v + layer + (size_t)slots[i] * T * C + h * hs;
            float *a = c->att + ((size_t)i * NH + h) * T;
            float maxv = -INFINITY;
            for (int t = 0; t <= pos[i]; t++) {
                float s = 0.0f;
                for (int d = 0; d < hs; d++) s += q[d] * kc[(size_t)t * C + d];
                a[t] = s * scale;
                maxv = a[t] > maxv ? a[t] : maxv;
            }
            float sum = 0.0f;
            for (int t = 0; t <= pos[i]; t++) {
                a[t] = fast_expf(a[t] - maxv);
                sum += a[t];
            }
            float *o = c->atty + (size_t)i * C + h * hs;
            for (int d = 0; d < hs; d++) o[d] = 0.0f;
            for (int t = 0; t <= pos[i]; t++) {
                float w = a[t] / sum;
                for (int d = 0; d < hs; d++) o[d] += w * vc[(size_t)t * C + d];
            }
        }
    }
}

void gpt_decode_step(const GPT *m, KVCache *c, const int *tokens, const int *pos, const int *slots,
                     int n) {
    const GPTConfig *cfg = &m->config;
    const ParameterTensors *p = &m->params;
    int C = cfg->n_embd, T = cfg->max_seq_len;
    for (int i = 0; i < n; i++) { // x (n,C) = wte[token] + wpe[pos]
        const float *we = p->wte + (size_t)tokens[i] * C, *pe = p->wpe + (size_t)pos[i] * C;
        for (int d = 0; d < C; d++) c->x[(size_t)i * C + d] = we[d] + pe[d];
    }
    for (int l = 0; l < cfg->n_layer; l++) {
        size_t lC = (size_t)l * C;
        layernorm_forward(c->ln, c->mean, c->rstd, c->x, p->ln1w + lC, p->ln1b + lC, n, C);
        matmul_forward(c->qkv, c->ln, p->qkvw + lC * 3 * C, p->qkvb + lC * 3, n, C, 3 * C);
        size_t layer = (size_t)l * c->slots * T * C;
        for (int i = 0; i < n; i++) {
            size_t at = layer + ((size_t)slots[i] * T + pos[i]) * C;
            memcpy(c->k + at, c->qkv + (size_t)i * 3 * C + C, C * sizeof(float));
            memcpy(c->v + at, c->qkv + (size_t)i * 3 * C + 2 * C, C * sizeof(float));
        }
        attention_decode(c, l, pos, slots, n);
        matmul_forward(c->proj, c->atty, p->attprojw + lC * C, p->attprojb + lC, n, C, C);
        residual_forward(c->x, c->x, c->proj, (size_t)n * C);
        layernorm_forward(c->ln, c->mean, c->rstd, c->x, p->ln2w + lC, p->ln2b + lC, n, C);
        matmul_forward(c->fch, c->ln, p->fcw + lC * 4 * C, p->fcb + lC * 4, n, C, 4 * C);
        gelu_forward(c->fch_gelu, c->fch, (size_t)n * 4 * C);
        matmul_forward(c->proj, c->fch_gelu, p->fcprojw + lC * 4 * C, p->fcprojb + lC, n, 4 * C, C);
        residual_forward(c->x, c->x, c->proj, (size_t)n * C);
    }
    layernorm_forward(c->ln, c->mean, c->rstd, c->x, p->lnfw, p->lnfb, n, C);
    matmul_forward(c->logits, c->ln, p->wte, NULL, n, C, cfg->vocab_size); // (n,V)
    head_forward(c->head, c->ln, p->headw, p->headb, n, C);
}

// Descending probability, ties by id, so sampling is reproducible.
static int before(int a, int b, const float *probs) {
    return probs[a] != probs[b] ? probs[a] > probs[b] : a < b;
}

// Merge sort of token ids by probability (qsort has no context argument in
// standard C); tmp holds n ints.
static void sort_by_prob(int *order, int *tmp, int n, const float *probs) {
    if (n < 2) return;
    int h = n / 2;
    sort_by_prob(order, tmp, h, probs);
    sort_by_prob(order + h, tmp, n - h, probs);
    int i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = before(order[j], order[i], probs) ? order[j++] : order[i++];
    while (i < h) tmp[k++] = order[i++];
    while (j < n) tmp[k++] = order[j++];
    memcpy(order, tmp, n * sizeof(int));
}

int sample_token(const float *logits, int V, const SamplerConfig *sc, Rng *rng, float *probs,
                 int *order, float *logprob) {
    if (sc->temperature <= 0.0f) { // greedy
        int best = 0;
        for (int v = 1; v < V; v++) best = logits[v] > logits[best] ? v : best;
        *logprob = 0.0f;
        return best;
    }
    float inv_t = 1.0f / sc->temperature, maxv = -INFINITY;
    for (int v = 0; v < V; v++) maxv = fmaxf(maxv, logits[v] * inv_t);
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += probs[v] = expf(logits[v] * inv_t - maxv);
    for (int v = 0; v < V; v++) probs[v] = (float)(probs[v] / sum);
    int n = V;
    int truncate = (sc->top_k > 0 && sc->top_k < V) || sc->top_p < 1.0f;
    if (truncate) {
        for (int v = 0; v < V; v++) order[v] = v;
        sort_by_prob(order, order + V, V, probs); // order holds 2V ints
        if (sc->top_k > 0 && sc->top_k < n) n = sc->top_k;
        if (sc->top_p < 1.0f) {
            double cum = 0.0;
            for (int i = 0; i < n; i++) {
                cum += probs[order[i]];
                if (cum >= sc->top_p) {
                    n = i + 1;
                    break;
                }
            }
        }
    }
    double mass = 0.0;
    for (int i = 0; i < n; i++) mass += probs[truncate ? order[i] : i];
    double u = rng_uniform_double(rng) * mass, cum = 0.0;
    int pick = truncate ? order[n - 1] : n - 1;
    for (int i = 0; i < n; i++) {
        int id = truncate ? order[i] : i;
        cum += probs[id];
        if (u < cum) {
            pick = id;
            break;
        }
    }
    *logprob = (float)log(probs[pick] / mass);
    return pick;
}

void generate(const GPT *m, KVCache *c, const int *const *prompts, const int *prompt_lens, int B,
              int max_new, int stop_token, const SamplerConfig *sc, Rng *rng, int *out_tokens,
              float *out_logprobs, int *out_lens) {
    // Every active sequence advances one position per step: first through its
    // prompt (feeding prompt tokens), then sampling. Finished sequences drop
    // out of the step, so short answers cost nothing afterwards.
    int T = c->max_T;
    int *pos = c->pos, *tok = c->tok, *row_seq = c->row_seq, *row_pos = c->row_pos, *done = c->done;
    for (int b = 0; b < B; b++) {
        pos[b] = 0;
        out_lens[b] = 0;
        done[b] = prompt_lens[b] < 1 || prompt_lens[b] >= T; // no room to continue
    }
    for (;;) {
        int n = 0;
        for (int b = 0; b < B; b++) {
            if (done[b]) continue;
            int p = pos[b];
            tok[n] = p < prompt_lens[b] ? prompts[b][p] : out_tokens[(size_t)b * max_new + p - prompt_lens[b]];
            row_seq[n] = b;
            row_pos[n] = p;
            n++;
        }
        if (n == 0) break;
        gpt_decode_step(m, c, tok, row_pos, row_seq, n);
        for (int i = 0; i < n; i++) {
            int b = row_seq[i];
            pos[b]++;
            if (pos[b] < prompt_lens[b]) continue; // still reading the prompt
            int k = out_lens[b];
            float lp;
            int t = sample_token(c->logits + (size_t)i * c->V, c->V, sc, rng, c->probs, c->order, &lp);
            out_tokens[(size_t)b * max_new + k] = t;
            out_logprobs[(size_t)b * max_new + k] = lp;
            out_lens[b] = k + 1;
            if (t == stop_token || out_lens[b] >= max_new || pos[b] >= T) done[b] = 1;
        }
    }
}
