// The held-out evaluations of a training run (ppo, dpo): the policy's row of
// DIR/heldout.csv every --eval-every steps from step 0, and after the last
// step its final row and DIR/heldout.json with the reference beside it, the
// run's final report (RunLoop.final_report).
#ifndef PPO_HELDOUT_LOG_H
#define PPO_HELDOUT_LOG_H

#include <stdint.h>

#include "ppo/heldout.h"

extern const char HELDOUT_CSV[];    // "heldout.csv"
extern const char HELDOUT_REPORT[]; // "heldout.json"

typedef struct {
    Heldout h;             // how the sample is drawn and read; h.policy is the model trained
    Rollout r;             // the sample: h.n_prompts * h.samples responses
    AnnotatorParts *parts; // its gold's parts
    CsvWriter csv;         // DIR/heldout.csv
    const char *prog, *dir;
    int max_new;           // the longest response, recorded in heldout.json
} HeldoutLog;

// The options of the held-out evaluations of a stage (int destinations);
// unit_ names its steps ("iterations", "steps").
#define HELDOUT_LOG_OPTIONS(n_, samples_, every_, unit_)                                                           \
    {"eval-n", CLI_INT, (n_), 1, 100000, "held-out prompts in each held-out evaluation"},                          \
    {"eval-samples", CLI_INT, (samples_), 1, 1000,                                                                  \
     "samples per held-out prompt (2 or more: the reward model's agreement with gold on pairs)"},                  \
    {"eval-every", CLI_INT, (every_), 0, 10000000,                                                                  \
     unit_ " between held-out evaluations into heldout.csv, from step 0 (0: the final one only)"}

// Takes h (its models, prompts, KV cache and scratch stay the caller's) and
// allocates the sample of responses of at most max_new tokens.
int heldout_log_alloc(HeldoutLog *l, const Heldout *h, int max_new, Error *err);
void heldout_log_free(HeldoutLog *l);

// Opens DIR/heldout.csv for a run at `step`: a fresh run starts it; a resumed
// one drops the rows from its step on, which it writes again (an evaluation
// interrupted at that step left none, the final one may have left one
// without heldout.json).
int heldout_log_open(HeldoutLog *l, const char *prog, const char *dir, uint64_t step, Error *err);

// The policy's row at `step`. SIGINT/SIGTERM is checked between the phases
// of an evaluation, which are seconds long. Returns 0, 1 when a signal
// stopped it (no row: a resumed run evaluates again), -1 on error.
int heldout_log_row(HeldoutLog *l, long step, Error *err);

// After the last step (`step`): the policy's and the reference's samples,
// their figures printed, the policy's row and heldout.json. Returns 0, 1 when
// a signal stopped it (model.bin is complete; --resume runs the evaluation
// alone), -1 on error.
int heldout_log_finish(HeldoutLog *l, long step, Error *err);

#endif
