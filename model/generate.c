#include "model/generate.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "model/decode.h"
#include "model/fastmath.h"

// Rows of one prefill pass: enough for sgemm to run near its peak, small
// enough that the scratch stays a fraction of the cache itself.
enum { PREFILL_ROWS = 256 };

static size_t round_up(size_t n, size_t m) {
    return (n + m - 1) / m * m;
}

int kvcache_create(KVCache *c, const GPTConfig *cfg, int slots, Error *err) {
    memset(c, 0, sizeof *c);
    if (slots < 1) return error_set(err, "a KV cache needs at least one slot, not %d", slots);
    int nth = omp_get_max_threads();
    nth = nth < 1 ? 1 : nth > 256 ? 256 : nth;
    size_t S = slots, T = cfg->max_seq_len, C = cfg->n_embd, L = cfg->n_layer, V = cfg->vocab_size;
    size_t Tp = round_up(T, 8), R = S * T < PREFILL_ROWS ? S * T : PREFILL_ROWS;
    if (R < S) R = S;
    c->slots = slots, c->max_T = cfg->max_seq_len, c->C = cfg->n_embd, c->V = cfg->vocab_size;
    c->NH = cfg->n_head, c->L = cfg->n_layer, c->Tp = (int)Tp, c->rows = (int)R, c->n_threads = nth;
    c->min_macs = 2e6;
    // Every block starts on a 64-byte line.
    c->thread_floats = round_up(2 * C * R + Tp, 16);
    float **ptrs[] = {&c->k,   &c->v,    &c->thread_mem, &c->qkv,    &c->atty,  &c->fch,   &c->part,
                      &c->wt,  &c->logits, &c->seq_logits, &c->probs, &c->head, &c->samp_lp};
    size_t sizes[] = {L * S * C * Tp, L * S * Tp * C, nth * c->thread_floats, 3 * C * R, C * R, 4 * C * R,
                      2 * nth * C * R, decode_weight_floats(cfg), S * V, S * V, S * V, S, S};
    size_t total = 0, n = sizeof sizes / sizeof sizes[0];
    for (size_t i = 0; i < n; i++) total += round_up(sizes[i], 16);
    int **iptrs[] = {&c->order,    &c->pos,      &c->tok,       &c->row_seq,   &c->row_pos,
                     &c->done,     &c->ready,    &c->samp_seq,  &c->samp_row,  &c->samp_tok,
                     &c->chunk_tok, &c->chunk_pos, &c->chunk_slot, &c->logit_rows};
    size_t isizes[] = {2 * S * V, S, S, S, S, S, S, S, S, S, R, R, R, S};
    size_t itotal = 0, ni = sizeof isizes / sizeof isizes[0];
    for (size_t i = 0; i < ni; i++) itotal += isizes[i];
    // calloc: pages of the cache that a run never reaches are never touched,
    // and key blocks read past a sequence's end (then ignored) are defined.
    c->memory = calloc(total + 16, sizeof(float));
    c->int_memory = malloc(itotal * sizeof(int));
    c->double_memory = malloc(S * sizeof(double));
    if (!c->memory || !c->int_memory || !c->double_memory) {
        kvcache_free(c);
        return error_set(err, "out of memory for a KV cache of %d slots", slots);
    }
    float *p = c->memory + (16 - ((uintptr_t)c->memory / sizeof(float)) % 16) % 16;
    for (size_t i = 0; i < n; i++) {
        *ptrs[i] = p;
        p += round_up(sizes[i], 16);
    }
    int *q = c->int_memory;
    for (size_t i = 0; i < ni; i++) {
        *iptrs[i] = q;
        q += isizes[i];
    }
    c->samp_u = c->double_memory;
    return 0;
}

void kvcache_free(KVCache *c) {
    free(c->memory);
    free(c->int_memory);
    free(c->double_memory);
    memset(c, 0, sizeof *c);
}

