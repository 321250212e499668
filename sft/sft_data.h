// SFT examples: (prompt, response) pairs formatted with the chat template,
// and batches whose loss covers the response tokens and the end token only.
#ifndef SFT_SFT_DATA_H
#define SFT_SFT_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "model/generate.h"
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

// Samples one response (temperature 1, up to the context) for each of `count`
// prompts of set from `first` (wrapping around), kv->slots at a time.
// out_tokens holds count * ctx ids, out_lens count, lps kv->slots * ctx floats
// of scratch; returns how many responses ended with the end token.
int sft_sample_responses(const GPT *m, KVCache *kv, const SftSet *set, size_t first, int count, int eot,
                         uint64_t seed, int *out_tokens, int *out_lens, float *lps);

// Appends to out_dir/samples.txt a block "== step N (temperature 1) ==" with
// the first four prompts of set (all, when it has fewer) and the model's
// responses; tokens, lens and lps as sft_sample_responses wants them for
// four prompts. A file that cannot be written is passed over: samples are a log.
void sft_append_samples(const char *out_dir, long step, const GPT *m, KVCache *kv, const Tokenizer *tok,
                        const SftSet *set, uint64_t seed, int *tokens, int *lens, float *lps);

#endif
