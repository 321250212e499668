// Held-out evaluation, one for every program: `evaluate` prints it, `ppo`
// logs it along training (--eval-every, DIR/heldout.csv) and at the end
// (DIR/heldout.json). A sample is drawn from a model for each of the first
// prompts of a held-out set, several per prompt, and read like a PPO rollout:
// its text judged by the annotator and scored by the reward model
// (rollout_decode), its tokens' log-probabilities under the policy and the
// reference and the full-vocabulary KL between them (rollout_score).
#ifndef PPO_HELDOUT_H
#define PPO_HELDOUT_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "common/csv.h"
#include "ppo/rollout.h"

// What a held-out sample is drawn and read with.
typedef struct {
    GPT *policy, *ref, *rm;
    const CkptHeader *rm_header;
    const Tokenizer *tok;
    const Annotator *ann;
    const PromptSet *prompts;
    KVCache *kv;         // kv->slots responses are generated at once
    ScoreScratch *sc;
    int n_prompts, samples; // the first n_prompts prompts, samples responses each
    float temperature;
    uint64_t seed;       // the same seed draws the same responses, whichever program asks
} Heldout;

// Draws r->n = n_prompts * samples responses from `from` (row i answers
// prompt i / samples). Deterministic in the seed, the models and kv->slots.
void heldout_sample(const Heldout *h, Rollout *r, const GPT *from);

// Reads the sample: gold and its parts (parts may be NULL), reward-model
// scores, log-probabilities and full-vocabulary KL.
int heldout_read(const Heldout *h, Rollout *r, AnnotatorParts *parts, Error *err);

typedef struct {
    int n, samples;                   // responses; per prompt
    double gold, gold_se, score, score_se;
    // Per response, to the reference: the full-vocabulary KL summed along the
    // response (with its standard error), and the sampled-token estimates k1
    // and k3 (ppo_core.h). All three are 0 for the reference's own samples.
    double kl_full, kl_full_se, kl, kl_k3;
    double ppl_ref;                   // perplexity of the responses under the reference
    double distinct1, distinct2, length, end_rate;
    // How often the reward model orders two responses to the same prompt as
    // gold does: over the pairs of a prompt's samples whose gold differs, a
    // reward tie counting one half; the mean of the prompts' rates, with the
    // standard error across prompts (NaN with one sample per prompt).
    double agreement, agreement_se;
    long agreement_pairs;
    double valence, topic, fluency, length_credit, repetition; // means of the gold's parts (NaN without parts)
} HeldoutFigures;

// The figures of the sample in r; of_reference: r was drawn from the
// reference (its KL to itself is 0).
HeldoutFigures heldout_figures(const Rollout *r, const AnnotatorParts *parts, int samples, int of_reference);

// The figures as a JSON object (eval.json, heldout.json): "gold", "gold_se",
// "rm_score", "rm_score_se", "kl_full", "kl_full_se", "kl", "kl_k3",
// "perplexity_under_ref", "distinct_1", "distinct_2", "mean_length",
// "end_rate", "rm_gold_agreement", "rm_gold_agreement_se", "rm_gold_pairs",
// "gold_parts": {"valence", "topic", "fluency", "length", "repetition"}.
cJSON *heldout_figures_json(const HeldoutFigures *f);

// heldout.csv: one row per evaluation of a run's policy along training.
extern const char HELDOUT_CSV_HEADER[];
void heldout_csv_row(CsvWriter *csv, long step, const HeldoutFigures *f);

// One JSON line per response of r (evaluate --dump): model ("policy" or
// "reference"), prompt_index, sample, prompt, category, response, ids,
// length, ended, logp, ref_logp (per token), and for policy rows the KL:
// kl_full_tokens, kl_full, k1, k3 (per response); rm_score, gold (the float
// the figures average) and gold_parts (annotator_parts_to_json). Numbers
// read back bit for bit.
int heldout_dump(FILE *fp, const char *path, const char *model, const Heldout *h, const Rollout *r,
                 const AnnotatorParts *parts, Error *err);

#endif