// ---- forward calls (the pass itself is in decode.c) -------------------------------
// Logits row r of a draw: r < slots is c->logits row r, slots + b is
// c->seq_logits row b.
static const float *logits_row(const KVCache *c, int r) {
    return r < c->slots ? c->logits + (size_t)r * c->V : c->seq_logits + (size_t)(r - c->slots) * c->V;
}

static void sample_one(KVCache *c, const SamplerConfig *sc, int j) {
    int V = c->V;
    c->samp_tok[j] = sample_token_u(logits_row(c, c->samp_row[j]), V, sc, c->samp_u[j],
                                    c->probs + (size_t)j * V, c->order + (size_t)j * 2 * V,
                                    &c->samp_lp[j]);
}

static void team_barrier(int nth) {
    if (nth > 1) {
#pragma omp barrier
    }
}

// Threads for a pass: at most one per c->min_macs multiply-adds of its
// matrix products, so that a pass too small for two barriers a layer to pay
// runs on one thread (a row of the tiny model is about 1M multiply-adds,
// 25 us, and a barrier costs 1-10 us).
static int pass_threads(const Pass *P) {
    const KVCache *c = P->c;
    double macs = (double)P->n * c->L * 12.0 * c->C * c->C + (double)P->nl * c->V * c->C;
    double nth = c->min_macs > 0 ? macs / c->min_macs : c->n_threads;
    return nth < 1 ? 1 : nth < c->n_threads ? (int)nth : c->n_threads;
}

static void pass_thread(const Pass *P, int t, int nth) {
    decode_forward(P, t, nth);
    if (P->ns > 0) { // the draws, shared out once every logit is there
        team_barrier(nth);
        for (int j = t; j < P->ns; j += nth) sample_one(P->c, P->sc, j);
    }
}

static void run_pass(const Pass *P) {
    int nth = pass_threads(P);
    if (nth == 1 && omp_get_max_threads() > 1) {
        // One thread, and OpenBLAS single-threaded as well: outside a parallel
        // region it would split each small product over omp_get_max_threads()
        // threads (16 rows, loaded machine: 2.4 GFLOP/s against 34 on one).
        // The ICV set here belongs to this one-thread region's task only.
#pragma omp parallel num_threads(1)
        {
            omp_set_num_threads(1);
            pass_thread(P, 0, 1);
        }
        return;
    }
    if (nth == 1) {
        pass_thread(P, 0, 1);
        return;
    }
#pragma omp parallel num_threads(nth)
    pass_thread(P, omp_get_thread_num(), omp_get_num_threads());
}

void kvcache_set_model(KVCache *c, const GPT *m) {
    decode_load_weights(c, m);
}

void gpt_decode_step(const GPT *m, KVCache *c, const int *tokens, const int *pos, const int *slots,
                     int n) {
    if (c->model != m) kvcache_set_model(c, m);
    Pass P = {.m = m, .c = c, .tok = tokens, .pos = pos, .slot = slots, .n = n, .nl = n};
    run_pass(&P);
}

// ---- sampling ---------------------------------------------------------------------
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

// The sampler as it was first written: libm expf, a double sum,
// probabilities normalised before the search. sample_token_u returns what
// this returns; for plain sampling it gets there faster (below).
static int sample_exact(const float *logits, int V, const SamplerConfig *sc, double u, float *probs,
                        int *order, float *logprob) {
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
    double x = u * mass, cum = 0.0;
    int pick = truncate ? order[n - 1] : n - 1;
    for (int i = 0; i < n; i++) {
        int id = truncate ? order[i] : i;
        cum += probs[id];
        if (x < cum) {
            pick = id;
            break;
        }
    }
    *logprob = (float)log(probs[pick] / mass);
    return pick;
}

// Sum of n floats in double, eight interleaved lanes.
static double sum8_double(const float *x, int n) {
    double s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += x[i + j];
    double tail = 0.0;
    for (; i < n; i++) tail += x[i];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail;
}

