#include "dpo/dpo_batch.h"

#include <stdlib.h>
#include <string.h>

#include "data/chat_template.h"
#include "data/prefs_io.h"
#include "dpo/dpo_loss.h"
#include "model/loss.h"

// chat_format's own message says prompt or response; the side tells which
// of the pair's two responses, and file:line which pair.
static int encode_side(const Tokenizer *tok, const char *path, const PrefPair *p, const char *side,
                       const char *response, SftExample *ex, Error *err) {
    int *ids = NULL;
    size_t n = 0, start = 0;
    Error inner;
    if (chat_format(tok, p->prompt, response, &ids, &n, &start, &inner))
        return error_set(err, "%s:%ld: %s: %s", path, p->line, side, inner.msg);
    *ex = (SftExample){ids, (int)n, (int)start};
    return 0;
}

// Appends the encoded pair to set->pairs (room for it is there), or counts it
// in skipped_long: a pair trains on both sides, so one side too long for the
// context makes the whole pair unusable.
static int add_pair(DpoSet *set, const Tokenizer *tok, const char *path, const PrefPair *p, int ctx, Error *err) {
    DpoPair q = {.has_gold = p->has_gold, .gold_chosen = p->gold_chosen, .gold_rejected = p->gold_rejected,
                 .line = p->line};
    if (encode_side(tok, path, p, "chosen", p->chosen, &q.chosen, err)) return -1;
    if (encode_side(tok, path, p, "rejected", p->rejected, &q.rejected, err)) {
        free(q.chosen.ids);
        return -1;
    }
    if (q.chosen.n > ctx + 1 || q.rejected.n > ctx + 1) {
        free(q.chosen.ids), free(q.rejected.ids);
        set->skipped_long++;
        return 0;
    }
    set->pairs[set->n++] = q;
    return 0;
}

int dpo_load(DpoSet *set, const Tokenizer *tok, const char *path, int ctx, Error *err) {
    memset(set, 0, sizeof *set);
    PrefPair *prefs;
    size_t n_prefs;
    if (prefs_load(path, &prefs, &n_prefs, err)) return -1;
    int rc = 0;
    if (n_prefs && !(set->pairs = malloc(n_prefs * sizeof *set->pairs)))
        rc = error_set(err, "out of memory reading %s", path);
    for (size_t i = 0; rc == 0 && i < n_prefs; i++) rc = add_pair(set, tok, path, &prefs[i], ctx, err);
    prefs_free(prefs, n_prefs);
    if (rc == 0 && n_prefs == 0) rc = error_set(err, "%s: no pairs in the file", path);
    if (rc == 0 && set->n == 0)
        rc = error_set(err, "%s: none of its %zu pairs fits the model's context of %d tokens", path,
                       set->skipped_long, ctx);
    if (rc) dpo_free(set);
    return rc;
}

void dpo_free(DpoSet *set) {
    for (size_t i = 0; i < set->n; i++) free(set->pairs[i].chosen.ids), free(set->pairs[i].rejected.ids);
    free(set->pairs);
    memset(set, 0, sizeof *set);
}

int dpo_fill_rows(LmBatch *b, const DpoSet *set, const size_t *idx, int B, int pad_id) {
    int T = 1;
    for (int i = 0; i < B; i++) {
        const DpoPair *p = &set->pairs[idx[i]];
        int longer = p->chosen.n > p->rejected.n ? p->chosen.n : p->rejected.n;
        T = longer - 1 > T ? longer - 1 : T;
    }
    if (T > b->max_T) T = b->max_T;
    for (int i = 0; i < B; i++) {
        sft_fill_row(b, i, T, &set->pairs[idx[i]].chosen, pad_id);
        sft_fill_row(b, B + i, T, &set->pairs[idx[i]].rejected, pad_id);
    }
    return T;
}

// b->logp (rows,T) = log p(target) of every position, padding included: its
// weight 0 keeps it out of every sum.
static void forward_token_logps(LmBatch *b, int rows, int T) {
    gpt_forward(b->m, b->inputs, rows, T, 1);
    logprob_forward(b->logp, b->m->acts.logits, b->targets, rows * T, b->V, 1.0f);
}

// In double: a response's log-prob is a sum of tens of terms of a few nats
// each, and DPO differences two such sums, so float accumulation error would
// land directly in the loss.
static double row_logp(const LmBatch *b, int row, int T) {
    const float *lp = b->logp + (size_t)row * T, *w = b->weights + (size_t)row * T;
    double sum = 0;
    for (int t = 0; t < T; t++) sum += (double)w[t] * lp[t];
    return sum;
}

void dpo_sequence_logps(LmBatch *b, int rows, int T, double *seq_logp) {
    forward_token_logps(b, rows, T);
    for (int r = 0; r < rows; r++) seq_logp[r] = row_logp(b, r, T);
}

// The row's sequence log-prob is sum_t w_t logp_t, so a gradient d on it
// reaches each token as d * w_t (0 on prompt and padding).
static void spread_row_grad(LmBatch *b, int row, int T, double d) {
    const float *w = b->weights + (size_t)row * T;
    float *dlogp = b->dlogp + (size_t)row * T;
    for (int t = 0; t < T; t++) dlogp[t] = (float)(d * w[t]);
}

static void add_pair_stats(DpoStats *s, const DpoPairLoss *p, double logp_c, double logp_r) {
    s->loss += p->loss;
    s->reward_chosen += p->reward_chosen, s->reward_rejected += p->reward_rejected;
    s->margin += p->reward_chosen - p->reward_rejected;
    s->accuracy += p->reward_chosen > p->reward_rejected ? 1.0 : p->reward_chosen == p->reward_rejected ? 0.5 : 0.0;
    s->logp_chosen += logp_c, s->logp_rejected += logp_r;
}

static void divide_stats(DpoStats *s, int B) {
    double *f[] = {&s->loss, &s->reward_chosen, &s->reward_rejected, &s->margin,
                   &s->accuracy, &s->logp_chosen, &s->logp_rejected};
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) *f[k] /= B;
}

DpoStats dpo_batch_loss(LmBatch *b, int B, int T, const double *ref_chosen, const double *ref_rejected, double beta,
                        int backward) {
    DpoStats s = {0};
    forward_token_logps(b, 2 * B, T); // (2B,T)
    // Each pair's sums are used at once, so no per-row array is needed.
    for (int i = 0; i < B; i++) {
        double logp_c = row_logp(b, i, T), logp_r = row_logp(b, B + i, T), d_chosen;
        DpoPairLoss p = dpo_loss(logp_c, logp_r, ref_chosen[i], ref_rejected[i], beta, &d_chosen);
        add_pair_stats(&s, &p, logp_c, logp_r);
        if (backward) { // the loss is the mean over pairs: each pair's share is 1/B
            spread_row_grad(b, i, T, d_chosen / B);
            spread_row_grad(b, B + i, T, -d_chosen / B);
        }
    }
    divide_stats(&s, B);
    if (!backward) return s;
    // dlogp depends on logp through the sigmoid, so it is known only after
    // the forward pass: logprob_forward_backward's single pass (which needs
    // dlogp first) does not apply, and the logits are read a second time.
    GPT *m = b->m;
    logprob_backward(m->bw.dlogits, m->acts.logits, b->targets, b->dlogp, 2 * B * T, b->V, 1.0f);
    gpt_zero_grad(m);
    gpt_backward(m, b->inputs, 1, 0);
    return s;
}
