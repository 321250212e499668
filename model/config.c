#include "model/config.h"

#include <string.h>

int gpt_config_named(GPTConfig *cfg, const char *name, Error *err) {
    if (strcmp(name, "smoke") == 0) {
        cfg->n_embd = 32, cfg->n_layer = 2, cfg->n_head = 2, cfg->max_seq_len = 64;
    } else if (strcmp(name, "tiny") == 0) {
        cfg->n_embd = 128, cfg->n_layer = 4, cfg->n_head = 4, cfg->max_seq_len = 128;
    } else if (strcmp(name, "small") == 0) {
        cfg->n_embd = 384, cfg->n_layer = 6, cfg->n_head = 6, cfg->max_seq_len = 256;
    } else {
        return error_set(err, "unknown config '%s' (expected smoke, tiny or small)", name);
    }
    return 0;
}

int gpt_config_validate(const GPTConfig *cfg, Error *err) {
    if (cfg->vocab_size < 1 || cfg->vocab_size > (1 << 20))
        return error_set(err, "vocab_size %d out of range [1, %d]", cfg->vocab_size, 1 << 20);
    if (cfg->max_seq_len < 1 || cfg->max_seq_len > 8192)
        return error_set(err, "max_seq_len %d out of range [1, 8192]", cfg->max_seq_len);
    if (cfg->n_layer < 1 || cfg->n_layer > 64)
        return error_set(err, "n_layer %d out of range [1, 64]", cfg->n_layer);
    if (cfg->n_embd < 1 || cfg->n_embd > 4096)
        return error_set(err, "n_embd %d out of range [1, 4096]", cfg->n_embd);
    if (cfg->n_head < 1 || cfg->n_head > cfg->n_embd || cfg->n_embd % cfg->n_head != 0)
        return error_set(err, "n_head %d must divide n_embd %d", cfg->n_head, cfg->n_embd);
    return 0;
}