// Blocks of the inverse-CDF search: the total is a sum of block sums, the
// search skips whole blocks and walks token by token inside one.
enum { SAMPLE_BLOCK = 64 };

// Plain sampling (no top-k/top-p) computes exp with fast_expf (vectorised;
// libm expf over the vocabulary took more time than the rest of a tiny
// decode step) on unnormalised weights. Normalised, every weight is within
// 6e-7 (relative; fast_expf 2e-7, libm expf and float rounding) of
// sample_exact's probability, so are the ends of every token's interval of
// [0,1), and a draw whose point lies more than 1e-6 from both ends of its
// token's interval picks the same token there; one that does not (about one
// draw in a million) is redone by sample_exact. Either way the token is
// sample_exact's.
int sample_token_u(const float *logits, int V, const SamplerConfig *sc, double u, float *probs,
                   int *order, float *logprob) {
    if (sc->temperature <= 0.0f) { // greedy
        int best = 0;
        for (int v = 1; v < V; v++) best = logits[v] > logits[best] ? v : best;
        *logprob = 0.0f;
        return best;
    }
    if ((sc->top_k > 0 && sc->top_k < V) || sc->top_p < 1.0f) // sorts anyway: no shortcut
        return sample_exact(logits, V, sc, u, probs, order, logprob);
    float inv_t = 1.0f / sc->temperature;
    for (int v = 0; v < V; v++) probs[v] = logits[v] * inv_t;
    float maxv = max8(probs, V);
    for (int v = 0; v < V; v++) probs[v] = fast_expf(probs[v] - maxv); // unnormalised
    double total = 0.0;
    for (int v = 0; v < V; v += SAMPLE_BLOCK) total += sum8_double(probs + v, V - v < SAMPLE_BLOCK ? V - v : SAMPLE_BLOCK);
    double target = u * total, cum = 0.0, lo = 0.0, hi = 0.0;
    int pick = -1;
    for (int v = 0; v < V; v += SAMPLE_BLOCK) {
        int nb = V - v < SAMPLE_BLOCK ? V - v : SAMPLE_BLOCK;
        double block = sum8_double(probs + v, nb);
        if (target < cum + block) {
            hi = cum;
            for (int i = v; i < v + nb; i++) {
                lo = hi;
                hi += probs[i];
                if (target < hi) {
                    pick = i;
                    break;
                }
            }
            break;
        }
        cum += block;
    }
    double tol = 1e-6 * total;
    if (pick < 0 || target - lo < tol || hi - target < tol)
        return sample_exact(logits, V, sc, u, probs, order, logprob);
    *logprob = (float)((double)(logits[pick] * inv_t - maxv) - log(total));
    return pick;
}

int sample_token(const float *logits, int V, const SamplerConfig *sc, Rng *rng, float *probs,
                 int *order, float *logprob) {
    double u = sc->temperature > 0.0f ? rng_uniform_double(rng) : 0.0;
    return sample_token_u(logits, V, sc, u, probs, order, logprob);
}

// The draws listed in c->samp_* (ns of them), on the cache's threads.
static void sample_listed(KVCache *c, const SamplerConfig *sc, int ns) {
    if (c->n_threads == 1 || ns < 2) {
        for (int j = 0; j < ns; j++) sample_one(c, sc, j);
        return;
    }
#pragma omp parallel for num_threads(c->n_threads) schedule(static, 1)
    for (int j = 0; j < ns; j++) sample_one(c, sc, j);
}

// ---- generate ---------------------------------------------------------------------
// Runs the prefill rows collected so far and keeps each finished prompt's
// last-position logits in c->seq_logits.
static void flush_prefill(const GPT *m, KVCache *c, int n, int nl) {
    if (n == 0) return;
    Pass P = {.m = m, .c = c, .tok = c->chunk_tok, .pos = c->chunk_pos, .slot = c->chunk_slot,
              .n = n, .lrows = c->logit_rows, .nl = nl};
    run_pass(&P);
    for (int j = 0; j < nl; j++)
        memcpy(c->seq_logits + (size_t)c->chunk_slot[c->logit_rows[j]] * c->V,
               c->logits + (size_t)j * c->V, (size_t)c->V * sizeof(float));
}

