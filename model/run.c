#include "model/run.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>
#include <omp.h>

#include "common/fileio.h"

int run_set_threads(int n) {
    if (n > 0) {
        omp_set_num_threads(n);
        openblas_set_num_threads(n);
    }
    return omp_get_max_threads();
}

// --resume DIR continues the run in DIR: it stands for --out DIR.
static void resume_sets_out(const CliOption *opts, int n_opts, const char *resume_dir) {
    for (int i = 0; i < n_opts; i++)
        if (!strcmp(opts[i].name, "out")) *(const char **)opts[i].dest = resume_dir;
}

// The string options of a run that are not paths; every other one names a
// file or folder, recorded in config.txt as an absolute path.
static int is_path_option(const CliOption *o) {
    return cli_type(o) == CLI_STRING && strcmp(o->name, "config") != 0;
}

// The recorded inputs of a run whose folder has moved since config.txt was
// written: where each gone one would be now (path_relocate from the recorded
// --out to the folder resumed), when a file is there.
typedef struct {
    char *candidate[RUN_MAX_OPTIONS];
    size_t total; // bytes of the candidates with their NULs
} MovedInputs;

static void moved_inputs_find(MovedInputs *mv, const CliOption *opts, int n_opts, const char *resume_dir) {
    memset(mv, 0, sizeof *mv);
    const char *old_out = NULL;
    for (int i = 0; i < n_opts; i++)
        if (!strcmp(opts[i].name, "out")) old_out = *(const char **)opts[i].dest;
    if (!old_out || !file_exists(resume_dir)) return;
    for (int i = 0; i < n_opts && i < RUN_MAX_OPTIONS; i++) {
        if (!is_path_option(&opts[i]) || !strcmp(opts[i].name, "out") || !strcmp(opts[i].name, "resume")) continue;
        const char *recorded = *(const char **)opts[i].dest;
        if (!recorded || !recorded[0] || file_exists(recorded)) continue;
        char *candidate = path_relocate(recorded, old_out, resume_dir);
        char *absolute = candidate && file_exists(candidate) ? path_absolute(candidate) : NULL;
        free(candidate);
        candidate = absolute; // without the ".." of path_relocate
        if (candidate) {
            mv->candidate[i] = candidate;
            mv->total += strlen(candidate) + 1;
        } else {
            free(candidate);
        }
    }
}

static void moved_inputs_free(MovedInputs *mv) {
    for (int i = 0; i < RUN_MAX_OPTIONS; i++) free(mv->candidate[i]);
}

// Applies DIR/config.txt like cli_load_settings, then points every recorded
// input that is gone, and found where it would be had it moved with the run
// folder, at that place. The candidates are kept in the same storage as the
// settings; recorded[i] is the path they replace (NULL: none replaced).
static int load_run_settings(const char *resume_dir, const CliOption *opts, int n_opts, char **storage,
                             const char **recorded, Error *err) {
    static const char *const per_invocation[] = {"resume", "threads", "stop-after", "force", NULL};
    char path[4096];
    unsigned char *text;
    size_t len;
    *storage = NULL;
    if (n_opts > RUN_MAX_OPTIONS) return error_set(err, "more than %d options", RUN_MAX_OPTIONS);
    if (path_join(path, sizeof path, resume_dir, "config.txt", err) || read_file(path, 1 << 20, &text, &len, err))
        return -1;
    // First on a copy, to learn which inputs moved and how much room they need.
    char *block = malloc(len + 1);
    if (block) memcpy(block, text, len + 1);
    MovedInputs mv = {0};
    int rc = block ? cli_apply_settings(path, block, len, opts, n_opts, per_invocation, err)
                   : error_set(err, "out of memory");
    if (rc == 0) moved_inputs_find(&mv, opts, n_opts, resume_dir);
    free(block);
    block = rc == 0 ? malloc(len + 1 + mv.total) : NULL;
    if (rc == 0 && !block) rc = error_set(err, "out of memory");
    if (rc == 0) {
        memcpy(block, text, len + 1);
        rc = cli_apply_settings(path, block, len, opts, n_opts, per_invocation, err);
        char *at = block + len + 1;
        for (int i = 0; rc == 0 && i < n_opts; i++) {
            recorded[i] = mv.candidate[i] ? *(const char **)opts[i].dest : NULL;
            if (!mv.candidate[i]) continue;
            strcpy(at, mv.candidate[i]);
            *(const char **)opts[i].dest = at;
            at += strlen(at) + 1;
        }
    }
    moved_inputs_free(&mv);
    free(text);
    if (rc) free(block);
    else *storage = block;
    return rc;
}

