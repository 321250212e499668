// The models of a stage that trains a policy against a frozen reference
// (ppo, dpo): the tokenizer, the policy to train, the reference, and the
// reward model (which ppo trains against and dpo evaluates with), loaded
// with the checks both stages need, and the header the policy is saved with.
#ifndef PPO_POLICY_MODELS_H
#define PPO_POLICY_MODELS_H

#include "model/run.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    Tokenizer *tok;
    GPT policy, ref, rm; // rm: empty without a reward model
    CkptHeader h;        // the policy's checkpoint: kind policy, the stage, its parent the init model
    CkptHeader rm_h;
    // What the checkpoints and a resumed run are checked against: a resumed
    // run must see the tokenizer, reference and reward model it started with.
    CkptTokenizer tk;
    RunInput ref_in, rm_in; // rm_in {NULL, 0} without a reward model
} PolicyModels;

// Loads the tokenizer, the policy from init (a language model or a policy;
// a language model's scalar head, unused by it, is zeroed to start a value
// head from), the reference from ref (NULL: init again) and, unless rm is
// NULL, the reward model. The policy and the reference must have one shape,
// and the reward model a context at least the policy's.
int policy_models_load(PolicyModels *pm, const char *tokenizer, const char *init, const char *ref, const char *rm,
                       const char *stage, Error *err);
void policy_models_free(PolicyModels *pm);

#endif