void generate(const GPT *m, KVCache *c, const int *const *prompts, const int *prompt_lens, int B,
              int max_new, int stop_token, const SamplerConfig *sc, Rng *rng, int *out_tokens,
              float *out_logprobs, int *out_lens) {
    // The draws happen in the order of a run that feeds every sequence one
    // position per step (a step is a position; within it, sequences in
    // order): sequence b draws at step s once its logits at position s are
    // known, i.e. from s = prompt_lens[b] - 1 on. All prompt positions are
    // prefilled first, PREFILL_ROWS rows per pass; then each step feeds the
    // tokens drawn at the step before, and its pass draws the next ones.
    kvcache_set_model(c, m); // m's parameters may have changed since the last call
    int T = c->max_T, S = c->slots;
    int *done = c->done, *ready = c->ready;
    int n = 0, nl = 0, first = T;
    for (int b = 0; b < B; b++) {
        out_lens[b] = 0;
        int P = prompt_lens[b];
        done[b] = P < 1 || P >= T; // no room to continue
        if (done[b]) continue;
        ready[b] = P - 1;
        first = P - 1 < first ? P - 1 : first;
        for (int p = 0; p < P; p++) {
            c->chunk_tok[n] = prompts[b][p], c->chunk_pos[n] = p, c->chunk_slot[n] = b;
            if (p == P - 1) c->logit_rows[nl++] = n;
            if (++n == c->rows) {
                flush_prefill(m, c, n, nl);
                n = nl = 0;
            }
        }
    }
    flush_prefill(m, c, n, nl);
    float temperature = sc->temperature;
    // The draws of step s: sequences whose prompt ends at s, from the
    // prefill's logits (samp_row slots + b).
    int s = first, ns = 0;
    for (int b = 0; b < B; b++) {
        if (done[b] || ready[b] != s) continue;
        c->samp_seq[ns] = b, c->samp_row[ns] = S + b;
        c->samp_u[ns++] = temperature > 0.0f ? rng_uniform_double(rng) : 0.0;
    }
    sample_listed(c, sc, ns);
    for (;;) {
        // Record step s's draws; the sequences that go on feed their token
        // at position s + 1 (rows in sequence order).
        n = 0;
        for (int j = 0; j < ns; j++) {
            int b = c->samp_seq[j], t = c->samp_tok[j], k = out_lens[b];
            out_tokens[(size_t)b * max_new + k] = t;
            out_logprobs[(size_t)b * max_new + k] = c->samp_lp[j];
            out_lens[b] = k + 1;
            if (t == stop_token || k + 1 >= max_new || s + 1 >= T) {
                done[b] = 1;
                continue;
            }
            c->tok[n] = t, c->row_pos[n] = s + 1, c->row_seq[n] = b;
            ready[b] = s + 1;
            n++;
        }
        s++;
        // Step s's draws, taken from rng in sequence order: the rows fed now
        // (logits row = their row) and prompts ending at s.
        int live = 0, row = 0;
        ns = 0;
        for (int b = 0; b < B; b++) {
            if (done[b]) continue;
            live = 1;
            if (ready[b] != s) continue;
            c->samp_seq[ns] = b;
            c->samp_row[ns] = out_lens[b] > 0 ? row++ : S + b;
            c->samp_u[ns++] = temperature > 0.0f ? rng_uniform_double(rng) : 0.0;
        }
        if (!live) break;
        if (n > 0) {
            Pass P = {.m = m, .c = c, .tok = c->tok, .pos = c->row_pos, .slot = c->row_seq, .n = n,
                      .nl = n, .sc = sc, .ns = ns};
            run_pass(&P);
        } else {
            sample_listed(c, sc, ns);
        }
    }
}
