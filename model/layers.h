// One forward and one backward function per layer kind. Shapes are written
// as (B,T,C): batch, time, channels; N stands for B*T rows.
//
// Backward conventions: parameter gradients are always accumulated (+=).
// Input gradients are overwritten (=) by matmul, gelu and attention, and
// accumulated (+=) by layernorm and the scalar head, which is what the
// residual stream needs (see gpt_backward).
#ifndef MODEL_LAYERS_H
#define MODEL_LAYERS_H

#include <stddef.h>

// out (B,T,C) = wte[inp] + wpe[t]
void encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T,
                     int C);
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B, int T,
                      int C);

// out (N,C) normalised rows of inp; mean, rstd (N) kept for backward.
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C);
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int N, int C);

// layernorm_backward, and when dsum is not NULL also dsum[c] += the column
// sums of dinp after the update (the bias gradient of the projection whose
// output dinp is the gradient of). Rows are split over n_threads threads in
// contiguous ranges, each summing into its own 3C floats of partials (3 C
// n_threads floats), added in thread order: the same result on every run
// with the same thread count (not bit for bit layernorm_backward's).
void layernorm_backward_sums(float *dinp, float *dweight, float *dbias, float *dsum, const float *dout,
                             const float *inp, const float *weight, const float *mean, const float *rstd,
                             int N, int C, float *partials, int n_threads);

// out (N,OC) = inp (N,IC) @ weight (OC,IC)^T + bias (OC, may be NULL).
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                    int IC, int OC);
// out (N,OC) = residual (N,OC) + inp @ weight^T + bias: a projection back into
// the residual stream in one pass (out may not alias residual).
void matmul_residual_forward(float *out, const float *residual, const float *inp, const float *weight,
                             const float *bias, int N, int IC, int OC);
// dinp (N,IC) = dout @ weight; dweight += dout^T @ inp; dbias += column sums
// of dout (dbias may be NULL).
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int IC, int OC);

// Causal multi-head self-attention. qkv (B,T,3C) holds Q, K, V side by side;
// out (B,T,C); att (B,NH,T,T) softmax weights, zero above the diagonal.
// scratch holds attention_scratch_floats(T,C,NH) floats for each of n_threads
// threads, and the work runs on at most that many.
void attention_forward(float *out, float *att, const float *qkv, float *scratch, int n_threads, int B,
                       int T, int C, int NH);
// dqkv (B,T,3C) from dout (B,T,C); scratch as for attention_forward.
void attention_backward(float *dqkv, float *scratch, int n_threads, const float *dout,
                        const float *qkv, const float *att, int B, int T, int C, int NH);
// Scratch floats one thread needs in attention_forward and attention_backward.
size_t attention_scratch_floats(int T, int C, int NH);

// GELU, tanh approximation (GPT-2).
void gelu_forward(float *out, const float *inp, size_t n);
// dinout holds d(out) on entry and d(inp) on return; out is what
// gelu_forward returned for inp.
void gelu_backward(float *dinout, const float *inp, const float *out, size_t n);

// gelu_backward on N rows of OC values, plus dbias[c] += the column sums of
// the result (the bias gradient of the product GELU was applied to).
// partials: OC n_threads floats; summed as in layernorm_backward_sums.
void gelu_backward_sums(float *dinout, float *dbias, const float *inp, const float *out, int N, int OC,
                        float *partials, int n_threads);

void residual_forward(float *out, const float *a, const float *b, size_t n);

// Scalar head: out (N) = inp (N,C) . w + b.
void head_forward(float *out, const float *inp, const float *w, const float *b, int N, int C);
void head_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                   const float *w, int N, int C);

#endif