void run_settings_defaults(RunSettings *r) {
    memset(r, 0, sizeof *r);
    r->seed = 1337, r->weight_decay = 0.1f, r->grad_clip = 1.0f, r->min_lr_frac = 0.1f;
}

RunFolderRequest run_folder_request(const RunSettings *r, const char *const *inputs, int n_inputs) {
    return (RunFolderRequest){.dir = r->out, .resuming = r->resume != NULL, .force = r->force, .resumable = 1,
                              .inputs = inputs, .n_inputs = n_inputs};
}

RunLoop run_loop(const char *prog, const RunSettings *r, const char *metrics_header, const CliOption *opts, int n_opts,
                 const RunFolderRequest *folder) {
    return (RunLoop){prog, r->out, r->resume != NULL, (uint64_t)r->seed, r->steps, r->save_every, r->stop_after,
                     metrics_header, opts, n_opts, .folder = folder};
}

int run_training_options(CliOption *opts, RunSettings *r, const RunOptionHelp *help, const CliOption *inputs,
                         int n_inputs, int schedule, const CliOption *own, int n_own) {
    const CliOption head[] = {
        {"out", CLI_STRING | CLI_REQUIRED, &r->out, 0, 0, help->out},
        {"resume", CLI_STRING, &r->resume, 0, 0, "continue the run in this folder, with its config.txt"},
        {"force", CLI_FLAG, &r->force, 0, 0, "start afresh over another run's files in --out, removing them"},
        {"seed", CLI_INT, &r->seed, 0, 2147483647, help->seed},
        {"threads", CLI_INT, &r->threads, 0, 256, "threads (0: all cores)"},
        {"steps", CLI_INT, &r->steps, 1, 10000000, help->steps ? help->steps : "optimiser steps"},
        {"batch", CLI_INT, &r->batch, 1, help->batch_max ? help->batch_max : 1024, help->batch},
    };
    const CliOption optimiser[] = {
        {"lr", CLI_FLOAT, &r->lr, 1e-7, 1, "peak learning rate"},
        {"min-lr-frac", CLI_FLOAT, &r->min_lr_frac, 0, 1, "final learning rate as a fraction of the peak"},
        {"warmup", CLI_INT, &r->warmup, 0, 10000000, "linear warm-up steps"},
        {"weight-decay", CLI_FLOAT, &r->weight_decay, 0, 10, "AdamW weight decay (block matrices only)"},
        {"grad-clip", CLI_FLOAT, &r->grad_clip, 0, 1e6, "global gradient-norm limit (0: off)"},
    };
    const CliOption tail[] = {
        {"save-every", CLI_INT, &r->save_every, 1, 10000000,
         help->save_every ? help->save_every : "steps between checkpoints"},
        {"stop-after", CLI_INT, &r->stop_after, 0, 10000000,
         help->stop_after ? help->stop_after : "stop (as on SIGINT) after this step, exit status 3; 0: off"},
    };
    int n = 0;
    const char *config = help->config ? help->config : "defaults: smoke, tiny or small (the shape comes from --init)";
    opts[n++] = (CliOption){"config", CLI_STRING, &r->config, 0, 0, config};
    for (int i = 0; i < n_inputs; i++) opts[n++] = inputs[i];
    for (size_t i = 0; i < sizeof head / sizeof *head; i++) opts[n++] = head[i];
    for (size_t i = 0; schedule && i < sizeof optimiser / sizeof *optimiser; i++) opts[n++] = optimiser[i];
    for (int i = 0; i < n_own; i++) opts[n++] = own[i];
    for (size_t i = 0; i < sizeof tail / sizeof *tail; i++) opts[n++] = tail[i];
    return n;
}

int run_parse_options(const char *prog, const char *summary, const CliOption *opts, int n_opts,
                      int argc, char **argv, const char *resume_dir,
                      int (*apply_config)(void *ctx, const char *name, Error *err), void *ctx,
                      char **settings_storage,
                      Error *err) {
    *settings_storage = NULL;
    const char *config = cli_peek(argc, argv, "config");
    if (config && apply_config(ctx, config, err)) return ERR_USAGE; // a bad --config value
    const char *recorded[RUN_MAX_OPTIONS] = {0};
    const char *relocated[RUN_MAX_OPTIONS] = {0};
    if (resume_dir) {
        if (load_run_settings(resume_dir, opts, n_opts, settings_storage, recorded, err)) return -1;
        for (int i = 0; i < n_opts; i++)
            if (recorded[i]) relocated[i] = *(const char **)opts[i].dest;
        resume_sets_out(opts, n_opts, resume_dir);
    }
    int rc = cli_parse(prog, opts, n_opts, argc, argv, NULL, err);
    if (rc == CLI_HELP) cli_print_help(stdout, prog, summary, opts, n_opts);
    if (rc == 0) rc = cli_check_recordable(opts, n_opts, err);
    // Said only for the inputs the command line did not name again.
    for (int i = 0; rc == 0 && i < n_opts; i++)
        if (relocated[i] && *(const char **)opts[i].dest == relocated[i])
            printf("%s: --%s %s is gone; using %s, at the same place relative to the moved run folder\n", prog,
                   opts[i].name, recorded[i], relocated[i]);
    return rc;
}

