#include "ppo/heldout.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonl.h"
#include "data/annotator_json.h"
#include "data/chat_template.h"
#include "ppo/ppo_core.h"

void heldout_sample(const Heldout *h, Rollout *r, const GPT *from) {
    int eot = tokenizer_special(h->tok, TOK_ENDOFTEXT);
    rollout_sample_heldout(r, h->n_prompts, h->samples, from, h->kv, h->prompts, h->temperature, eot, h->seed);
}

int heldout_read(const Heldout *h, Rollout *r, AnnotatorParts *parts, Error *err) {
    if (rollout_decode(r, h->prompts, h->tok, h->ann, parts, err)) return -1;
    rollout_score(r, h->prompts, h->policy, h->ref, h->rm, h->rm_header, h->temperature,
                  tokenizer_special(h->tok, TOK_PAD), h->sc);
    return 0;
}

static void mean_se_double(const double *x, int n, double *mean, double *se) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += x[i], ss += x[i] * x[i];
    *mean = n ? s / n : NAN;
    double var = n > 1 ? (ss - s * s / n) / (n - 1) : 0;
    *se = n > 1 ? sqrt(var > 0 ? var / n : 0) : NAN;
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

// Distinct n-grams (n = 1, 2) over all responses, the end token excluded, /
// all n-grams.
static double distinct_ngrams(const Rollout *r, int n) {
    uint64_t *keys = malloc((size_t)r->n * r->max_new * sizeof(uint64_t) + 1);
    if (!keys) return NAN;
    size_t count = 0;
    for (int i = 0; i < r->n; i++) {
        const int *t = r->resp + (size_t)i * r->max_new;
        int L = r->resp_len[i] - (r->ended[i] ? 1 : 0);
        for (int k = 0; k + n <= L; k++) keys[count++] = n == 2 ? (uint64_t)t[k] << 21 | (uint64_t)t[k + 1] : (uint64_t)t[k];
    }
    qsort(keys, count, sizeof *keys, compare_u64);
    size_t distinct = 0;
    for (size_t i = 0; i < count; i++) distinct += i == 0 || keys[i] != keys[i - 1];
    free(keys);
    return count ? (double)distinct / count : NAN;
}

// The reward model's agreement with gold on pairs of samples of one prompt
// (rows are prompt-major, `samples` per prompt).
static void agreement(const Rollout *r, int samples, HeldoutFigures *f) {
    int prompts = r->n / samples, used = 0;
    double *rate = malloc((size_t)(prompts > 0 ? prompts : 1) * sizeof *rate);
    f->agreement_pairs = 0;
    for (int p = 0; rate && p < prompts; p++) {
        double agree = 0;
        int pairs = 0;
        for (int a = p * samples; a < (p + 1) * samples; a++)
            for (int b = a + 1; b < (p + 1) * samples; b++) {
                double dg = (double)r->gold[a] - r->gold[b], ds = (double)r->score[a] - r->score[b];
                if (dg == 0) continue; // gold has no order to agree with
                agree += ds == 0 ? 0.5 : (ds > 0) == (dg > 0);
                pairs++;
            }
        if (pairs) rate[used++] = agree / pairs;
        f->agreement_pairs += pairs;
    }
    mean_se_double(rate, used, &f->agreement, &f->agreement_se);
    free(rate);
}

HeldoutFigures heldout_figures(const Rollout *r, const AnnotatorParts *parts, int samples, int of_reference) {
    HeldoutFigures f = {.n = r->n, .samples = samples};
    mean_se(r->gold, r->n, &f.gold, &f.gold_se);
    mean_se(r->score, r->n, &f.score, &f.score_se);
    double *kl = malloc((size_t)(r->n > 0 ? r->n : 1) * sizeof *kl);
    for (int i = 0; kl && i < r->n; i++) kl[i] = mean_sequence_sum(r->kl_full + (size_t)i * r->max_new, &r->resp_len[i], 1, 0);
    if (kl) mean_se_double(kl, r->n, &f.kl_full, &f.kl_full_se);
    free(kl);
    kl_estimates(r->logp, r->ref_logp, r->resp_len, r->n, r->max_new, &f.kl, &f.kl_k3);
    if (of_reference) f.kl_full = f.kl_full_se = f.kl = f.kl_k3 = 0;
    double nll = 0, tokens = 0, ended = 0;
    for (int i = 0; i < r->n; i++) {
        for (int k = 0; k < r->resp_len[i]; k++) nll -= r->ref_logp[(size_t)i * r->max_new + k], tokens++;
        ended += r->ended[i];
    }
    f.ppl_ref = exp(nll / tokens);
    f.distinct1 = distinct_ngrams(r, 1), f.distinct2 = distinct_ngrams(r, 2);
    f.length = tokens / r->n, f.end_rate = ended / r->n;
    agreement(r, samples, &f);
    f.valence = f.topic = f.fluency = f.length_credit = f.repetition = parts ? 0 : NAN;
    for (int i = 0; parts && i < r->n; i++) {
        f.valence += parts[i].valence / r->n, f.topic += parts[i].topic / r->n;
        f.fluency += parts[i].fluency / r->n, f.length_credit += parts[i].length / r->n;
        f.repetition += parts[i].repetition / r->n;
    }
    return f;
}

