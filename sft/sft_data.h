// SFT examples: (prompt, response) pairs formatted with the chat template,
// and batches whose loss covers the response tokens and the end token only.
#ifndef SFT_SFT_DATA_H
#define SFT_SFT_DATA_H

#include <stddef.h>

#include "common/error.h"
#include "model/lm_batch.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    int *ids;           // <|user|> prompt <|assistant|> response <|endoftext|>
    int n;              // number of ids
    int response_start; // index of the first response token; the ids before
                        // it are the prompt a model continues when sampling
} SftExample;

typedef struct {
    SftExample *ex;
    size_t n;
    size_t skipped_long; // pairs that did not fit the context
} SftSet;

// Reads {"prompt","response"} lines for a model whose context is ctx tokens:
// a pair of n tokens trains on n - 1 positions, so pairs longer than ctx + 1
// tokens are counted in skipped_long and left out. Errors name the file and line.
int sft_load(SftSet *set, const Tokenizer *tok, const char *path, int ctx, Error *err);
void sft_free(SftSet *set);

// Lays out examples as batch rows: inputs ids[0..n-1), targets ids[1..n),
// weight 1 where the target is a response token or the end token, 0 on the
// prompt and on padding (pad_id fills the rest of the row). Right padding
// cannot leak into real tokens: attention is causal, so a real token never
// sees a later pad. Returns T, the longest row (at most b->max_T).
int sft_fill_batch(LmBatch *b, const SftSet *set, const size_t *idx, int B, int pad_id);
// One example as row `row` of a batch of T-token rows, laid out as above (an
// example longer than T + 1 tokens is cut at T); shared with DPO's batches so
// both stages train on the same layout.
void sft_fill_row(LmBatch *b, int row, int T, const SftExample *e, int pad_id);

#endif
