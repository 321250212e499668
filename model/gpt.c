#include "model/gpt.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "common/rng.h"
#include "model/layers.h"

int gpt_create(GPT *m, const GPTConfig *cfg, Error *err) {
    memset(m, 0, sizeof *m);
    if (gpt_config_validate(cfg, err)) return -1;
    m->config = *cfg;
    m->num_params = gpt_num_params(cfg);
    m->params_memory = calloc(m->num_params, sizeof(float));
    if (!m->params_memory)
        return error_set(err, "out of memory for %zu parameters", m->num_params);
    gpt_point_params(&m->params, m->params_memory, cfg);
    return 0;
}

void gpt_init_random(GPT *m, unsigned long long seed) {
    const GPTConfig *cfg = &m->config;
    Rng rng;
    rng_seed(&rng, seed);
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt_param_sizes(cfg, sizes);
    float *p = m->params_memory;
    float residual_std = 0.02f / sqrtf(2.0f * (float)cfg->n_layer);
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        const char *name = gpt_param_name(i);
        int is_layernorm_weight = !strcmp(name, "ln1w") || !strcmp(name, "ln2w") || !strcmp(name, "lnfw");
        int is_matrix = !strcmp(name, "wte") || !strcmp(name, "wpe") || !strcmp(name, "qkvw") ||
                        !strcmp(name, "fcw") || !strcmp(name, "attprojw") || !strcmp(name, "fcprojw");
        // Residual projections are scaled down so the residual stream's
        // variance does not grow with depth (GPT-2).
        float std = (!strcmp(name, "attprojw") || !strcmp(name, "fcprojw")) ? residual_std : 0.02f;
        for (size_t j = 0; j < sizes[i]; j++)
            p[j] = is_layernorm_weight ? 1.0f : is_matrix ? std * rng_normal(&rng) : 0.0f;
        p += sizes[i];
    }
}

// Activation sizes for a (B,T) batch, in ActivationTensors order.
static void activation_sizes(const GPTConfig *cfg, int B, int T, size_t sizes[NUM_ACTIVATION_TENSORS]) {
    size_t BT = (size_t)B * T, C = cfg->n_embd, L = cfg->n_layer, NH = cfg->n_head;
    size_t v[NUM_ACTIVATION_TENSORS] = {
        BT * C,                       // encoded
        L * BT * C, L * BT, L * BT,   // ln1, ln1_mean, ln1_rstd
        L * BT * 3 * C,               // qkv
        L * BT * C,                   // atty
        L * B * NH * (size_t)T * T,   // att
        L * BT * C,                   // residual2
        L * BT * C, L * BT, L * BT,   // ln2, ln2_mean, ln2_rstd
        L * BT * 4 * C, L * BT * 4 * C, // fch, fch_gelu
        L * BT * C,                   // residual3
        BT * C, BT, BT,               // lnf, lnf_mean, lnf_rstd
        BT * (size_t)cfg->vocab_size, // logits
    };
    memcpy(sizes, v, sizeof v);
}

// Points n consecutive tensors of the given sizes into one new buffer.
static float *alloc_tensors(float **ptrs[], const size_t *sizes, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += sizes[i];
    float *mem = malloc(total * sizeof(float));
    if (!mem) return NULL;
    float *p = mem;
    for (int i = 0; i < n; i++) {
        *ptrs[i] = p;
        p += sizes[i];
    }
    return mem;
}

int gpt_alloc_activations(GPT *m, int B, int T, Error *err) {
    if (B < 1 || T < 1 || T > m->config.max_seq_len)
        return error_set(err, "batch shape (%d,%d) invalid for context %d", B, T, m->config.max_seq_len);
    free(m->acts_memory);
    free(m->head);
    free(m->attn_scratch);
    ActivationTensors *a = &m->acts;
    float **ptrs[NUM_ACTIVATION_TENSORS] = {
        &a->encoded, &a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->qkv, &a->atty, &a->att,
        &a->residual2, &a->ln2, &a->ln2_mean, &a->ln2_rstd, &a->fch, &a->fch_gelu,
        &a->residual3, &a->lnf, &a->lnf_mean, &a->lnf_rstd, &a->logits};
    size_t sizes[NUM_ACTIVATION_TENSORS];
    activation_sizes(&m->config, B, T, sizes);
    m->acts_memory = alloc_tensors(ptrs, sizes, NUM_ACTIVATION_TENSORS);
    m->head = malloc((size_t)B * T * sizeof(float));
    m->n_threads = omp_get_max_threads();
    m->attn_scratch = malloc((size_t)m->n_threads *
                             attention_scratch_floats(T, m->config.n_embd, m->config.n_head) * sizeof(float));
    if (!m->acts_memory || !m->head || !m->attn_scratch)
        return error_set(err, "out of memory for activations of a (%d,%d) batch", B, T);
    m->max_B = B;
    m->max_T = T;
    return 0;
}

