// The GPT-2 style decoder every stage shares: parameters in one contiguous
// float buffer with a struct of pointers into it (the llm.c layout), forward,
// backward and the scalar head that the reward model and value head read.
#ifndef MODEL_GPT_H
#define MODEL_GPT_H

#include <stddef.h>

#include "common/error.h"
#include "model/config.h"

// Parameter tensors in checkpoint order. The scalar head is present in every
// model (C+1 floats) so that one layout serves all kinds: a language model
// leaves it at zero, a reward model reads it as the reward, a policy as its
// value head.
#define NUM_PARAMETER_TENSORS 18
typedef struct {
    float *wte;      // (V, C)      token embedding; also the LM head (tied)
    float *wpe;      // (maxT, C)   position embedding
    float *ln1w;     // (L, C)
    float *ln1b;     // (L, C)
    float *qkvw;     // (L, 3C, C)
    float *qkvb;     // (L, 3C)
    float *attprojw; // (L, C, C)
    float *attprojb; // (L, C)
    float *ln2w;     // (L, C)
    float *ln2b;     // (L, C)
    float *fcw;      // (L, 4C, C)
    float *fcb;      // (L, 4C)
    float *fcprojw;  // (L, C, 4C)
    float *fcprojb;  // (L, C)
    float *lnfw;     // (C)
    float *lnfb;     // (C)
    float *headw;    // (C)         scalar head weight
    float *headb;    // (1)         scalar head bias
} ParameterTensors;

// Name, rank and shape of parameter tensor i (0 <= i < NUM_PARAMETER_TENSORS).
const char *gpt_param_name(int i);
int gpt_param_shape(const GPTConfig *cfg, int i, size_t shape[3]);
void gpt_param_sizes(const GPTConfig *cfg, size_t sizes[NUM_PARAMETER_TENSORS]);
size_t gpt_num_params(const GPTConfig *cfg);
// Points each tensor of p into mem, which holds gpt_num_params floats.
void gpt_point_params(ParameterTensors *p, float *mem, const GPTConfig *cfg);

// Activations of one forward pass over a (B,T) batch, kept for backward.
#define NUM_ACTIVATION_TENSORS 18
typedef struct {
    float *encoded;   // (B,T,C)
    float *ln1;       // (L,B,T,C)
    float *ln1_mean;  // (L,B,T)
    float *ln1_rstd;  // (L,B,T)
    float *qkv;       // (L,B,T,3C)
    float *atty;      // (L,B,T,C)
    float *att;       // (L,B,NH,T,T) softmax weights, zero above the diagonal
    float *residual2; // (L,B,T,C)  residual + attention projection
    float *ln2;       // (L,B,T,C)
    float *ln2_mean;  // (L,B,T)
    float *ln2_rstd;  // (L,B,T)
    float *fch;       // (L,B,T,4C)
    float *fch_gelu;  // (L,B,T,4C)
    float *residual3; // (L,B,T,C)  residual2 + MLP projection
    float *lnf;       // (B,T,C)
    float *lnf_mean;  // (B,T)
    float *lnf_rstd;  // (B,T)
    float *logits;    // (B,T,V)
} ActivationTensors;

// Gradient buffers reused by every layer in backward: one running gradient
// of the residual stream plus per-layer scratch, rather than a mirror of all
// activations, so nothing large has to be zeroed at each step.
typedef struct {
    float *dlogits;   // (B,T,V) upstream gradient on logits, written by a loss
    float *dhead;     // (B,T)   upstream gradient on the scalar head
    float *dresidual; // (B,T,C)
    float *dln;       // (B,T,C)
    float *datty;     // (B,T,C)
    float *dqkv;      // (B,T,3C)
    float *dfch;      // (B,T,4C)
    float *partials;  // (partial_threads,4C) per-thread column sums (layernorm/gelu_backward_sums)
    int partial_threads; // threads partials was sized for (n_threads at gpt_alloc_training)
} BackwardBuffers;

typedef struct {
    GPTConfig config;
    size_t num_params;
    ParameterTensors params;
    float *params_memory;
    // Training state, allocated by gpt_alloc_training.
    ParameterTensors grads;
    float *grads_memory;
    float *m_memory; // AdamW first moment
    float *v_memory; // AdamW second moment
    BackwardBuffers bw;
    float *bw_memory;
    // Activations for batches of up to max_B sequences of max_T tokens.
    int max_B, max_T;
    int B, T;        // shape of the last forward pass
    ActivationTensors acts;
    float *acts_memory;
    float *attn_scratch; // attention_scratch_floats(max_T, ...) per thread
    int n_threads;       // threads the attention scratch was sized for
    float *head;     // (B,T) scalar head output at every position
} GPT;

// Allocates parameters (zeroed) for cfg; returns -1 with a message on failure.
int gpt_create(GPT *m, const GPTConfig *cfg, Error *err);
// GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2L),
// LayerNorm weights 1, biases and the scalar head 0.
void gpt_init_random(GPT *m, unsigned long long seed);
// Activations for forward passes over batches up to (B,T): enough for
// inference and scoring.
int gpt_alloc_activations(GPT *m, int B, int T, Error *err);
// Activations plus gradients, AdamW moments and backward buffers.
int gpt_alloc_training(GPT *m, int B, int T, Error *err);
void gpt_free(GPT *m);

// Forward over inputs (B,T): fills activations, m->head (B,T) and, when
// want_logits, acts.logits (B,T,V). Needs B <= max_B and T <= max_T. On n > 1
// threads with B a multiple of n, each thread runs the whole pass for B/n of
// the sequences; otherwise each operation is split across the threads.
void gpt_forward(GPT *m, const int *inputs, int B, int T, int want_logits);
// Name of the first parameter tensor of buf (params_memory or grads_memory)
// holding a NaN or an infinity, or NULL if every value is finite.
const char *gpt_first_nonfinite(const GPT *m, const float *buf);

// Zeroes parameter gradients.
void gpt_zero_grad(GPT *m);
// Backward of the last forward. Upstream gradients are read from bw.dlogits
// (B,T,V) when use_dlogits and from bw.dhead (B,T) when use_dhead; parameter
// gradients are accumulated (+=) into m->grads.
void gpt_backward(GPT *m, const int *inputs, int use_dlogits, int use_dhead);

#endif
