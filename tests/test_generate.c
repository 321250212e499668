// Generation with the KV cache against the simple code it replaced:
// - forward calls over many rows at once (several positions of a sequence
//   in one call, as the prefill does; decode steps) give the logits and
//   scalar head of the full forward pass gpt_forward, on shapes that reach
//   every kernel path, with 1-3 threads;
// - the sampler draws the same token as the old libm sampler (kept here) for
//   the same uniform, and the same log-probability within float rounding;
// - top-k and top-p draws follow the truncated, renormalised distribution
//   derived independently of the sampler's code;
// - generate() with prompts of mixed lengths (prefill of all prompts, then
//   decode) draws the same tokens as a reference that runs gpt_forward over
//   each sequence's whole prefix at every position and samples with the old
//   sampler, taking the uniforms in the same order; greedy batches equal
//   one-sequence-at-a-time generation.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "model/generate.h"
#include "model/gpt.h"

static void make_model(GPT *m, int C, int L, int NH, int T, int V, unsigned long long seed) {
    GPTConfig cfg = {.vocab_size = V, .max_seq_len = T, .n_layer = L, .n_head = NH, .n_embd = C};
    Error err;
    assert_int_equal(gpt_create(m, &cfg, &err), 0);
    gpt_init_random(m, seed);
    // Move LayerNorm weights, biases and the scalar head off 1 and 0 so that
    // every parameter matters.
    Rng r;
    rng_seed(&r, seed + 100);
    size_t sizes[NUM_PARAMETER_TENSORS], off = 0;
    gpt_param_sizes(&cfg, sizes);
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        const char *n = gpt_param_name(k);
        int vector = strcmp(n, "wte") && strcmp(n, "wpe") && strcmp(n, "qkvw") && strcmp(n, "attprojw") &&
                     strcmp(n, "fcw") && strcmp(n, "fcprojw");
        if (vector)
            for (size_t i = off; i < off + sizes[k]; i++) m->params_memory[i] += 0.1f * rng_normal(&r);
        off += sizes[k];
    }
}

static void random_tokens(int *x, int n, int V, unsigned long long seed) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) x[i] = (int)rng_below(&r, V);
}

typedef struct {
    int C, L, NH, T, V;
} Shape;

// Shapes reaching every path: head sizes 16, 8, 12 (no vector fast path), 64
// and 32; head counts that do not split evenly over 2 or 3 threads; a
// context that is not a multiple of 8; vocabularies of every remainder.
static const Shape SHAPES[] = {
    {32, 2, 2, 64, 50}, {40, 2, 5, 45, 37}, {36, 1, 3, 40, 29}, {64, 1, 1, 100, 70}, {64, 3, 2, 33, 16},
};

// ---- forward calls against the full forward pass ----------------------------------
// Feeds NSEQ sequences of random tokens through the cache in calls of many
// rows (several positions of one sequence per call, sequences interleaved,
// rows of one sequence not adjacent) and checks every row's logits and head.
enum { NSEQ = 5 };

