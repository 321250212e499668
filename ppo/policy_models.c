#include "ppo/policy_models.h"

#include <string.h>

int policy_models_load(PolicyModels *pm, const char *tokenizer, const char *init, const char *ref, const char *rm,
                       const char *stage, Error *err) {
    memset(pm, 0, sizeof *pm);
    if (tokenizer_load(&pm->tok, tokenizer, err)) return -1;
    pm->tk = (CkptTokenizer){tokenizer, tokenizer_fingerprint(pm->tok), tokenizer_vocab_size(pm->tok)};
    unsigned lm_or_policy = (1u << CKPT_LM) | (1u << CKPT_POLICY);
    CkptHeader init_h, ref_h;
    const char *ref_path = ref ? ref : init;
    if (run_load_model(&pm->policy, &init_h, init, lm_or_policy, &pm->tk, err) ||
        run_load_model(&pm->ref, &ref_h, ref_path, lm_or_policy, &pm->tk, err) ||
        (rm && run_load_model(&pm->rm, &pm->rm_h, rm, 1u << CKPT_RM, &pm->tk, err)))
        return -1;
    pm->ref_in = (RunInput){ref_path, ref_h.fingerprint};
    if (rm) pm->rm_in = (RunInput){rm, pm->rm_h.fingerprint};
    if (memcmp(&pm->policy.config, &pm->ref.config, sizeof(GPTConfig)) ||
        (rm && pm->rm.config.max_seq_len < pm->policy.config.max_seq_len))
        return error_set(err, "%s and %s have different model shapes", init, ref ? ref : rm);
    if (init_h.kind == CKPT_LM) memset(pm->policy.params.headw, 0, (pm->policy.config.n_embd + 1) * sizeof(float));
    if (ckpt_header_init(&pm->h, CKPT_POLICY, &pm->policy.config, stage, err)) return -1;
    pm->h.tokenizer_fp = pm->tk.fingerprint;
    return ckpt_set_parent(&pm->h, init, init_h.fingerprint, err);
}

void policy_models_free(PolicyModels *pm) {
    tokenizer_free(pm->tok);
    gpt_free(&pm->policy), gpt_free(&pm->ref), gpt_free(&pm->rm);
}
