// Model shapes and the named configurations smoke / tiny / small.
#ifndef MODEL_CONFIG_H
#define MODEL_CONFIG_H

#include <stddef.h>

#include "common/error.h"

typedef struct {
    int vocab_size;  // V: from the tokenizer
    int max_seq_len; // maxT: context length
    int n_layer;     // L
    int n_head;      // NH
    int n_embd;      // C
} GPTConfig;

// Fills the shape of a named configuration (smoke, tiny, small); vocab_size is
// left untouched because it comes from the tokenizer.
int gpt_config_named(GPTConfig *cfg, const char *name, Error *err);

// Checks that every field is in range and C is divisible by NH; the limits
// keep every size computed from a config far from overflow.
int gpt_config_validate(const GPTConfig *cfg, Error *err);

#endif
