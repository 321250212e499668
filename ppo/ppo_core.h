// The mathematics of PPO for RLHF, on flat per-token arrays and independent
// of the transformer: rewards with a KL penalty, GAE, the clipped losses and
// their gradients, and the KL controllers. A batch holds n sequences; token k
// of sequence i sits at [i * stride + k] and only the first len[i] count.
#ifndef PPO_PPO_CORE_H
#define PPO_PPO_CORE_H

// Per-token rewards: -beta * (logp - ref_logp) on every response token (the
// k1 estimate of the KL, per token), plus the sequence's score on its last
// token.
void kl_penalty_rewards(float *rewards, const float *score, const float *logp,
                        const float *ref_logp, const int *len, int n, int stride, float beta);

// Per-sequence KL estimates summed over tokens, averaged over the batch:
// k1 = logp - ref_logp (unbiased, can be negative per sample) and
// k3 = (rho - 1) - log rho with rho = exp(ref_logp - logp) (unbiased, >= 0).
void kl_estimates(const float *logp, const float *ref_logp, const int *len, int n, int stride,
                  double *k1, double *k3);

// Mean over the n sequences of the sum of x along each (the full-vocabulary
// KL of a response from its per-token terms).
double mean_sequence_sum(const float *x, const int *len, int n, int stride);

// Generalised advantage estimation (Schulman et al. 2016) per sequence, with
// the value after the last token taken as 0 (the episode ends):
// delta_k = r_k + gamma V_{k+1} - V_k, A_k = delta_k + gamma lambda A_{k+1},
// returns R_k = A_k + V_k.
void gae_advantages(float *adv, float *returns, const float *rewards, const float *values,
                    const int *len, int n, int stride, float gamma, float lambda);

// Shifts and scales the advantages of all counted tokens to mean 0, std 1.
void whiten(float *x, const int *len, int n, int stride);

typedef struct {
    double loss, clipfrac, approxkl;
} PolicyLossStats;

// Clipped surrogate, averaged over the m tokens given:
// L = mean(max(-A rho, -A clip(rho, 1 - eps, 1 + eps))), rho = exp(logp - old).
// dlogp[j] = dL/dlogp[j]: zero where the clipped branch is the larger, i.e.
// where rho has left the clip range in the direction the advantage pushes.
PolicyLossStats ppo_policy_loss(const float *logp, const float *old_logp, const float *adv, int m,
                                float eps, float *dlogp);

typedef struct {
    double loss, clipfrac;
} ValueLossStats;

// Clipped value loss, averaged over m tokens:
// 0.5 mean(max((V - R)^2, (old_V + clip(V - old_V, -eps, eps) - R)^2)).
// dvalue[j] = dL/dV[j].
ValueLossStats ppo_value_loss(const float *value, const float *old_value, const float *returns,
                              int m, float eps, float *dvalue);

// Fraction of the variance of returns that values explain: 1 - Var(R - V) / Var(R).
double explained_variance(const float *values, const float *returns, const int *len, int n, int stride);

// The adaptive KL coefficient of Ziegler et al. (2019): after a batch of
// n_samples sequences with mean KL `kl`, beta *= 1 + clip(kl / target - 1,
// -0.2, 0.2) * min(n_samples / horizon, 1). With target <= 0 beta stays fixed.
// The factor lies in [0.8, 1.2]: a positive beta stays positive, and a beta
// of 0 stays 0 (ppo refuses --target-kl with --kl-coef 0).
typedef struct {
    double beta, target, horizon;
} KlController;

void kl_controller_update(KlController *c, double kl, int n_samples);

// The horizon ppo uses when --horizon is 0 ("auto"): the run's samples
// (steps x batch) over KL_AUTO_HORIZONS, rounded to a whole sample, never
// below one batch. Each update then moves beta by up to 20% x
// KL_AUTO_HORIZONS / steps (5% in the tiny config's 120 updates of 32,
// horizon 128), whatever the run's length: a beta 10x off the one that
// gives the target is within reach in under half the run (docs/ppo.md, 6).
#define KL_AUTO_HORIZONS 30
double kl_controller_auto_horizon(long steps, int batch);

#endif
