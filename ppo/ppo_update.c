// See ppo_update.h. The value head sits on the policy's own trunk (the
// scalar head), so one forward pass gives both the log-probabilities and the
// values that the two losses need.
#include "ppo/ppo_update.h"

#include <stdlib.h>
#include <string.h>

#include "model/adamw.h"
#include "model/loss.h"
#include "ppo/ppo_core.h"

int ppo_buffers_alloc(PpoBuffers *b, int minibatch, int ctx, int n_rollouts, int max_new, int pad, Error *err) {
    b->inputs = malloc((size_t)minibatch * ctx * sizeof(int)), b->lens = malloc(minibatch * sizeof(int));
    b->order = malloc(n_rollouts * sizeof(int));
    b->flat = malloc((size_t)8 * minibatch * max_new * sizeof(float));
    b->pad = pad;
    if (!b->inputs || !b->lens || !b->order || !b->flat) return error_set(err, "out of memory");
    return 0;
}

void ppo_buffers_free(PpoBuffers *b) {
    free(b->inputs), free(b->lens), free(b->order), free(b->flat);
    memset(b, 0, sizeof *b);
}

void ppo_advantages(Rollout *r, int B, const PpoHyper *hp, float beta, IterStats *it) {
    int stride = r->max_new;
    memset(it, 0, sizeof *it);
    for (int i = 0; i < B; i++) {
        if (!r->ended[i]) r->score[i] -= hp->missing_eos_penalty;
        it->score += r->score[i] / B, it->gold += r->gold[i] / B;
        it->length += (double)r->resp_len[i] / B, it->end_rate += (double)r->ended[i] / B;
    }
    kl_estimates(r->logp, r->ref_logp, r->resp_len, B, stride, &it->kl, &it->kl_k3);
    it->kl_full = mean_sequence_sum(r->kl_full, r->resp_len, B, stride);
    kl_penalty_rewards(r->rewards, r->score, r->logp, r->ref_logp, r->resp_len, B, stride, beta);
    it->rlhf_reward = it->score - beta * it->kl;
    gae_advantages(r->adv, r->returns, r->rewards, r->values, r->resp_len, B, stride, hp->gamma, hp->lambda);
    it->explained_var = explained_variance(r->values, r->returns, r->resp_len, B, stride);
    whiten(r->adv, r->resp_len, B, stride);
    double tokens = 0, entropy = 0;
    for (int i = 0; i < B; i++)
        for (int k = 0; k < r->resp_len[i]; k++) entropy += r->entropy[(size_t)i * stride + k], tokens++;
    it->entropy = tokens ? entropy / tokens : 0;
}

void ppo_update(GPT *m, const Rollout *r, const PromptSet *ps, PpoBuffers *buf, const PpoHyper *hp, const int *idx,
                int rows, long adam_step, UpdateStats *st) {
    int V = m->config.vocab_size, ctx = m->config.max_seq_len, cap = hp->minibatch * r->max_new;
    int T = rollout_rows(buf->inputs, buf->lens, r, ps, idx, rows, buf->pad, ctx);
    gpt_forward(m, buf->inputs, rows, T, 1);
    float *new_lp = buf->flat, *old_lp = new_lp + cap, *adv = old_lp + cap, *value = adv + cap;
    float *old_value = value + cap, *ret = old_value + cap, *dlogp = ret + cap, *dvalue = dlogp + cap;
    int n = 0; // gather the response tokens of all rows into flat arrays
    for (int i = 0; i < rows; i++) {
        int sq = idx[i], q = ps->len[r->prompt[sq]], L = r->resp_len[sq];
        size_t at = (size_t)sq * r->max_new;
        logprob_forward(new_lp + n, m->acts.logits + ((size_t)i * T + q - 1) * V, r->resp + at, L, V, hp->temperature);
        for (int k = 0; k < L; k++, n++) {
            old_lp[n] = r->logp[at + k], adv[n] = r->adv[at + k], ret[n] = r->returns[at + k];
            value[n] = m->head[i * T + q - 1 + k], old_value[n] = r->values[at + k];
        }
    }
    PolicyLossStats pl = ppo_policy_loss(new_lp, old_lp, adv, n, hp->clip, dlogp);
    ValueLossStats vl = ppo_value_loss(value, old_value, ret, n, hp->value_clip, dvalue);
    memset(m->bw.dlogits, 0, (size_t)rows * T * V * sizeof(float));
    memset(m->bw.dhead, 0, (size_t)rows * T * sizeof(float));
    double entropy = 0;
    for (int i = 0, j = 0; i < rows; i++) { // scatter the gradients back to positions
        int sq = idx[i], q = ps->len[r->prompt[sq]], L = r->resp_len[sq];
        size_t row0 = (size_t)i * T + q - 1;
        float *logits = m->acts.logits + row0 * V, *dlogits = m->bw.dlogits + row0 * V;
        logprob_backward(dlogits, logits, r->resp + (size_t)sq * r->max_new, dlogp + j, L, V, hp->temperature);
        float ent[512], dent[512];
        for (int k = 0; k < L; k += 512) { // the entropy bonus, a chunk at a time
            int c = L - k < 512 ? L - k : 512;
            entropy_forward(ent, logits + (size_t)k * V, c, V, hp->temperature);
            for (int e = 0; e < c; e++) entropy += ent[e], dent[e] = -hp->ent_coef / n;
            if (hp->ent_coef > 0)
                entropy_backward_accumulate(dlogits + (size_t)k * V, logits + (size_t)k * V, dent, c, V, hp->temperature);
        }
        for (int k = 0; k < L; k++, j++) m->bw.dhead[row0 + k] = hp->vf_coef * dvalue[j];
    }
    gpt_zero_grad(m);
    gpt_backward(m, buf->inputs, 1, 1);
    // Clipping folded into AdamW, as run_optimizer_step does: the same
    // update as clipping the gradients in memory first, one pass fewer.
    float norm = gpt_grad_norm(m);
    AdamWConfig opt = adamw_defaults();
    opt.weight_decay = hp->weight_decay;
    adamw_update_scaled(m, &opt, hp->lr, adam_step, gpt_clip_scale(norm, hp->grad_clip));
    st->policy_loss += pl.loss, st->value_loss += vl.loss, st->approxkl += pl.approxkl;
    st->clipfrac += pl.clipfrac, st->value_clipfrac += vl.clipfrac, st->entropy += n ? entropy / n : 0;
    st->updates++;
}

void ppo_epochs(GPT *m, const Rollout *r, const PromptSet *ps, PpoBuffers *buf, const PpoHyper *hp, int B,
                uint64_t step, Rng *rng, UpdateStats *st) {
    int per_epoch = (B + hp->minibatch - 1) / hp->minibatch, *order = buf->order;
    for (int e = 0; e < hp->epochs; e++) {
        for (int i = 0; i < B; i++) order[i] = i;
        for (int i = B - 1; i > 0; i--) { // a fresh minibatch split each epoch
            int j = (int)rng_below(rng, i + 1), t = order[i];
            order[i] = order[j], order[j] = t;
        }
        for (int u = 0; u < per_epoch; u++) {
            int at = u * hp->minibatch, rows = B - at < hp->minibatch ? B - at : hp->minibatch;
            long adam_step = ((long)step * hp->epochs + e) * per_epoch + u + 1;
            ppo_update(m, r, ps, buf, hp, order + at, rows, adam_step, st);
        }
    }
}
