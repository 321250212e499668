// What every training stage does around its loop: the run folder with
// config.txt and metrics.csv, loading a model from a checkpoint with the
// checks that stages must not skip, saving a checkpoint with the state to
// resume from, thread count, and stopping cleanly on SIGINT/SIGTERM.
#ifndef MODEL_RUN_H
#define MODEL_RUN_H

#include <stdint.h>

#include "common/cli.h"
#include "common/csv.h"
#include "common/error.h"
#include "common/rng.h"
#include "model/adamw.h"
#include "model/checkpoint.h"
#include "model/gpt.h"
#include "model/run_folder.h"

// Sets the OpenMP and OpenBLAS thread counts (0 keeps the default: all cores,
// or OMP_NUM_THREADS) and returns the count in use. A stage records that
// count in config.txt, since results depend on it (summation order), not the 0
// it was given.
int run_set_threads(int n);

// The most options a stage's table may have.
#define RUN_MAX_OPTIONS 128

// The settings every training stage has, declared once (run_common_options,
// run_schedule_options) and held by each stage's Settings as `run`.
typedef struct {
    const char *config, *out, *resume;
    int seed, threads, steps, batch, save_every, stop_after;
    // The optimiser's schedule (not ppo's, whose updates have their own).
    float lr, min_lr_frac, weight_decay, grad_clip;
    int warmup;
    int force; // per invocation, like resume and threads: never in config.txt
} RunSettings;

// The defaults the stages share: seed 1337, weight decay 0.1, gradient
// clipping at norm 1, a final learning rate of 0.1 x the peak.
void run_settings_defaults(RunSettings *r);

// What the common options mean in one stage.
typedef struct {
    const char *config; // --config: what the names set (NULL: defaults, the shape from --init)
    const char *out;    // --out: the files of the run folder
    const char *seed;   // --seed: what it draws
    const char *steps;  // --steps: what a step is (NULL: optimiser steps)
    const char *batch;  // --batch: what a batch holds
    int batch_max;      // the largest --batch (0: 1024)
    const char *save_every, *stop_after; // NULL: "steps between checkpoints", "... after this step ..."
} RunOptionHelp;

// The options shared by every training stage, with the stage's own:
enum { RUN_COMMON_OPTIONS = 10, RUN_SCHEDULE_OPTIONS = 5 };

// Writes a stage's option table into opts (RUN_MAX_OPTIONS rows at most) in
// the order --help lists it: --config, the stage's inputs, --out (required),
// --resume, --force, --seed, --threads, --steps, --batch, with schedule
// --lr, --min-lr-frac, --warmup, --weight-decay, --grad-clip, then the
// stage's own options, --save-every and --stop-after. Returns the count.
int run_training_options(CliOption *opts, RunSettings *r, const RunOptionHelp *help, const CliOption *inputs,
                         int n_inputs, int schedule, const CliOption *own, int n_own);

// Options every training stage has, parsed in two passes: --config (defaults
// first), then --resume DIR (settings from DIR/config.txt, except --resume, --force,
// --threads and --stop-after, which belong to one invocation), then the rest of
// the command line on top; --resume DIR also stands for --out DIR. An input
// recorded in config.txt that is gone is looked for where it would be had it
// moved with the run folder (a pipeline's whole run folder moved), and used
// from there when a file is there, with a line on stdout saying so; the
// fingerprints recorded in the training state still decide (run_resume).
// Returns CLI_HELP after printing the help, CLI_VERSION after --version,
// ERR_USAGE for a usage error (a bad --config too), -1 for another error (the
// config.txt of --resume unreadable or refused), 0 otherwise.
// *settings_storage must be freed after the options are no longer used.
int run_parse_options(const char *prog, const char *summary, const CliOption *opts, int n_opts,
                      int argc, char **argv, const char *resume_dir,
                      int (*apply_config)(void *ctx, const char *name, Error *err), void *ctx,
                      char **settings_storage,
                      Error *err);

// Creates out_dir and writes out_dir/config.txt (atomically), with every path
// (every string option but --config) made absolute (path_absolute).
int run_write_config(const char *out_dir, const CliOption *opts, int n_opts, Error *err);

// Loads a checkpoint into a new model after checking its kind (one of the
// kinds whose bit is set in kinds_mask, e.g. 1u << CKPT_LM), when tok is not
// NULL its tokenizer (fingerprint and vocabulary size), and that every
// parameter is finite.
int run_load_model(GPT *m, CkptHeader *h, const char *path, unsigned kinds_mask,
                   const CkptTokenizer *tok, Error *err);

