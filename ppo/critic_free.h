// Sequence-level advantages without a critic (issue 21): the baseline of a
// sample's return comes from other samples, not from a value head. Returns r
// are per sequence; a group is the k samples of one prompt, laid out
// consecutively (group g holds rows g*k .. g*k + k - 1).
#ifndef PPO_CRITIC_FREE_H
#define PPO_CRITIC_FREE_H

// RLOO (Kool et al. 2019; Ahmadian et al. 2024): the baseline of a sample is
// the mean return of the other k - 1 samples of its group, independent of the
// sample itself, so the policy gradient stays unbiased.
// adv_i = r_i - (sum_{j != i} r_j) / (k - 1) = k / (k - 1) (r_i - mean). k >= 2.
void rloo_advantages(float *adv, const float *r, int n_groups, int k);

// GRPO (Shao et al. 2024): the group's mean and standard deviation (over the
// k samples, divided by k): adv_i = (r_i - mean) / std, and 0 for a group
// whose returns are all equal. It is RLOO's times (k - 1) / (k std); the
// division by std makes it a biased estimate of the gradient.
void grpo_advantages(float *adv, const float *r, int n_groups, int k);

// REINFORCE with a running-mean baseline: adv_i = r_i - b, with b the mean of
// earlier batches' returns (exponential average with weight `rate` on the
// newest batch), updated after the advantages, so no sample sees a baseline
// that includes its own return (the first batch's baseline is value's start,
// 0 in a zeroed struct).
typedef struct {
    double value, rate;
} RunningBaseline;

void reinforce_advantages(float *adv, const float *r, int n, RunningBaseline *b);

// Gives every counted token of sequence i the sequence's advantage (stride
// and len as in ppo_core.h).
void sequence_advantages_to_tokens(float *token_adv, const float *adv, const int *len, int n, int stride);

#endif
