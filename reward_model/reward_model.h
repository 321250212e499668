// The reward model: the GPT trunk with its scalar head read at the last token
// of <|user|> prompt <|assistant|> response <|endoftext|>, trained with the
// Bradley–Terry loss on preference pairs.
#ifndef REWARD_MODEL_REWARD_MODEL_H
#define REWARD_MODEL_REWARD_MODEL_H

#include <stddef.h>

#include "common/error.h"
#include "model/checkpoint.h"
#include "model/gpt.h"
#include "tokenizer/tokenizer.h"

// Bradley–Terry loss of one pair, -log sigmoid(r_chosen - r_rejected - margin),
// computed stably; *d_chosen = dL/dr_chosen (and dL/dr_rejected = -*d_chosen).
double bt_loss(double r_chosen, double r_rejected, double margin, double *d_chosen);

// Formats (prompt, response) with the chat template for scoring. A pair longer
// than max_len keeps its prompt and loses the end of the response, so the end
// token, where the reward is read, is always the last id.
int rm_encode(const Tokenizer *tok, const char *prompt, const char *response, int max_len,
              int **ids, int *n, Error *err);

// The one rule by which a generated response is scored (ppo, evaluate,
// sample --rm): its ids are decoded to text (chat_response_text: up to the end
// of the turn, invalid UTF-8 as U+FFFD) and the text is formatted again with
// rm_encode, exactly as train_rm and score format a response read from a
// file. A sampler can draw ids that are not the tokenizer's encoding of
// their own text ("th" "e" for "the"); scoring the re-encoded ids gives one
// reward per text, whichever ids produced it. *text (may be NULL) gets the
// decoded text, malloc'ed.
int rm_encode_generated(const Tokenizer *tok, const char *prompt, const int *response, size_t n_response,
                        int max_len, int **ids, int *n, char **text, Error *err);

// Lays out rows (ids[i], lens[i]) right-padded with pad_id into inputs (B,T)
// where T is the longest row; returns T.
int rm_fill_rows(int *inputs, int *const *ids, const int *lens, int B, int pad_id);

// Forward over inputs (B,T) and the raw head output at each row's last real
// token (lens[i] - 1) into rewards (B). Padding after a row cannot change its
// reward: attention is causal.
void rm_forward(GPT *m, const int *inputs, const int *lens, int B, int T, float *rewards);

// Reward of one (prompt, response), normalised with the checkpoint's
// reward_mean and reward_std; the model needs activations for (1, ctx).
int rm_score_text(GPT *m, const CkptHeader *h, const Tokenizer *tok, const char *prompt,
                  const char *response, float *reward, Error *err);

#endif
