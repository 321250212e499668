// The one training-loop driver of every training stage (pretrain, sft,
// train_rm, ppo, dpo). A stage hands over what is its own: its options and
// configs, its data and model (setup), one step's loss and gradient (or, for
// ppo, its whole update), its metrics columns and its evaluation. The driver
// does the rest, the same way for all: the command line with the common
// options (model/run.h), the run-folder guard, threads, resume, the
// learning-rate schedule and AdamW step, metrics.csv, progress, checkpoints,
// SIGINT/SIGTERM and the exit status.
//
// A stage's step, in order:
//   step()    the loss and its gradient in the model's grads (or the update)
//   (driver)  with a schedule: clip, refuse a non-finite loss or gradient,
//             one AdamW step at lr_warmup_cosine's rate
//   after()   evaluation, samples and the progress text, after the step counts
//   (driver)  the metrics row, the progress line, run_after_step
#ifndef MODEL_TRAIN_STAGE_H
#define MODEL_TRAIN_STAGE_H

#include "model/run.h"

// The most metrics columns a stage may add to the driver's.
#define TRAIN_STAGE_MAX_COLUMNS 48

// One step as the stage reports it and the driver logs it.
typedef struct {
    float loss;      // the step's mean loss (stages with a schedule; the driver refuses a non-finite one)
    double tokens;   // tokens the step processed, for tokens and tok_per_s
    double cols[TRAIN_STAGE_MAX_COLUMNS]; // the stage's metrics columns (NaN, the default: an empty field)
    char status[200];                     // the progress line's text (set in after)
    // Set by the driver before after() is called:
    float lr, grad_norm; // NaN without a schedule
    double tok_per_s;
} StepReport;

// What setup hands the driver: the model trained and the files a resumed run
// must be given again.
typedef struct {
    GPT *model;                // trained, with its training state allocated
    CkptHeader *header;        // model.bin's header (kind, parent, ...)
    CkptTokenizer tokenizer;   // path NULL: none
    RunInput ref, rm;          // {NULL, 0}: none
    const char *final_report;  // see RunLoop.final_report; NULL: none
    TrainStageValues *values;  // carried over a resume (NULL: none)
    long log_every;            // progress: steps between logged lines when not a terminal
} TrainTarget;

typedef struct {
    // The command line.
    const char *prog, *summary;
    void *settings;   // the stage's Settings, holding `RunSettings run`: run_settings_defaults, then
                      // apply_config "tiny", then the command line set them
    RunSettings *run; // &settings->run
    int (*apply_config)(void *settings, const char *name, Error *err);
    RunOptionHelp help;
    const CliOption *inputs; // the files and folders it reads; also what the run-folder guard checks
    int n_inputs;
    // 1: --lr, --min-lr-frac, --warmup, --weight-decay, --grad-clip, and the
    // driver takes the optimiser step after step(); 0: step() updates the model.
    int schedule;
    const CliOption *own;
    int n_own;
    // After parsing: a usage error (ERR_USAGE through usage_error), or
    // settings resolved once so that config.txt records them. NULL: none.
    int (*check)(void *settings, Error *err);

    // The run.
    void *state;
    // Loads the data and models into state and fills *t; the run folder is
    // not claimed yet (nothing in it may be written).
    int (*setup)(void *state, const void *settings, TrainTarget *t, Error *err);
    void (*free)(void *state); // also after a failed setup
    const char *columns;       // the stage's metrics.csv columns, comma-separated
    // After run_begin (the state is restored when resuming): messages, extra
    // logs, an evaluation before the first step. 0, 1 (a signal: the driver
    // saves and stops), -1. NULL: none.
    int (*begin)(void *state, uint64_t step, Error *err);
    int (*step)(void *state, uint64_t step, Rng *rng, StepReport *rep, Error *err); // 0 or -1
    int (*after)(void *state, uint64_t step, StepReport *rep, Error *err);          // 0 or -1; step counts it
    // After the last step: the final evaluation and messages. 0, 1 (stopped
    // by a signal; resuming finishes it), -1. NULL: none.
    int (*finish)(void *state, double seconds, Error *err);
} TrainStage;

// A TrainStage initialiser's command-line fields: the Settings variable s_
// (with its RunSettings run and the file's apply_config), the RunOptionHelp
// help_, and the input and own option tables (arrays).
#define TRAIN_STAGE_COMMAND(s_, help_, inputs_, own_)                                                             \
    .settings = &(s_), .run = &(s_).run, .apply_config = apply_config, .help = (help_), .inputs = (inputs_),       \
    .n_inputs = (int)(sizeof(inputs_) / sizeof *(inputs_)), .own = (own_), .n_own = (int)(sizeof(own_) / sizeof *(own_))

// Runs the stage's command: parses argv, trains, and returns the exit status
// (0 done, EXIT_STOPPED stopped with a checkpoint to resume); errors are
// printed and exit with their status.
int train_stage_main(const TrainStage *st, int argc, char **argv);

// Whether an evaluation every `every` steps is due after `step` (always at
// the last step).
int train_stage_due(uint64_t step, long every, long steps);

#endif
