#include "ppo/heldout_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/jsonl.h"
#include "model/run.h"

const char HELDOUT_CSV[] = "heldout.csv";
const char HELDOUT_REPORT[] = "heldout.json";

int heldout_log_alloc(HeldoutLog *l, const Heldout *h, int max_new, Error *err) {
    memset(l, 0, sizeof *l);
    l->h = *h, l->max_new = max_new;
    int n = h->n_prompts * h->samples;
    if (rollout_alloc(&l->r, n, max_new, h->rm->config.max_seq_len, err)) return -1;
    l->parts = calloc((size_t)n, sizeof *l->parts);
    return l->parts ? 0 : error_set(err, "out of memory");
}

void heldout_log_free(HeldoutLog *l) {
    rollout_free(&l->r);
    free(l->parts);
    csv_close(&l->csv);
    memset(l, 0, sizeof *l);
}

int heldout_log_open(HeldoutLog *l, const char *prog, const char *dir, uint64_t step, Error *err) {
    char path[4096];
    l->prog = prog, l->dir = dir;
    if (path_join(path, sizeof path, dir, HELDOUT_CSV, err)) return -1;
    if (step > 0 && csv_truncate_after(path, (double)step - 0.5, err)) return -1;
    return csv_open(&l->csv, path, HELDOUT_CSV_HEADER, step > 0, err);
}

// The held-out sample of `from` (the policy or the reference), read and
// summed up into f. Returns 0, 1 when a signal stopped it, -1 on error.
static int evaluate_model(HeldoutLog *l, GPT *from, HeldoutFigures *f, Error *err) {
    heldout_sample(&l->h, &l->r, from);
    if (run_stop_requested()) return 1;
    if (heldout_read(&l->h, &l->r, l->parts, err)) return -1;
    *f = heldout_figures(&l->r, l->parts, l->h.samples, from == l->h.ref);
    return run_stop_requested() ? 1 : 0;
}

int heldout_log_row(HeldoutLog *l, long step, Error *err) {
    HeldoutFigures f;
    int rc = evaluate_model(l, l->h.policy, &f, err);
    if (rc) return rc;
    heldout_csv_row(&l->csv, step, &f);
    return 0;
}

// DIR/heldout.json: the held-out figures and what they measure.
static int write_report(const HeldoutLog *l, long step, const HeldoutFigures *pol, const HeldoutFigures *ref,
                        Error *err) {
    cJSON *o = cJSON_CreateObject();
    jsonl_add_number(o, "step", step);
    jsonl_add_number(o, "prompts", l->h.n_prompts);
    jsonl_add_number(o, "samples_per_prompt", l->h.samples);
    jsonl_add_number(o, "seed", (double)l->h.seed);
    jsonl_add_number(o, "temperature", l->h.temperature);
    jsonl_add_number(o, "max_new", l->max_new);
    jsonl_add_number(o, "batch", l->h.kv->slots);
    cJSON_AddItemToObject(o, "policy", heldout_figures_json(pol));
    cJSON_AddItemToObject(o, "reference", heldout_figures_json(ref));
    char *text = cJSON_Print(o), path[4096];
    cJSON_Delete(o);
    if (!text) return error_set(err, "out of memory writing %s/%s", l->dir, HELDOUT_REPORT);
    int rc = path_join(path, sizeof path, l->dir, HELDOUT_REPORT, err) ||
             write_file_atomic(path, text, strlen(text), err);
    cJSON_free(text);
    return rc ? -1 : 0;
}

static void print_figures(const char *prog, const HeldoutFigures *pol, const HeldoutFigures *ref) {
    printf("%s: held-out gold score %.3f ± %.3f (reference %.3f ± %.3f)\n", prog, pol->gold, pol->gold_se, ref->gold,
           ref->gold_se);
    printf("%s: held-out reward-model score %.3f ± %.3f (reference %.3f ± %.3f)\n", prog, pol->score, pol->score_se,
           ref->score, ref->score_se);
    printf("%s: held-out KL(policy || reference) %.3f ± %.3f nats per response (full vocabulary; k1 %.3f); "
           "end-token rate %.1f%% (reference %.1f%%)\n", prog, pol->kl_full, pol->kl_full_se, pol->kl,
           100 * pol->end_rate, 100 * ref->end_rate);
    printf("%s: the reward model orders pairs of the policy's samples as gold does %.1f%% ± %.1f of the time "
           "(the reference's: %.1f%% ± %.1f)\n", prog, 100 * pol->agreement, 100 * pol->agreement_se,
           100 * ref->agreement, 100 * ref->agreement_se);
}

int heldout_log_finish(HeldoutLog *l, long step, Error *err) {
    HeldoutFigures pol, ref;
    const Heldout *h = &l->h;
    // What the figures measure, in evaluate's terms: evaluate --samples N
    // --n-prompts P --seed SEED with these settings draws these responses.
    printf("%s: evaluating on %d held-out prompts, %d samples each (seed %llu, temperature %g, max-new %d, "
           "batch %d)...\n", l->prog, h->n_prompts, h->samples, (unsigned long long)h->seed, h->temperature,
           l->max_new, h->kv->slots);
    fflush(stdout); // a user (or a test) waiting to interrupt the evaluation sees it start
    int rc = evaluate_model(l, h->policy, &pol, err);
    if (rc == 0) rc = evaluate_model(l, h->ref, &ref, err);
    if (rc < 0) return -1;
    if (rc > 0) {
        printf("\n%s: interrupted during the held-out evaluation; %s/model.bin is complete (step %ld); run the "
               "evaluation alone with --resume %s\n", l->prog, l->dir, step, l->dir);
        return 1;
    }
    print_figures(l->prog, &pol, &ref);
    heldout_csv_row(&l->csv, step, &pol);
    return write_report(l, step, &pol, &ref, err);
}
