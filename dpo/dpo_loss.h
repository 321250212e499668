// The loss of Direct Preference Optimisation (Rafailov et al. 2023) on one
// preference pair, from the sequence log-probabilities of its two responses
// (sums over each response's tokens) under the policy and under the frozen
// reference. DPO trains the policy on the pairs the reward model learns
// from, with the policy's own log-ratio as the reward:
//
//     r_c = beta (logp_c - ref_c),   r_r = beta (logp_r - ref_r)
//     L   = -log sigmoid(r_c - r_r)
//
// the Bradley-Terry loss of train_rm (bt_loss) on these implicit rewards. Its
// minimiser over all policies, with preferences Bradley-Terry in a reward r,
// is pi_ref exp(r / beta) / Z: the optimum of the KL-regularised RL problem
// PPO solves with the same beta (tests/test_dpo.c checks both on a bandit).
#ifndef DPO_DPO_LOSS_H
#define DPO_DPO_LOSS_H

typedef struct {
    double loss;
    double reward_chosen, reward_rejected; // the implicit rewards r_c and r_r
} DpoPairLoss;

// *d_chosen (may be NULL) = dL/dlogp_c; dL/dlogp_r = -*d_chosen, and the
// reference log-probabilities get no gradient (they are constants).
DpoPairLoss dpo_loss(double logp_chosen, double logp_rejected, double ref_chosen, double ref_rejected, double beta,
                     double *d_chosen);

#endif