static double check_calls(GPT *m, int slots, int threads, const int *tokens, int T, int max_rows,
                          unsigned long long seed) {
    int V = m->config.vocab_size;
    omp_set_num_threads(threads);
    KVCache c;
    Error err;
    assert_int_equal(kvcache_create(&c, &m->config, slots, &err), 0);
    c.min_macs = 0; // every call on all threads, however small
    int fed[NSEQ] = {0}, tok[512], pos[512], slot[512], seq[512];
    Rng r;
    rng_seed(&r, seed);
    double maxdiff = 0;
    for (int call = 0;; call++) {
        int n = 0, left = 0;
        for (int s = 0; s < NSEQ; s++) left += fed[s] < T;
        if (!left) break;
        // Each call advances each unfinished sequence by 0..12 positions,
        // round-robin by position so that a sequence's rows interleave.
        int adv[NSEQ];
        for (int s = 0; s < NSEQ; s++) {
            adv[s] = (int)rng_below(&r, 13);
            if (call == 0 && s == 0) adv[s] = T; // one whole sequence in one call
            if (fed[s] + adv[s] > T) adv[s] = T - fed[s];
        }
        // Odd calls interleave the sequences' rows (position-major), even
        // calls keep each sequence's rows together.
        for (int a = 0; a < (call % 2 ? T : NSEQ) && n < max_rows; a++)
            for (int b = 0; b < (call % 2 ? NSEQ : T) && n < max_rows; b++) {
                int s = call % 2 ? b : a, k = call % 2 ? a : b;
                if (k >= adv[s]) continue;
                tok[n] = tokens[s * T + fed[s] + k], pos[n] = fed[s] + k, slot[n] = (s * 7) % slots, seq[n] = s;
                n++;
            }
        if (n == 0) continue;
        for (int i = 0; i < n; i++) fed[seq[i]] = pos[i] + 1 > fed[seq[i]] ? pos[i] + 1 : fed[seq[i]];
        gpt_decode_step(m, &c, tok, pos, slot, n);
        for (int i = 0; i < n; i++) {
            const float *full = m->acts.logits + ((size_t)seq[i] * T + pos[i]) * V;
            for (int v = 0; v < V; v++) maxdiff = fmax(maxdiff, fabs(full[v] - c.logits[(size_t)i * V + v]));
            maxdiff = fmax(maxdiff, fabs(c.head[i] - m->head[seq[i] * T + pos[i]]));
        }
    }
    for (int s = 0; s < NSEQ; s++) assert_int_equal(fed[s], T);
    kvcache_free(&c);
    return maxdiff;
}

static void test_forward_calls_match_full_forward(void **state) {
    (void)state;
    int saved = omp_get_max_threads();
    for (size_t k = 0; k < sizeof SHAPES / sizeof SHAPES[0]; k++) {
        const Shape *sh = &SHAPES[k];
        GPT m;
        make_model(&m, sh->C, sh->L, sh->NH, sh->T, sh->V, 20 + k);
        Error err;
        assert_int_equal(gpt_alloc_activations(&m, NSEQ, sh->T, &err), 0);
        int *tokens = malloc(sizeof(int) * NSEQ * sh->T);
        random_tokens(tokens, NSEQ * sh->T, sh->V, 30 + k);
        gpt_forward(&m, tokens, NSEQ, sh->T, 1);
        double worst = 0;
        for (int threads = 1; threads <= 3; threads++) {
            // Up to 24 rows a call (decode-sized), and up to 96 (slots 96
            // lets one call take them all).
            double d1 = check_calls(&m, 24, threads, tokens, sh->T, 24, 40 + k);
            double d2 = check_calls(&m, 96, threads, tokens, sh->T, 96, 50 + k);
            worst = fmax(worst, fmax(d1, d2));
        }
        printf("    C=%d L=%d NH=%d T=%d V=%d: max |cache - full| over logits and head = %.2e\n", sh->C, sh->L,
               sh->NH, sh->T, sh->V, worst);
        assert_true(worst < 1e-4);
        free(tokens);
        gpt_free(&m);
    }
    omp_set_num_threads(saved);
}

// ---- the sampler ------------------------------------------------------------------
// The sampler before generate() was optimised, as it was: libm expf, a double
// sum, probabilities normalised before the search.
static int ref_before(int a, int b, const float *probs) {
    return probs[a] != probs[b] ? probs[a] > probs[b] : a < b;
}

static void ref_sort(int *order, int *tmp, int n, const float *probs) {
    if (n < 2) return;
    int h = n / 2;
    ref_sort(order, tmp, h, probs);
    ref_sort(order + h, tmp, n - h, probs);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = ref_before(order[j], order[i], probs) ? order[j++] : order[i++];
    while (i < h) tmp[k++] = order[i++];
    while (j < n) tmp[k++] = order[j++];
    memcpy(order, tmp, n * sizeof(int));
}