// A file a run reads from its first step to its last (PPO's reference and
// reward models): a resumed run must be given the same one. {NULL, 0}: none.
typedef struct {
    const char *path;
    uint32_t fp;
} RunInput;

// The part of a training loop that is the same in every stage.
typedef struct {
    const char *prog;           // program name for messages
    const char *out;            // run folder
    int resuming;               // continue the run in out
    uint64_t seed;
    long steps, save_every, stop_after; // stop_after 0: off
    const char *metrics_header; // metrics.csv columns
    const CliOption *opts;      // written to config.txt
    int n_opts;
    // Recorded in the training state and checked when the run is resumed.
    CkptTokenizer tokenizer;    // path NULL: none
    RunInput ref, rm;
    const RunFolderRequest *folder; // out, --force and the run's inputs for the run-folder guard
                                    // (NULL: out with no inputs and no --force)
    // A file in out that the stage writes once the work after its last step
    // is done (PPO's held-out evaluation); NULL: none. A run at its last step
    // without it is not complete: resuming it does that work.
    const char *final_report;
} RunLoop;

// The RunLoop and the run-folder request of a stage's settings: its run
// folder, --resume, --force, seed, steps, --save-every, --stop-after, its
// inputs (n_inputs paths that must not lie in the folder), metrics.csv's
// header and the options config.txt records. A stage sets what is its own
// afterwards (.tokenizer, .ref, .rm, .final_report). The loop points at
// *folder, which must outlive it.
RunFolderRequest run_folder_request(const RunSettings *r, const char *const *inputs, int n_inputs);
RunLoop run_loop(const char *prog, const RunSettings *r, const char *metrics_header, const CliOption *opts, int n_opts,
                 const RunFolderRequest *folder);

// Writes loop->out/model.bin and its training state (AdamW moments, step,
// RNG, stage values, the fingerprints of the run's inputs) atomically.
// h->step is set to step; stage NULL saves zeros.
int run_save(const RunLoop *loop, GPT *m, CkptHeader *h, uint64_t step, const Rng *rng,
             const TrainStageValues *stage, Error *err);

// Restores model, moments, step, RNG and stage values from loop->out (stage
// may be NULL); the model must already have its training state allocated.
// Before touching any file it refuses, naming the file: a model of another
// shape or tokenizer, a non-finite parameter, a training state of another
// format or with a field out of range, a step beyond loop->steps, and inputs
// (tokenizer, reference, reward model) other than the run's.
int run_resume(const RunLoop *loop, GPT *m, CkptHeader *h, uint64_t *step, Rng *rng,
               TrainStageValues *stage, Error *err);

// Drops what a resumed run would write again from the logs other than
// metrics.csv (samples.txt): the blocks of steps after `step`.
int run_truncate_logs(const char *out_dir, uint64_t step, Error *err);

// Before the first step: the run folder claimed (model/run_folder.h: its lock,
// no fresh run over another run's files without --force, no input inside it),
// the RNG from the seed, or model, AdamW moments, step, RNG and stage values
// from the run folder when resuming (run_resume); config.txt; metrics.csv and
// samples.txt (a resumed run drops rows past its step); signal handlers.
// Returns 0 to go on, -1 on error, and 1, having printed that the run is
// complete and written nothing, when it resumes a run already at its last
// step whose final report (if any) is written.
int run_begin(const RunLoop *loop, GPT *m, CkptHeader *h, uint64_t *step, Rng *rng, TrainStageValues *stage,
              CsvWriter *csv, Error *err);

// After `step` steps: writes a checkpoint when one is due (every save_every
// steps, at the last step, at stop_after, or after SIGINT/SIGTERM) and says
// whether to stop: 0 go on, 1 stop now (a message says how to resume), -1 error.
int run_after_step(const RunLoop *loop, GPT *m, CkptHeader *h, uint64_t step, const Rng *rng,
                   const TrainStageValues *stage, Error *err);

// Clips the gradients, refuses a non-finite loss or gradient norm (the last
// checkpoint on disk stays as it is), and takes one AdamW step; returns the
// gradient norm before clipping, or -1 with a message.
float run_optimizer_step(const RunLoop *loop, GPT *m, const AdamWConfig *opt, float loss, float grad_clip, float lr,
                         uint64_t step, Error *err);

// SIGINT and SIGTERM set a flag instead of killing the process, so the loop
// can write a checkpoint and exit; run_stop_requested reports it.
void run_install_signal_handlers(void);
int run_stop_requested(void);

#endif