int run_write_config(const char *out_dir, const CliOption *opts, int n_opts, Error *err) {
    if (make_dirs(out_dir, err)) return -1;
    char path[4096];
    if (path_join(path, sizeof path, out_dir, "config.txt", err)) return -1;
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) return error_set(err, "out of memory");
    if (cli_check_recordable(opts, n_opts, err)) {
        fclose(mem);
        free(text);
        return -1;
    }
    // --force belongs to one invocation: a resumed run must not inherit it.
    // Paths are recorded absolute, so that --resume works from any folder.
    int rc = 0;
    for (int i = 0; i < n_opts && rc == 0; i++) {
        if (!strcmp(opts[i].name, "force")) continue;
        const char *value = cli_type(&opts[i]) == CLI_STRING ? *(const char **)opts[i].dest : NULL;
        if (!is_path_option(&opts[i]) || !value || !value[0]) {
            cli_write_settings(mem, &opts[i], 1);
            continue;
        }
        char *absolute = path_absolute(value);
        CliOption as_recorded = opts[i];
        as_recorded.dest = &absolute;
        if (absolute) cli_write_settings(mem, &as_recorded, 1);
        else rc = error_set(err, "out of memory");
        free(absolute);
    }
    fclose(mem);
    if (rc) {
        free(text);
        return -1;
    }
    rc = write_file_atomic(path, text, len, err);
    free(text);
    return rc;
}

// Copies a checkpoint's parameters into m and refuses a non-finite one:
// such a model samples and scores NaN while every checksum holds.
static int install_params(GPT *m, const char *path, float *params, Error *err) {
    const char *bad = gpt_first_nonfinite(m, params);
    if (bad) {
        free(params);
        return error_set(err, "%s: parameter tensor %s holds a NaN or infinity; the checkpoint is unusable",
                         path, bad);
    }
    memcpy(m->params_memory, params, m->num_params * sizeof(float));
    free(params);
    return 0;
}

int run_load_model(GPT *m, CkptHeader *h, const char *path, unsigned kinds_mask,
                   const CkptTokenizer *tok, Error *err) {
    float *params = NULL;
    if (ckpt_load(path, h, &params, err)) return -1;
    if (!(kinds_mask & (1u << h->kind))) {
        char want[128] = "";
        for (unsigned k = CKPT_LM; k <= CKPT_POLICY; k++) {
            if (!(kinds_mask & (1u << k))) continue;
            if (want[0]) strncat(want, " or ", sizeof want - strlen(want) - 1);
            strncat(want, ckpt_kind_name((CkptKind)k), sizeof want - strlen(want) - 1);
        }
        free(params);
        return error_set(err, "%s: is a %s checkpoint; expected a %s", path,
                         ckpt_kind_name((CkptKind)h->kind), want);
    }
    if ((tok && ckpt_check_tokenizer(path, h, tok, err)) || gpt_create(m, &h->config, err)) {
        free(params);
        return -1;
    }
    return install_params(m, path, params, err);
}

// This build runs every stage as one process; the state has room for more.
#define RUN_RANKS 1

// A checkpoint and its training state are two files, so no single rename can
// replace both. The state is written first as model.opt.next, then model.bin,
// then model.opt.next is renamed over model.opt: after a crash at any point,
// one of model.opt and model.opt.next belongs to the model.bin on disk, and
// run_resume picks it by fingerprint.
int run_save(const RunLoop *loop, GPT *m, CkptHeader *h, uint64_t step, const Rng *rng,
             const TrainStageValues *stage, Error *err) {
    char path[4096], state_path[4200], next_path[4300];
    if (path_join(path, sizeof path, loop->out, "model.bin", err)) return -1;
    if (trainstate_path_for(state_path, sizeof state_path, path, err)) return -1;
    snprintf(next_path, sizeof next_path, "%s.next", state_path);
    const char *bad = gpt_first_nonfinite(m, m->params_memory);
    if (bad)
        return error_set(err, "%s: not written: parameter tensor %s holds a NaN or infinity at step %llu; the "
                         "checkpoint already there is left as it was", path, bad, (unsigned long long)step);
    h->step = step;
    CkptHeader next = *h; // the fingerprint the new model.bin will have
    if (ckpt_save_prepare(&next, m->params_memory, err)) return -1;
    TrainState s = {.ckpt_fp = next.fingerprint, .n_ranks = RUN_RANKS, .step = step, .rng_state = rng->state,
                    .shape = m->config,
                    .inputs = {loop->tokenizer.fingerprint, loop->ref.fp, loop->rm.fp}};
    if (stage) s.stage = *stage;
    if (trainstate_save(next_path, &s, m->m_memory, m->v_memory, err)) return -1;
    if (ckpt_save(path, h, m->params_memory, err)) return -1;
    if (rename(next_path, state_path) != 0)
        return error_set(err, "%s: cannot rename into place: %s", state_path, strerror(errno));
    return 0;
}

