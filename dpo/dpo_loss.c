#include "dpo/dpo_loss.h"

#include "reward_model/reward_model.h"

DpoPairLoss dpo_loss(double logp_chosen, double logp_rejected, double ref_chosen, double ref_rejected, double beta,
                     double *d_chosen) {
    DpoPairLoss p = {0, beta * (logp_chosen - ref_chosen), beta * (logp_rejected - ref_rejected)};
    double d_reward; // dL/dr_c
    p.loss = bt_loss(p.reward_chosen, p.reward_rejected, 0.0, &d_reward);
    if (d_chosen) *d_chosen = beta * d_reward;
    return p;
}