cJSON *heldout_figures_json(const HeldoutFigures *f) {
    cJSON *o = cJSON_CreateObject();
    const char *names[] = {"gold", "gold_se", "rm_score", "rm_score_se", "kl_full", "kl_full_se", "kl", "kl_k3",
                           "perplexity_under_ref", "distinct_1", "distinct_2", "mean_length", "end_rate",
                           "rm_gold_agreement", "rm_gold_agreement_se", "rm_gold_pairs"};
    double v[] = {f->gold, f->gold_se, f->score, f->score_se, f->kl_full, f->kl_full_se, f->kl, f->kl_k3, f->ppl_ref,
                  f->distinct1, f->distinct2, f->length, f->end_rate, f->agreement, f->agreement_se,
                  (double)f->agreement_pairs};
    for (size_t i = 0; o && i < sizeof v / sizeof v[0]; i++) jsonl_add_number(o, names[i], v[i]);
    cJSON *parts = o ? cJSON_AddObjectToObject(o, "gold_parts") : NULL;
    const char *part_names[] = {"valence", "topic", "fluency", "length", "repetition"};
    double pv[] = {f->valence, f->topic, f->fluency, f->length_credit, f->repetition};
    for (size_t i = 0; parts && i < sizeof pv / sizeof pv[0]; i++) jsonl_add_number(parts, part_names[i], pv[i]);
    return o;
}

const char HELDOUT_CSV_HEADER[] = "step,gold,gold_se,rm_score,rm_score_se,kl_full,kl_full_se,kl,kl_k3,mean_length,"
                                  "end_rate,rm_gold_agreement,rm_gold_agreement_se,distinct_1,distinct_2";

void heldout_csv_row(CsvWriter *csv, long step, const HeldoutFigures *f) {
    double row[] = {(double)step, f->gold,   f->gold_se,   f->score,  f->score_se,    f->kl_full,     f->kl_full_se,
                    f->kl,        f->kl_k3,  f->length,    f->end_rate, f->agreement, f->agreement_se, f->distinct1,
                    f->distinct2};
    csv_row(csv, row);
}

static cJSON *float_array(const float *x, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; a && k < n; k++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[k]));
    return a;
}

// One dump line; NULL when out of memory.
static cJSON *dump_record(const char *model, const Heldout *h, const Rollout *r, const AnnotatorParts *parts, int i,
                          Error *err) {
    size_t at = (size_t)i * r->max_new;
    int L = r->resp_len[i], prompt = r->prompt[i];
    char *text = NULL;
    if (chat_response_text(h->tok, r->resp + at, (size_t)L, &text, err)) return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model);
    jsonl_add_number(o, "prompt_index", prompt);
    jsonl_add_number(o, "sample", i % h->samples);
    jsonl_add_text(o, "prompt", h->prompts->text[prompt]);
    jsonl_add_text(o, "response", text);
    free(text);
    cJSON *ids = cJSON_AddArrayToObject(o, "ids");
    for (int k = 0; ids && k < L; k++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(r->resp[at + k]));
    jsonl_add_number(o, "length", L);
    cJSON_AddBoolToObject(o, "ended", r->ended[i]);
    cJSON_AddItemToObject(o, "logp", float_array(r->logp + at, L));
    cJSON_AddItemToObject(o, "ref_logp", float_array(r->ref_logp + at, L));
    if (!strcmp(model, "policy")) {
        double k1, k3;
        kl_estimates(r->logp + at, r->ref_logp + at, &r->resp_len[i], 1, 0, &k1, &k3);
        cJSON_AddItemToObject(o, "kl_full_tokens", float_array(r->kl_full + at, L));
        jsonl_add_number(o, "kl_full", mean_sequence_sum(r->kl_full + at, &r->resp_len[i], 1, 0));
        jsonl_add_number(o, "k1", k1);
        jsonl_add_number(o, "k3", k3);
    }
    jsonl_add_number(o, "rm_score", r->score[i]);
    jsonl_add_number(o, "gold", r->gold[i]);
    cJSON *gold = parts ? cJSON_AddObjectToObject(o, "gold_parts") : NULL;
    if (gold) annotator_parts_to_json(gold, &parts[i], h->ann);
    return o;
}

int heldout_dump(FILE *fp, const char *path, const char *model, const Heldout *h, const Rollout *r,
                 const AnnotatorParts *parts, Error *err) {
    for (int i = 0; i < r->n; i++) {
        cJSON *o = dump_record(model, h, r, parts, i, err);
        if (!o) return -1;
        int rc = jsonl_exact_numbers(o) || jsonl_write(fp, o);
        cJSON_Delete(o);
        if (rc) return error_set(err, "%s: cannot write: out of memory or disk full", path);
    }
    return 0;
}
