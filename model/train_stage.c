#include "model/train_stage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/progress.h"

int train_stage_due(uint64_t step, long every, long steps) {
    return (every > 0 && step % (uint64_t)every == 0) || (long)step == steps;
}

// metrics.csv's columns: the step, with a schedule the tokens so far, the
// rate and the loss, the stage's own, with a schedule the gradient norm, then
// the speed and the time.
static int metrics_header(char *out, size_t n, const TrainStage *st, int *n_cols, Error *err) {
    int len = snprintf(out, n, "step,%s%s%s,tok_per_s,elapsed_s", st->schedule ? "tokens,lr,loss," : "",
                       st->columns, st->schedule ? ",grad_norm" : "");
    if (len < 0 || (size_t)len >= n) return error_set(err, "%s: metrics columns too long", st->prog);
    *n_cols = 1;
    for (const char *c = st->columns; *c; c++) *n_cols += *c == ',';
    if (*n_cols > TRAIN_STAGE_MAX_COLUMNS) return error_set(err, "%s: more than %d metrics columns", st->prog,
                                                            TRAIN_STAGE_MAX_COLUMNS);
    return 0;
}

// The tokens column of a resumed run carries on from its last row at or
// before `step` (run_begin has dropped the later ones): 0 when there is none.
static double tokens_before(const RunLoop *loop, uint64_t step) {
    char path[4096];
    Error err;
    unsigned char *text;
    size_t len;
    if (step == 0 || path_join(path, sizeof path, loop->out, "metrics.csv", &err) ||
        read_file(path, (size_t)1 << 30, &text, &len, &err))
        return 0;
    double tokens = 0;
    const char *line = memchr(text, '\n', len); // past the header
    while (line && (size_t)(line + 1 - (const char *)text) < len) {
        line++;
        char *end;
        double s = strtod(line, &end);
        if (*end == ',' && s <= (double)step) tokens = strtod(end + 1, NULL); // tokens is the second column
        line = memchr(line, '\n', len - (size_t)(line - (const char *)text));
    }
    free(text);
    return tokens;
}

typedef struct {
    const TrainStage *st;
    const TrainTarget *t;
    RunLoop *loop;
    CsvWriter csv;
    Rng rng;
    int n_cols;
} Driver;

// The metrics row of a step: the driver's columns around the stage's.
static void log_step(Driver *d, uint64_t step, const StepReport *rep, double tokens, double elapsed) {
    double row[TRAIN_STAGE_MAX_COLUMNS + 8];
    int k = 0;
    row[k++] = (double)step;
    if (d->st->schedule) row[k++] = tokens, row[k++] = rep->lr, row[k++] = rep->loss;
    for (int i = 0; i < d->n_cols; i++) row[k++] = rep->cols[i];
    if (d->st->schedule) row[k++] = rep->grad_norm;
    row[k++] = rep->tok_per_s, row[k++] = elapsed;
    csv_row(&d->csv, row);
}

// One step: the stage's loss and gradient, the optimiser step, the stage's
// evaluation, the row, the progress line, the checkpoint. Returns 0 to go on,
// 1 to stop (a signal or --stop-after), -1 on error.
static int drive_step(Driver *d, uint64_t *step, Progress *prog, const AdamWConfig *opt, double *tokens,
                      double t_start, Error *err) {
    const TrainStage *st = d->st;
    const RunSettings *r = st->run;
    StepReport rep = {.loss = NAN, .lr = NAN, .grad_norm = NAN};
    for (int i = 0; i < TRAIN_STAGE_MAX_COLUMNS; i++) rep.cols[i] = NAN;
    double t0 = now_seconds();
    if (st->step(st->state, *step, &d->rng, &rep, err)) return -1;
    if (st->schedule) {
        rep.lr = lr_warmup_cosine((long)*step, r->warmup, r->steps, r->lr, r->lr * r->min_lr_frac);
        rep.grad_norm = run_optimizer_step(d->loop, d->t->model, opt, rep.loss, r->grad_clip, rep.lr, *step, err);
        if (rep.grad_norm < 0) return -1;
    }
    (*step)++;
    double now = now_seconds(); // evaluation time does not count against tokens/s
    rep.tok_per_s = rep.tokens / (now - t0);
    *tokens += rep.tokens;
    if (st->after && st->after(st->state, *step, &rep, err)) return -1;
    log_step(d, *step, &rep, *tokens, now - t_start);
    progress_update(prog, (long)*step, "%s", rep.status);
    int rc = run_after_step(d->loop, d->t->model, d->t->header, *step, &d->rng, d->t->values, err);
    return rc > 0 ? 1 : rc;
}

