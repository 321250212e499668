// The data and batch maths of DPO: preference pairs encoded as two SFT
// examples sharing a prompt, batches of 2B rows (the B chosen responses, then
// their B rejected ones), the sequence log-probabilities of the responses
// and the mean DPO loss (dpo/dpo_loss.h) of a batch with its gradient.
#ifndef DPO_DPO_BATCH_H
#define DPO_DPO_BATCH_H

#include <stddef.h>

#include "common/error.h"
#include "model/lm_batch.h"
#include "sft/sft_data.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    SftExample chosen, rejected; // the prompt with each response, chat-formatted
    int has_gold;                // the pair's file gave both gold scores
    double gold_chosen, gold_rejected;
    long line; // the pair's line in its file
} DpoPair;

typedef struct {
    DpoPair *pairs;
    size_t n;
    size_t skipped_long; // pairs with a side that did not fit the context
} DpoSet;

// Reads {"prompt","chosen","rejected"} lines (data/prefs_io.h) for a model
// whose context is ctx tokens. A pair either of whose sequences is longer
// than ctx + 1 tokens is counted in skipped_long and left out; a file with no
// pair left is an error naming it. Errors about a pair name file:line.
int dpo_load(DpoSet *set, const Tokenizer *tok, const char *path, int ctx, Error *err);
void dpo_free(DpoSet *set);

// Rows 0..B-1 the chosen sequences of pairs idx[0..B), rows B..2B-1 their
// rejected ones, each laid out as sft_fill_batch lays out an example (weight
// 1 on response and end-token targets). Needs b->max_B >= 2B. Returns T, the
// longest row, at most b->max_T.
int dpo_fill_rows(LmBatch *b, const DpoSet *set, const size_t *idx, int B, int pad_id);

// Forward over the first `rows` rows of T tokens; seq_logp (rows) = each
// row's sum of w * log p(target) at temperature 1, accumulated in double.
// Overwrites b->logp.
void dpo_sequence_logps(LmBatch *b, int rows, int T, double *seq_logp);

// Means over the B pairs of a batch; accuracy counts the pairs with
// reward_chosen > reward_rejected, a tie as 0.5; logp_* are the policy's
// sequence log-probabilities.
typedef struct {
    double loss, reward_chosen, reward_rejected, margin, accuracy, logp_chosen, logp_rejected;
} DpoStats;

// Mean DPO loss of the B pairs dpo_fill_rows laid out as 2B rows of T tokens,
// against the reference's sequence log-probabilities ref_chosen (B) and
// ref_rejected (B). With backward set, also zeroes the gradients and runs
// backward, leaving d(mean loss)/d(params) in b->m->grads. Allocates nothing.
DpoStats dpo_batch_loss(LmBatch *b, int B, int T, const double *ref_chosen, const double *ref_rejected, double beta,
                        int backward);

#endif
