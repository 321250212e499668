// What rollout_decode leaves for the reward model when every response's ids
// are the encoding of its own text: the prompt, the response, the end token.
// For tests that score rollouts without a tokenizer (test_no_alloc,
// test_kl_full); it allocates nothing.
#ifndef TESTS_REWARD_MODEL_ROWS_H
#define TESTS_REWARD_MODEL_ROWS_H

#include "ppo/rollout.h"

void reward_model_rows(Rollout *r, const PromptSet *ps, int eot);

#endif