// Returns 0 when the run completed, 1 when it stopped before the end with a
// checkpoint to resume from (SIGINT, SIGTERM, --stop-after), -1 on error.
static int drive(const TrainStage *st, const TrainTarget *t, const CliOption *opts, int n_opts,
                 const RunFolderRequest *folder, Error *err) {
    char header[4096];
    Driver d = {.st = st, .t = t};
    if (metrics_header(header, sizeof header, st, &d.n_cols, err)) return -1;
    RunLoop loop = run_loop(st->prog, st->run, header, opts, n_opts, folder);
    loop.tokenizer = t->tokenizer, loop.ref = t->ref, loop.rm = t->rm, loop.final_report = t->final_report;
    d.loop = &loop;
    uint64_t step;
    int rc = run_begin(&loop, t->model, t->header, &step, &d.rng, t->values, &d.csv, err);
    if (rc) return rc < 0 ? -1 : 0; // 1: the run was already complete
    if (st->begin) rc = st->begin(st->state, step, err);
    // Interrupted: run_after_step sees the signal, saves this step and says how to resume.
    if (rc > 0) rc = run_after_step(&loop, t->model, t->header, step, &d.rng, t->values, err);
    if (rc) {
        csv_close(&d.csv);
        return rc > 0 ? 1 : -1;
    }
    Progress prog;
    progress_init(&prog, stdout, st->prog, (long)step, st->run->steps, t->log_every);
    double t_start = now_seconds(), tokens = st->schedule ? tokens_before(&loop, step) : 0;
    AdamWConfig opt = adamw_defaults();
    opt.weight_decay = st->run->weight_decay;
    while (rc == 0 && (long)step < st->run->steps) rc = drive_step(&d, &step, &prog, &opt, &tokens, t_start, err);
    csv_close(&d.csv);
    if (rc) return rc;
    progress_done(&prog);
    return st->finish ? st->finish(st->state, now_seconds() - t_start, err) : 0;
}

// The values of the stage's input options: the files the run-folder guard
// keeps out of the run folder.
static RunFolderRequest folder_request(const TrainStage *st, const char **inputs) {
    for (int i = 0; i < st->n_inputs; i++) inputs[i] = *(const char *const *)st->inputs[i].dest;
    return run_folder_request(st->run, inputs, st->n_inputs);
}

int train_stage_main(const TrainStage *st, int argc, char **argv) {
    Error err;
    // The defaults every stage starts from: the shared ones, then its tiny config.
    run_settings_defaults(st->run);
    if (st->apply_config(st->settings, "tiny", &err)) error_exit(st->prog, &err);
    CliOption opts[RUN_MAX_OPTIONS];
    int n_opts = run_training_options(opts, st->run, &st->help, st->inputs, st->n_inputs, st->schedule, st->own,
                                      st->n_own);
    char *stored = NULL;
    int rc = run_parse_options(st->prog, st->summary, opts, n_opts, argc, argv, cli_peek(argc, argv, "resume"),
                               st->apply_config, st->settings, &stored, &err);
    if (rc > 0) {
        free(stored);
        return 0; // --help or --version
    }
    if (rc == 0 && st->run->resume) st->run->out = st->run->resume;
    if (rc == 0 && st->check) rc = st->check(st->settings, &err);
    const char *inputs[RUN_MAX_OPTIONS];
    RunFolderRequest folder = folder_request(st, inputs);
    if (rc == 0 && run_folder_check(&folder, &err)) rc = -1; // before loading anything
    if (rc) {
        free(stored);
        error_exit_rc(st->prog, rc, &err);
    }
    st->run->threads = run_set_threads(st->run->threads); // config.txt records the count used
    TrainTarget t = {0};
    int outcome = st->setup(st->state, st->settings, &t, &err) ? -1 : drive(st, &t, opts, n_opts, &folder, &err);
    st->free(st->state);
    free(stored);
    if (outcome < 0) error_exit(st->prog, &err);
    return stdout_finish(st->prog, outcome ? EXIT_STOPPED : 0);
}