static int ref_sample(const float *logits, int V, const SamplerConfig *sc, double u, float *probs, int *order,
                      float *logprob) {
    if (sc->temperature <= 0.0f) {
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
        ref_sort(order, order + V, V, probs);
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

static const SamplerConfig SAMPLERS[] = {
    {1.0f, 0, 1.0f}, {0.7f, 0, 1.0f}, {1.3f, 5, 1.0f}, {1.0f, 0, 0.9f}, {0.8f, 40, 0.95f}, {0.0f, 0, 1.0f},
};
enum { N_SAMPLERS = sizeof SAMPLERS / sizeof SAMPLERS[0] };

static void test_sampler_matches_reference(void **state) {
    (void)state;
    const int Vs[] = {1, 5, 63, 64, 100, 2048, 4097};
    Rng r;
    rng_seed(&r, 9);
    int draws = 0;
    for (size_t a = 0; a < sizeof Vs / sizeof Vs[0]; a++) {
        int V = Vs[a];
        float *logits = malloc(sizeof(float) * V), *p1 = malloc(sizeof(float) * V), *p2 = malloc(sizeof(float) * V);
        int *o1 = malloc(sizeof(int) * 2 * V), *o2 = malloc(sizeof(int) * 2 * V);
        for (int scale = 0; scale < 3; scale++) { // logit spread 1, 5 and 40 (exp underflows)
            float sd = scale == 0 ? 1.0f : scale == 1 ? 5.0f : 40.0f;
            for (int rep = 0; rep < 20; rep++) {
                for (int v = 0; v < V; v++) logits[v] = sd * rng_normal(&r);
                for (int k = 0; k < N_SAMPLERS; k++)
                    for (int d = 0; d < 4; d++) {
                        // Uniforms across [0,1), and the very ends.
                        double u = d == 0 ? 0.0 : d == 1 ? 1.0 - 0x1p-53 : rng_uniform_double(&r);
                        float lp1, lp2;
                        int t1 = sample_token_u(logits, V, &SAMPLERS[k], u, p1, o1, &lp1);
                        int t2 = ref_sample(logits, V, &SAMPLERS[k], u, p2, o2, &lp2);
                        if (t1 != t2 || fabsf(lp1 - lp2) > 1e-4f * fmaxf(1.0f, fabsf(lp2)))
                            fail_msg("V=%d spread %g sampler %d u=%.17g: token %d (logp %g), reference %d (%g)", V, sd,
                                     k, u, t1, lp1, t2, lp2);
                        draws++;
                    }
            }
        }
        free(logits), free(p1), free(p2), free(o1), free(o2);
    }
    // sample_token takes exactly one uniform from the Rng (none when greedy).
    float logits[7] = {0.1f, 2.0f, -1.0f, 0.5f, 0.0f, 1.5f, -3.0f}, p[7], lp;
    int o[14];
    for (int k = 0; k < N_SAMPLERS; k++) {
        Rng a, b;
        rng_seed(&a, 77), rng_seed(&b, 77);
        int t = sample_token(logits, 7, &SAMPLERS[k], &a, p, o, &lp);
        double u = SAMPLERS[k].temperature > 0.0f ? rng_uniform_double(&b) : 0.0;
        assert_int_equal(t, sample_token_u(logits, 7, &SAMPLERS[k], u, p, o, &lp));
        assert_true(a.state == b.state);
    }
    printf("    %d draws equal to the reference sampler's\n", draws);
}

// ---- what top-k and top-p sampling draw, from first principles -------------------
// ref_sample above is the old sampler kept as it was, and for top-k/top-p
// sample_token_u still runs the same steps written the same way: that
// comparison catches a change to the sampler, not a mistake the two share.
// This test derives what a truncated draw must be independently: probabilities in double, the vocabulary ranked with qsort,
// the kept set (k highest, then the shortest prefix with mass >= p), and
// each kept token's share of the kept mass. Sweeping u over a grid of G
// points, the draws must land in the kept set only, each token about
// G x share times (an interval of [0,1) holds its length x G points, +-1, and
// float rounding moves the ends by far less than a grid step), and each
// log-probability must be log(share).
typedef struct {
    double p;
    int id;
} Ranked;

static int by_prob_desc(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    return x->p != y->p ? (x->p < y->p) - (x->p > y->p) : (x->id > y->id) - (x->id < y->id);
}

// Fills share[0..V) (0 outside the kept set); returns the kept set's size, or
// 0 if the top-p cut falls too close to call between float and double.
static int truncated_shares(const float *logits, int V, const SamplerConfig *sc, double *share, Ranked *rank) {
    double mx = -INFINITY, sum = 0.0;
    for (int v = 0; v < V; v++) mx = fmax(mx, (double)logits[v] / sc->temperature);
    for (int v = 0; v < V; v++) sum += rank[v].p = exp((double)logits[v] / sc->temperature - mx), rank[v].id = v;
    for (int v = 0; v < V; v++) rank[v].p /= sum;
    qsort(rank, V, sizeof *rank, by_prob_desc);
    int n = sc->top_k > 0 && sc->top_k < V ? sc->top_k : V;
    if (sc->top_p < 1.0f) {
        double cum = 0.0;
        for (int i = 0; i < n; i++) {
            if (fabs(cum + rank[i].p - sc->top_p) < 1e-5) return 0;
            cum += rank[i].p;
            if (cum >= sc->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    double mass = 0.0;
    for (int i = 0; i < n; i++) mass += rank[i].p;
    for (int v = 0; v < V; v++) share[v] = 0.0;
    for (int i = 0; i < n; i++) share[rank[i].id] = rank[i].p / mass;
    return n;
}

static void test_truncated_sampling_distribution(void **state) {
    (void)state;
    const SamplerConfig samplers[] = {{1.0f, 1, 1.0f}, {1.0f, 3, 1.0f},  {0.7f, 20, 1.0f}, {1.0f, 0, 0.5f},
                                      {1.3f, 0, 0.9f}, {0.8f, 40, 0.95f}, {1.0f, 7, 0.3f}};
    const int Vs[] = {5, 100, 2048};
    Rng r;
    rng_seed(&r, 21);
    int cases = 0;
    for (size_t a = 0; a < sizeof Vs / sizeof Vs[0]; a++) {
        int V = Vs[a];
        float *logits = malloc(sizeof(float) * V), *probs = malloc(sizeof(float) * V), lp;
        int *order = malloc(sizeof(int) * 2 * V), *count = malloc(sizeof(int) * V);
        double *share = malloc(sizeof(double) * V);
        Ranked *rank = malloc(sizeof(Ranked) * V);
        // Every draw sorts the vocabulary: a coarser grid for the large one.
        int G = V > 1000 ? 2000 : 20000, reps = V > 1000 ? 1 : 3;
        for (size_t k = 0; k < sizeof samplers / sizeof samplers[0]; k++)
            for (int rep = 0; rep < reps; rep++) {
                for (int v = 0; v < V; v++) logits[v] = 2.0f * rng_normal(&r);
                int n = truncated_shares(logits, V, &samplers[k], share, rank);
                if (n == 0) continue; // the top-p cut is a coin toss between roundings
                memset(count, 0, sizeof(int) * V);
                for (int g = 0; g < G; g++) {
                    int t = sample_token_u(logits, V, &samplers[k], (g + 0.5) / G, probs, order, &lp);
                    if (t < 0 || t >= V || share[t] == 0.0)
                        fail_msg("V=%d sampler %zu: drew token %d, outside the %d kept", V, k, t, n);
                    if (fabs(lp - log(share[t])) > 1e-4 * fmax(1.0, fabs(log(share[t]))))
                        fail_msg("V=%d sampler %zu token %d: logprob %g, expected %g", V, k, t, lp, log(share[t]));
                    count[t]++;
                }
                for (int v = 0; v < V; v++)
                    if (fabs(count[v] - G * share[v]) > 2.0)
                        fail_msg("V=%d sampler %zu token %d: %d of %d draws, expected %.1f", V, k, v, count[v], G,
                                 G * share[v]);
                cases++;
            }
        free(logits), free(probs), free(order), free(count), free(share), free(rank);
    }
    assert_true(cases >= 40); // few skipped cuts (of 49)
    printf("    %d truncated distributions drawn as derived\n", cases);
}

// ---- generate against a position-by-position reference ------------------------------
// What generate() computes, written the simplest way: at each position s,
// every unfinished sequence whose tokens run to s runs gpt_forward over its
// whole prefix and draws from its last logits, sequences in order. As
// before, the last position's logits give one more token (never fed back).
static void ref_generate(GPT *m, const int *const *prompts, const int *lens, int B, int max_new, int stop,
                         const SamplerConfig *sc, Rng *rng, int *out, float *lps, int *out_lens) {
    int T = m->config.max_seq_len, V = m->config.vocab_size;
    int *seq = malloc(sizeof(int) * B * (T + 1)), *len = malloc(sizeof(int) * B), *done = malloc(sizeof(int) * B);
    float *probs = malloc(sizeof(float) * V);
    int *order = malloc(sizeof(int) * 2 * V);
    for (int b = 0; b < B; b++) {
        out_lens[b] = 0, len[b] = lens[b];
        done[b] = lens[b] < 1 || lens[b] >= T;
        if (!done[b]) memcpy(seq + b * (T + 1), prompts[b], sizeof(int) * lens[b]);
    }
    for (int s = 0;; s++) {
        int live = 0;
        for (int b = 0; b < B; b++) {
            if (done[b]) continue;
            live = 1;
            if (len[b] - 1 != s) continue;
            gpt_forward(m, seq + b * (T + 1), 1, len[b], 1);
            double u = sc->temperature > 0.0f ? rng_uniform_double(rng) : 0.0;
            float lp;
            int t = ref_sample(m->acts.logits + (size_t)(len[b] - 1) * V, V, sc, u, probs, order, &lp);
            int k = out_lens[b]++;
            out[b * max_new + k] = t, lps[b * max_new + k] = lp;
            seq[b * (T + 1) + len[b]++] = t;
            if (t == stop || k + 1 >= max_new || len[b] > T) done[b] = 1;
        }
        if (!live) break;
    }
    free(seq), free(len), free(done), free(probs), free(order);
}

enum { GB = 7, MAX_NEW = 24 };

static void test_generate_matches_reference(void **state) {
    (void)state;
    int saved = omp_get_max_threads();
    // Mixed prompt lengths: one empty and one filling the context (no
    // tokens), one of a single token; long ones so the prefill takes several
    // calls and a prompt straddles two.
    int lens_short[GB] = {3, 1, 7, 12, 0, 5, 64};
    int lens_long[GB] = {60, 45, 1, 59, 38, 57, 50};
    int total = 0;
    for (size_t k = 0; k < sizeof SHAPES / sizeof SHAPES[0]; k++) {
        const Shape *sh = &SHAPES[k];
        GPT m;
        make_model(&m, sh->C, sh->L, sh->NH, sh->T, sh->V, 60 + k);
        Error err;
        assert_int_equal(gpt_alloc_activations(&m, 1, sh->T, &err), 0);
        int *pm = malloc(sizeof(int) * GB * sh->T);
        random_tokens(pm, GB * sh->T, sh->V, 70 + k);
        const int *prompts[GB];
        for (int b = 0; b < GB; b++) prompts[b] = pm + b * sh->T;
        for (int which = 0; which < 2; which++) {
            int lens[GB];
            for (int b = 0; b < GB; b++) {
                lens[b] = which ? lens_long[b] : lens_short[b];
                if (lens[b] > sh->T) lens[b] = sh->T;
            }
            for (int threads = 1; threads <= 2; threads++) {
                omp_set_num_threads(threads);
                KVCache c;
                assert_int_equal(kvcache_create(&c, &m.config, GB + 1, &err), 0);
                c.min_macs = 0;
                for (int s = 0; s < N_SAMPLERS; s++) {
                    int out[GB * MAX_NEW], ref[GB * MAX_NEW], n[GB], nref[GB];
                    float lp[GB * MAX_NEW], lpref[GB * MAX_NEW];
                    Rng r1, r2;
                    rng_seed(&r1, 80 + s), rng_seed(&r2, 80 + s);
                    int stop = s % 2 ? 3 % sh->V : -1;
                    generate(&m, &c, prompts, lens, GB, MAX_NEW, stop, &SAMPLERS[s], &r1, out, lp, n);
                    ref_generate(&m, prompts, lens, GB, MAX_NEW, stop, &SAMPLERS[s], &r2, ref, lpref, nref);
                    assert_true(r1.state == r2.state); // the same number of draws
                    for (int b = 0; b < GB; b++) {
                        assert_int_equal(n[b], nref[b]);
                        for (int i = 0; i < n[b]; i++) {
                            if (out[b * MAX_NEW + i] != ref[b * MAX_NEW + i])
                                fail_msg("shape %zu threads %d sampler %d sequence %d token %d: %d, reference %d", k,
                                         threads, s, b, i, out[b * MAX_NEW + i], ref[b * MAX_NEW + i]);
                            float a = lp[b * MAX_NEW + i], e = lpref[b * MAX_NEW + i];
                            assert_true(fabsf(a - e) <= 2e-4f * fmaxf(1.0f, fabsf(e)));
                            total++;
                        }
                    }
                }
                kvcache_free(&c);
            }
        }
        free(pm);
        gpt_free(&m);
    }
    omp_set_num_threads(saved);
    printf("    %d tokens equal to the reference's\n", total);
}

// Greedy: a batch of mixed prompts gives each sequence what it gets alone,
// and a second call gives the same again (nothing left over in the cache).
static void test_greedy_batch_matches_single(void **state) {
    (void)state;
    const Shape *sh = &SHAPES[0];
    GPT m;
    make_model(&m, sh->C, sh->L, sh->NH, sh->T, sh->V, 90);
    enum { B = 18 };
    int pm[B * 20], lens[B];
    random_tokens(pm, B * 20, sh->V, 91);
    const int *prompts[B];
    for (int b = 0; b < B; b++) prompts[b] = pm + b * 20, lens[b] = 1 + (b * 7) % 20;
    SamplerConfig greedy = {0.0f, 0, 1.0f};
    int saved = omp_get_max_threads();
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        KVCache c;
        Error err;
        assert_int_equal(kvcache_create(&c, &m.config, B, &err), 0);
        c.min_macs = 0;
        Rng r;
        rng_seed(&r, 1);
        int out[B * 30], n[B], again[B * 30], n2[B];
        float lp[B * 30];
        generate(&m, &c, prompts, lens, B, 30, 5, &greedy, &r, out, lp, n);
        generate(&m, &c, prompts, lens, B, 30, 5, &greedy, &r, again, lp, n2);
        assert_memory_equal(n, n2, sizeof n);
        for (int b = 0; b < B; b++) {
            assert_memory_equal(out + b * 30, again + b * 30, sizeof(int) * n[b]);
            int one[30], n1;
            generate(&m, &c, prompts + b, lens + b, 1, 30, 5, &greedy, &r, one, lp, &n1);
            assert_int_equal(n1, n[b]);
            assert_memory_equal(one, out + b * 30, sizeof(int) * n1);
        }
        kvcache_free(&c);
    }
    omp_set_num_threads(saved);
    gpt_free(&m);
}

// Reproducible for a given thread count: the same seed, the same tokens and
// log-probabilities to the bit, with calls on all threads or on as many as
// their size asks for.
static void test_generate_reproducible(void **state) {
    (void)state;
    const Shape *sh = &SHAPES[3];
    GPT m;
    make_model(&m, sh->C, sh->L, sh->NH, sh->T, sh->V, 95);
    enum { B = 16, N = 40 };
    int pm[B * 30], lens[B];
    random_tokens(pm, B * 30, sh->V, 96);
    const int *prompts[B];
    for (int b = 0; b < B; b++) prompts[b] = pm + b * 30, lens[b] = 30;
    SamplerConfig sc = {1.0f, 0, 1.0f};
    int saved = omp_get_max_threads();
    for (int threads = 1; threads <= 3; threads++)
        for (int all = 0; all < 2; all++) {
            omp_set_num_threads(threads);
            KVCache c;
            Error err;
            assert_int_equal(kvcache_create(&c, &m.config, B, &err), 0);
            if (all) c.min_macs = 0;
            int out[2][B * N], n[2][B];
            float lp[2][B * N];
            for (int run = 0; run < 2; run++) {
                Rng r;
                rng_seed(&r, 97);
                generate(&m, &c, prompts, lens, B, N, -1, &sc, &r, out[run], lp[run], n[run]);
            }
            assert_memory_equal(out[0], out[1], sizeof out[0]);
            assert_memory_equal(lp[0], lp[1], sizeof lp[0]);
            kvcache_free(&c);
        }
    omp_set_num_threads(saved);
    gpt_free(&m);
}

// The cache multiplies by its own copy of the model's matrices: a call of
// generate() after the parameters changed in place (as PPO changes the
// policy between rollouts), or with another model on the same cache (the
// policy and the reference), must see the model as it is now.
static void test_generate_sees_parameter_changes(void **state) {
    (void)state;
    const Shape *sh = &SHAPES[1];
    GPT m[2];
    make_model(&m[0], sh->C, sh->L, sh->NH, sh->T, sh->V, 100);
    make_model(&m[1], sh->C, sh->L, sh->NH, sh->T, sh->V, 101);
    Error err;
    for (int i = 0; i < 2; i++) assert_int_equal(gpt_alloc_activations(&m[i], 1, sh->T, &err), 0);
    enum { B = 4, N = 12 };
    int pm[B * 9], lens[B] = {9, 4, 7, 1};
    random_tokens(pm, B * 9, sh->V, 102);
    const int *prompts[B];
    for (int b = 0; b < B; b++) prompts[b] = pm + b * 9;
    SamplerConfig sc = {1.0f, 0, 1.0f};
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    KVCache c;
    assert_int_equal(kvcache_create(&c, &m[0].config, B, &err), 0);
    c.min_macs = 0;
    Rng noise;
    rng_seed(&noise, 103);
    // model 0, model 1, model 0 changed, model 0 changed again
    for (int call = 0; call < 4; call++) {
        GPT *g = &m[call == 1];
        if (call >= 2)
            for (size_t i = 0; i < g->num_params; i++) g->params_memory[i] += 0.05f * rng_normal(&noise);
        int out[B * N], ref[B * N], n[B], nref[B];
        float lp[B * N], lpref[B * N];
        Rng r1, r2;
        rng_seed(&r1, 104 + call), rng_seed(&r2, 104 + call);
        generate(g, &c, prompts, lens, B, N, -1, &sc, &r1, out, lp, n);
        ref_generate(g, prompts, lens, B, N, -1, &sc, &r2, ref, lpref, nref);
        assert_memory_equal(n, nref, sizeof n);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < n[b]; i++) {
                assert_int_equal(out[b * N + i], ref[b * N + i]);
                float a = lp[b * N + i], e = lpref[b * N + i];
                assert_true(fabsf(a - e) <= 2e-4f * fmaxf(1.0f, fabsf(e)));
            }
    }
    kvcache_free(&c);
    omp_set_num_threads(saved);
    gpt_free(&m[0]), gpt_free(&m[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_calls_match_full_forward),
        cmocka_unit_test(test_sampler_matches_reference),
        cmocka_unit_test(test_truncated_sampling_distribution),
        cmocka_unit_test(test_generate_matches_reference),
        cmocka_unit_test(test_greedy_batch_matches_single),
        cmocka_unit_test(test_generate_reproducible),
        cmocka_unit_test(test_generate_sees_parameter_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