// A resumed run must read what the run read before: one file, by fingerprint.
static int check_same_input(const char *state_path, const char *what, uint32_t recorded, const char *given_path,
                            uint32_t given, Error *err) {
    if (recorded == given) return 0;
    if (!given_path)
        return error_set(err, "%s: the run was trained with %s %08" PRIx32 ", but none is given", state_path,
                         what, recorded);
    return error_set(err, "%s: the run was trained with %s %08" PRIx32 ", but %s is %08" PRIx32 "; resume with "
                     "the file the run started with, or start the run again", state_path, what, recorded,
                     given_path, given);
}

// Checks a loaded state (from state_path) against the checkpoint beside it
// (header h) and the run that resumes it.
static int check_state_for_run(const char *state_path, const TrainState *s, const CkptHeader *h,
                               const RunLoop *loop, Error *err) {
    if (s->n_ranks != RUN_RANKS)
        return error_set(err, "%s: the run was split over %" PRIu32 " processes; this build runs one",
                         state_path, s->n_ranks);
    if (s->step > (uint64_t)loop->steps)
        return error_set(err, "%s: step %" PRIu64 " is beyond this run's --steps %ld", state_path, s->step,
                         loop->steps);
    if (s->step != h->step || memcmp(&s->shape, &h->config, sizeof s->shape) != 0)
        return error_set(err, "%s: step %" PRIu64 " or model shape differs from its checkpoint's (step %" PRIu64
                         ")", state_path, s->step, h->step);
    const TrainInputs *in = &s->inputs;
    if (check_same_input(state_path, "tokenizer", in->tokenizer_fp, loop->tokenizer.path,
                         loop->tokenizer.fingerprint, err) ||
        check_same_input(state_path, "reference model", in->ref_fp, loop->ref.path, loop->ref.fp, err) ||
        check_same_input(state_path, "reward model", in->rm_fp, loop->rm.path, loop->rm.fp, err))
        return -1;
    return 0;
}

// Loads model.opt, or model.opt.next when model.opt does not match (after a
// crash between the two writes of run_save); *used names the one loaded.
static int load_state_pair(const char *state_path, const char *next_path, const CkptHeader *h, GPT *m,
                           TrainState *s, const char **used, Error *err) {
    Error first;
    *used = state_path;
    if (trainstate_load(state_path, h->fingerprint, s, m->m_memory, m->v_memory, m->num_params, &first) == 0)
        return 0;
    if (!file_exists(next_path)) {
        *err = first;
        return -1;
    }
    *used = next_path;
    return trainstate_load(next_path, h->fingerprint, s, m->m_memory, m->v_memory, m->num_params, err);
}

int run_resume(const RunLoop *loop, GPT *m, CkptHeader *h, uint64_t *step, Rng *rng,
               TrainStageValues *stage, Error *err) {
    char path[4096], state_path[4200], next_path[4300];
    if (path_join(path, sizeof path, loop->out, "model.bin", err)) return -1;
    if (trainstate_path_for(state_path, sizeof state_path, path, err)) return -1;
    snprintf(next_path, sizeof next_path, "%s.next", state_path);
    float *params = NULL;
    if (ckpt_load(path, h, &params, err)) return -1;
    if (h->num_params != m->num_params ||
        memcmp(&h->config, &m->config, sizeof h->config) != 0) {
        free(params);
        return error_set(err, "%s: model shape differs from this run's configuration", path);
    }
    if (loop->tokenizer.path && ckpt_check_tokenizer(path, h, &loop->tokenizer, err)) {
        free(params);
        return -1;
    }
    if (install_params(m, path, params, err)) return -1;
    TrainState s;
    const char *used;
    if (load_state_pair(state_path, next_path, h, m, &s, &used, err) ||
        check_state_for_run(used, &s, h, loop, err))
        return -1;
    *step = s.step;
    rng->state = s.rng_state;
    if (stage) *stage = s.stage;
    return 0;
}