int gpt_alloc_training(GPT *m, int B, int T, Error *err) {
    if (gpt_alloc_activations(m, B, T, err)) return -1;
    size_t n = m->num_params;
    free(m->grads_memory);
    free(m->m_memory);
    free(m->v_memory);
    free(m->bw_memory);
    m->grads_memory = calloc(n, sizeof(float));
    m->m_memory = calloc(n, sizeof(float));
    m->v_memory = calloc(n, sizeof(float));
    size_t BT = (size_t)B * T, C = m->config.n_embd;
    BackwardBuffers *g = &m->bw;
    float **ptrs[] = {&g->dlogits, &g->dhead, &g->dresidual, &g->dln, &g->datty, &g->dqkv, &g->dfch, &g->partials};
    size_t sizes[] = {BT * m->config.vocab_size, BT, BT * C, BT * C, BT * C, BT * 3 * C, BT * 4 * C,
                      (size_t)m->n_threads * 4 * C};
    m->bw_memory = alloc_tensors(ptrs, sizes, 8);
    g->partial_threads = m->n_threads;
    if (!m->grads_memory || !m->m_memory || !m->v_memory || !m->bw_memory)
        return error_set(err, "out of memory for training state");
    gpt_point_params(&m->grads, m->grads_memory, &m->config);
    return 0;
}

void gpt_free(GPT *m) {
    free(m->params_memory);
    free(m->grads_memory);
    free(m->m_memory);
    free(m->v_memory);
    free(m->bw_memory);
    free(m->acts_memory);
    free(m->head);
    free(m->attn_scratch);
    memset(m, 0, sizeof *m);
}

// Pointers into the per-layer slices of parameters and activations.
typedef struct {
    float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw,
        *fcprojb;
} LayerParams;

static LayerParams layer_params(const ParameterTensors *p, const GPTConfig *cfg, int l) {
    size_t C = cfg->n_embd;
    LayerParams lp = {
        p->ln1w + l * C, p->ln1b + l * C, p->qkvw + l * 3 * C * C, p->qkvb + l * 3 * C,
        p->attprojw + l * C * C, p->attprojb + l * C, p->ln2w + l * C, p->ln2b + l * C,
        p->fcw + l * 4 * C * C, p->fcb + l * 4 * C, p->fcprojw + l * C * 4 * C, p->fcprojb + l * C,
    };
    return lp;
}

typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *residual2, *ln2, *ln2_mean, *ln2_rstd, *fch,
        *fch_gelu, *residual3;
} LayerActs;

static LayerActs layer_acts(const ActivationTensors *a, const GPTConfig *cfg, int B, int T, int l) {
    size_t BT = (size_t)B * T, C = cfg->n_embd, NH = cfg->n_head;
    LayerActs la = {
        a->ln1 + l * BT * C, a->ln1_mean + l * BT, a->ln1_rstd + l * BT, a->qkv + l * BT * 3 * C,
        a->atty + l * BT * C, a->att + l * B * NH * (size_t)T * T, a->residual2 + l * BT * C,
        a->ln2 + l * BT * C, a->ln2_mean + l * BT, a->ln2_rstd + l * BT, a->fch + l * BT * 4 * C,
        a->fch_gelu + l * BT * 4 * C, a->residual3 + l * BT * C,
    };
    return la;
}

// The layer activations of sequences [b0, b0 + nb) of a (B,T) batch: every
// activation is laid out sequence by sequence within a layer, so a range of
// sequences is one contiguous slice of each tensor.
static LayerActs layer_acts_seqs(const ActivationTensors *a, const GPTConfig *cfg, int B, int T, int l, int b0) {
    LayerActs la = layer_acts(a, cfg, B, T, l);
    size_t r = (size_t)b0 * T, C = cfg->n_embd, NH = cfg->n_head;
    la.ln1 += r * C, la.ln1_mean += r, la.ln1_rstd += r, la.qkv += r * 3 * C, la.atty += r * C;
    la.att += (size_t)b0 * NH * T * T, la.residual2 += r * C, la.ln2 += r * C, la.ln2_mean += r;
    la.ln2_rstd += r, la.fch += r * 4 * C, la.fch_gelu += r * 4 * C, la.residual3 += r * C;
    return la;
}

