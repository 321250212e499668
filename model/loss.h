// Losses on the LM head. Everything is built from one pair: the
// log-probability of given tokens and its backward. Cross-entropy is the
// weighted mean of -logp; PPO uses logp directly.
#ifndef MODEL_LOSS_H
#define MODEL_LOSS_H

// logp (N) = log softmax(logits[i] / temperature)[targets[i]]; logits (N,V).
void logprob_forward(float *logp, const float *logits, const int *targets, int N, int V,
                     float temperature);
// dlogits (N,V) = dlogp[i] * d logp[i] / d logits[i] (overwritten; a row with
// dlogp 0 becomes 0).
void logprob_backward(float *dlogits, const float *logits, const int *targets, const float *dlogp,
                      int N, int V, float temperature);

// logprob_forward and logprob_backward in one pass over the logits, for when
// dlogp is known before logp (cross-entropy: masked_nll_grad): each row's
// exponentials are computed once, for its log-sum-exp and its gradient. The
// same results, bit for bit, as the two calls.
void logprob_forward_backward(float *logp, float *dlogits, const float *logits, const int *targets,
                              const float *dlogp, int N, int V, float temperature);

// Weighted mean negative log-likelihood sum(w*(-logp)) / sum(w); weights NULL
// means all ones, weight 0 masks a token out. Sets dlogp (N) = -w / sum(w),
// the gradient of the loss, when dlogp is non-NULL. Returns 0 if sum(w) is 0.
float masked_nll(const float *logp, const float *weights, int N, float *dlogp);
// The dlogp masked_nll sets, which does not depend on logp.
void masked_nll_grad(const float *weights, int N, float *dlogp);

// Entropy (nats) of softmax(logits[i] / temperature) for each row.
void entropy_forward(float *ent, const float *logits, int N, int V, float temperature);
// dlogits (N,V) += dent[i] * d ent[i] / d logits[i].
// Full-vocabulary KL(p || q) of each of N rows: p and q the softmax of
// logits_p and logits_q (N, V) at the temperature, kl[i] = sum_v p_v (log p_v
// - log q_v) >= 0. Summed along a sampled response it estimates the
// sequence KL without bias and with less variance than the sampled-token
// log-ratio (the chain rule: E[sum_t KL(p_t || q_t)] = KL(P || Q)).
void kl_full_forward(float *kl, const float *logits_p, const float *logits_q, int N, int V, float temperature);

void entropy_backward_accumulate(float *dlogits, const float *logits, const float *dent, int N,
                                 int V, float temperature);

#endif