int run_truncate_logs(const char *out_dir, uint64_t step, Error *err) {
    char path[4096];
    if (path_join(path, sizeof path, out_dir, "samples.txt", err)) return -1;
    return log_truncate_after_step(path, step, err);
}

int run_begin(const RunLoop *loop, GPT *m, CkptHeader *h, uint64_t *step, Rng *rng, TrainStageValues *stage,
              CsvWriter *csv, Error *err) {
    rng_seed(rng, loop->seed);
    *step = 0;
    RunFolderRequest bare = {.dir = loop->out, .resuming = loop->resuming, .resumable = 1};
    RunFolder folder;
    // The lock is left held on purpose: it must last as long as the process,
    // and the kernel releases it however the process ends.
    if (run_folder_claim(&folder, loop->folder ? loop->folder : &bare, err)) return -1;
    char path[4096];
    if (loop->resuming) {
        if (run_resume(loop, m, h, step, rng, stage, err)) return -1;
        int reported = 1;
        if (loop->final_report) {
            if (path_join(path, sizeof path, loop->out, loop->final_report, err)) return -1;
            reported = file_exists(path);
        }
        if (*step >= (uint64_t)loop->steps && reported) {
            printf("%s: %s is complete (step %llu of %ld); nothing to do\n", loop->prog, loop->out,
                   (unsigned long long)*step, loop->steps);
            return 1;
        }
        printf("%s: resuming %s at step %llu of %ld\n", loop->prog, loop->out, (unsigned long long)*step, loop->steps);
        // A report left from before a longer run was asked for (--steps raised) is not this run's.
        if (loop->final_report && reported && unlink(path) != 0)
            return error_set(err, "%s: cannot remove the report of the run's earlier end: %s", path, strerror(errno));
    }
    if (loop->resuming && run_truncate_logs(loop->out, *step, err)) return -1;
    if (run_write_config(loop->out, loop->opts, loop->n_opts, err) ||
        path_join(path, sizeof path, loop->out, "metrics.csv", err))
        return -1;
    if (loop->resuming && csv_truncate_after(path, (double)*step, err)) return -1;
    if (csv_open(csv, path, loop->metrics_header, loop->resuming, err)) return -1;
    run_install_signal_handlers();
    return 0;
}

int run_after_step(const RunLoop *loop, GPT *m, CkptHeader *h, uint64_t step, const Rng *rng,
                   const TrainStageValues *stage, Error *err) {
    long s = (long)step;
    int signalled = run_stop_requested(), last = s >= loop->steps;
    int asked = loop->stop_after > 0 && s == loop->stop_after && !last;
    if ((s % loop->save_every == 0 || last || asked || signalled) && run_save(loop, m, h, step, rng, stage, err))
        return -1;
    if (!signalled && !asked) return 0;
    // The folder absolute, so that the command works from any folder.
    char *folder = path_absolute(loop->out);
    const char *shown = folder ? folder : loop->out;
    printf("\n%s: %s after step %ld; checkpoint in %s (continue with --resume %s)\n", loop->prog,
           signalled ? "interrupted" : "stopped as asked", s, shown, shown);
    free(folder);
    return 1;
}

float run_optimizer_step(const RunLoop *loop, GPT *m, const AdamWConfig *opt, float loss, float grad_clip, float lr,
                         uint64_t step, Error *err) {
    // Clipping is folded into the update (adamw_update_scaled): the same
    // arithmetic as gpt_clip_grad_norm then adamw_update, one pass fewer.
    float norm = gpt_grad_norm(m);
    if (!isfinite(loss))
        return (float)error_set(err, "the loss is %g at step %llu; training stops and the last checkpoint in %s is "
                                "left as it was", loss, (unsigned long long)step + 1, loop->out);
    if (!isfinite(norm)) {
        const char *bad = gpt_first_nonfinite(m, m->grads_memory);
        return (float)error_set(err, "the gradient of %s holds a NaN or infinity at step %llu; training stops and the "
                                "last checkpoint in %s is left as it was", bad ? bad : "a parameter",
                                (unsigned long long)step + 1, loop->out);
    }
    adamw_update_scaled(m, opt, lr, (long)step + 1, gpt_clip_scale(norm, grad_clip));
    return norm;
}

// The one piece of global state: a signal handler can reach nothing else.
static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int sig) {
    stop_signal = sig;
}

void run_install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int run_stop_requested(void) {
    return stop_signal;
}