// The forward pass of sequences [b0, b0 + nb) of a (B,T) batch; attention
// uses `threads` threads and the scratch from `scratch` on.
static void forward_seqs(GPT *m, const int *inputs, int B, int T, int b0, int nb, int want_logits,
                         float *scratch, int threads) {
    const GPTConfig *cfg = &m->config;
    int C = cfg->n_embd, L = cfg->n_layer, NH = cfg->n_head, V = cfg->vocab_size, N = nb * T;
    size_t r = (size_t)b0 * T;
    ParameterTensors *p = &m->params;
    ActivationTensors *a = &m->acts;
    float *residual = a->encoded + r * C;
    encoder_forward(residual, inputs + r, p->wte, p->wpe, nb, T, C); // (nb,T,C)
    for (int l = 0; l < L; l++) {
        LayerParams lp = layer_params(p, cfg, l);
        LayerActs la = layer_acts_seqs(a, cfg, B, T, l, b0);
        layernorm_forward(la.ln1, la.ln1_mean, la.ln1_rstd, residual, lp.ln1w, lp.ln1b, N, C);
        matmul_forward(la.qkv, la.ln1, lp.qkvw, lp.qkvb, N, C, 3 * C);            // (nb,T,3C)
        attention_forward(la.atty, la.att, la.qkv, scratch, threads, nb, T, C, NH); // (nb,T,C)
        matmul_residual_forward(la.residual2, residual, la.atty, lp.attprojw, lp.attprojb, N, C, C);
        layernorm_forward(la.ln2, la.ln2_mean, la.ln2_rstd, la.residual2, lp.ln2w, lp.ln2b, N, C);
        matmul_forward(la.fch, la.ln2, lp.fcw, lp.fcb, N, C, 4 * C);              // (nb,T,4C)
        gelu_forward(la.fch_gelu, la.fch, (size_t)N * 4 * C);
        matmul_residual_forward(la.residual3, la.residual2, la.fch_gelu, lp.fcprojw, lp.fcprojb, N, 4 * C, C);
        residual = la.residual3;
    }
    float *lnf = a->lnf + r * C;
    layernorm_forward(lnf, a->lnf_mean + r, a->lnf_rstd + r, residual, p->lnfw, p->lnfb, N, C);
    if (want_logits) matmul_forward(a->logits + r * V, lnf, p->wte, NULL, N, C, V); // (nb,T,V)
    head_forward(m->head + r, lnf, p->headw, p->headb, N, C);                        // (nb,T)
}

void gpt_forward(GPT *m, const int *inputs, int B, int T, int want_logits) {
    m->B = B;
    m->T = T;
    // Sequences do not interact in the forward pass, so when the batch splits
    // evenly over the threads each thread runs the whole pass for its own
    // sequences (every kernel, OpenBLAS included, single-threaded inside the
    // region): one fork and one join instead of one or two per operation, and
    // no thread waits for the other between operations. Every row goes
    // through the same arithmetic either way, so the results are the same.
    int nth = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nth > m->n_threads) nth = m->n_threads;
    if (nth > 1 && B % nth == 0) {
        size_t per_thread = attention_scratch_floats(T, m->config.n_embd, m->config.n_head);
#pragma omp parallel num_threads(nth)
        {
            int g = omp_get_thread_num(), ng = omp_get_num_threads(); // ng < nth if the runtime says so
            int b0 = B * g / ng, b1 = B * (g + 1) / ng;
            forward_seqs(m, inputs, B, T, b0, b1 - b0, want_logits, m->attn_scratch + (size_t)g * per_thread, 1);
        }
    } else {
        forward_seqs(m, inputs, B, T, 0, B, want_logits, m->attn_scratch, m->n_threads);
    }
}

const char *gpt_first_nonfinite(const GPT *m, const float *buf) {
    size_t sizes[NUM_PARAMETER_TENSORS], off = 0;
    gpt_param_sizes(&m->config, sizes);
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        int bad = 0;
#pragma omp parallel for reduction(| : bad)
        for (size_t i = off; i < off + sizes[k]; i++) bad |= !isfinite(buf[i]);
        if (bad) return gpt_param_name(k);
        off += sizes[k];
    }
    return NULL;
}

// memset of n floats, split over the threads (one thread alone is far from
// the memory bandwidth of two, and this runs on every step).
static void zero_floats(float *x, size_t n) {
    enum { CHUNKS = 64 };
#pragma omp parallel for schedule(static)
    for (int c = 0; c < CHUNKS; c++) {
        size_t lo = n * c / CHUNKS, hi = n * (c + 1) / CHUNKS;
        memset(x + lo, 0, (hi - lo) * sizeof(float));
    }
}

void gpt_zero_grad(GPT *m) {
    zero_floats(m->grads_memory, m->num_params);
}

void gpt_backward(GPT *m, const int *inputs, int use_dlogits, int use_dhead) {
    const GPTConfig *cfg = &m->config;
    int B = m->B, T = m->T, C = cfg->n_embd, L = cfg->n_layer, NH = cfg->n_head;
    int V = cfg->vocab_size, BT = B * T;
    ParameterTensors *p = &m->params, *g = &m->grads;
    ActivationTensors *a = &m->acts;
    BackwardBuffers *bw = &m->bw;
    float *dres = bw->dresidual; // gradient of the residual stream, walked down the layers

    // Final LayerNorm, fed by the LM head (tied to wte) and the scalar head.
    if (use_dlogits) matmul_backward(bw->dln, g->wte, NULL, bw->dlogits, a->lnf, p->wte, BT, C, V);
    else zero_floats(bw->dln, (size_t)BT * C);
    if (use_dhead) head_backward(bw->dln, g->headw, g->headb, bw->dhead, a->lnf, p->headw, BT, C);
    zero_floats(dres, (size_t)BT * C);
    // The bias gradient of a projection is the column sums of its output
    // gradient; those are summed where that gradient is written: by the
    // LayerNorm backward that completes dres (attproj, and fcproj of the
    // layer below) and by the GELU backward (fc). Only qkv's is summed in
    // matmul_backward.
    int nth = bw->partial_threads; // at most the threads partials has room for
    const float *last = L > 0 ? layer_acts(a, cfg, B, T, L - 1).residual3 : a->encoded;
    float *top_fcprojb = L > 0 ? layer_params(g, cfg, L - 1).fcprojb : NULL;
    layernorm_backward_sums(dres, g->lnfw, g->lnfb, top_fcprojb, bw->dln, last, p->lnfw, a->lnf_mean,
                            a->lnf_rstd, BT, C, bw->partials, nth);

    for (int l = L - 1; l >= 0; l--) {
        LayerParams lp = layer_params(p, cfg, l), lg = layer_params(g, cfg, l);
        LayerActs la = layer_acts(a, cfg, B, T, l);
        const float *residual = l == 0 ? a->encoded : layer_acts(a, cfg, B, T, l - 1).residual3;
        float *below_fcprojb = l > 0 ? layer_params(g, cfg, l - 1).fcprojb : NULL;
        // dres: gradient of residual3 = residual2 + fcproj
        matmul_backward(bw->dfch, lg.fcprojw, NULL, dres, la.fch_gelu, lp.fcprojw, BT, 4 * C, C);
        gelu_backward_sums(bw->dfch, lg.fcb, la.fch, la.fch_gelu, BT, 4 * C, bw->partials, nth);
        matmul_backward(bw->dln, lg.fcw, NULL, bw->dfch, la.ln2, lp.fcw, BT, C, 4 * C);
        layernorm_backward_sums(dres, lg.ln2w, lg.ln2b, lg.attprojb, bw->dln, la.residual2, lp.ln2w,
                                la.ln2_mean, la.ln2_rstd, BT, C, bw->partials, nth);
        // dres: gradient of residual2 = residual + attproj
        matmul_backward(bw->datty, lg.attprojw, NULL, dres, la.atty, lp.attprojw, BT, C, C);
        attention_backward(bw->dqkv, m->attn_scratch, m->n_threads, bw->datty, la.qkv, la.att, B, T, C, NH);
        matmul_backward(bw->dln, lg.qkvw, lg.qkvb, bw->dqkv, la.ln1, lp.qkvw, BT, C, 3 * C);
        layernorm_backward_sums(dres, lg.ln1w, lg.ln1b, below_fcprojb, bw->dln, residual, lp.ln1w,
                                la.ln1_mean, la.ln1_rstd, BT, C, bw->partials, nth);
    }
    encoder_backward(g->wte, g->wpe, dres, inputs, B, T, C);
}
