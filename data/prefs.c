// prefs: samples two responses per prompt from a policy, scores both with the
// simulated annotator (data/annotator.h) and labels the pair by a seeded draw
// from the Bradley-Terry model, P(A preferred) = sigmoid((gold_A - gold_B) /
// tau), so labels are noisy the way human labels are. Writes the pairs the
// reward model trains on (prefs.jsonl) and a held-out split (prefs_val.jsonl)
// whose prompts are disjoint from the training pairs' prompts.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/data_dir.h"
#include "common/cli.h"
#include "common/fileio.h"
#include "common/jsonl.h"
#include "common/progress.h"
#include "data/annotator.h"
#include "data/chat_template.h"
#include "data/prompt_record.h"
#include "model/generate.h"
#include "model/run.h"
#include "model/run_folder.h"
#include "tokenizer/tokenizer.h"

static const char PROG[] = "prefs";

// A prompt slot whose two samples keep coming out identical (or, unless
// --keep-ties, equal in gold score) is given up after this many tries (a
// policy that always says the same thing).
#define MAX_ATTEMPTS_PER_SLOT 8

typedef struct {
    const char *policy, *tokenizer, *prompts, *data_dir, *out;
    int pairs, seed, threads, batch, top_k, keep_ties;
    float tau, val_frac, temperature, temperature2; // temperature2 < 0: the same as temperature
    int force; // per invocation: never in config.txt
} Settings;

typedef struct {
    const char *text;
    int category; // -1: the annotator gives no topic credit
    int *ids;     // chat_format(prompt, NULL): ready for generation
    int n_ids;
} Prompt;

typedef struct {
    const Prompt *prompt;
    char *response[2];
    double gold[2];
    int ended[2];
    int chosen;   // 0 or 1: which response the label prefers
    int is_val;
    int attempts;
    int done;
} Slot;

typedef struct {
    Tokenizer *tok;
    GPT model;
    KVCache kv;
    Annotator *annotator;
    Prompt *prompts;
    size_t n_prompts;
    Slot *slots;
    size_t n_slots;
    long identical, ties, given_up;
} Prefs;

static void prefs_free_all(Prefs *p) {
    tokenizer_free(p->tok);
    gpt_free(&p->model);
    kvcache_free(&p->kv);
    annotator_free(p->annotator);
    for (size_t i = 0; i < p->n_prompts; i++) {
        free((char *)p->prompts[i].text);
        free(p->prompts[i].ids);
    }
    free(p->prompts);
    for (size_t i = 0; i < p->n_slots; i++) free(p->slots[i].response[0]), free(p->slots[i].response[1]);
    free(p->slots);
}

// ---------------------------------------------------------------- prompts

static int add_prompt(Prefs *p, const JsonlReader *r, const cJSON *o, size_t *cap, Error *err) {
    const char *text = jsonl_string(r, o, "prompt", err);
    if (!text) return -1;
    Prompt q = {0};
    if (prompt_record_category(p->annotator, r, o, text, &q.category, err)) return -1;
    size_t n_ids;
    Error inner;
    if (chat_format(p->tok, text, NULL, &q.ids, &n_ids, NULL, &inner))
        return error_set(err, "%s:%ld: %s", r->path, r->line, inner.msg);
    int T = p->model.config.max_seq_len;
    q.n_ids = (int)n_ids;
    q.text = strdup(text);
    if (n_ids >= (size_t)T || !q.text) {
        free(q.ids), free((char *)q.text);
        return error_set(err, "%s:%ld: prompt is %zu tokens; the model's context of %d leaves no "
                         "room for a response", r->path, r->line, n_ids, T);
    }
    if (p->n_prompts == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        Prompt *grown = realloc(p->prompts, *cap * sizeof *grown);
        if (!grown) {
            free(q.ids), free((char *)q.text);
            return error_set(err, "out of memory");
        }
        p->prompts = grown;
    }
    p->prompts[p->n_prompts++] = q;
    return 0;
}

typedef struct {
    char *key; // prompt_compare_key of the text
    size_t index;
} PromptKey;

static int compare_prompt_keys(const void *a, const void *b) {
    const PromptKey *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

// Keeps the first of prompts that are equal after NFC normalisation, so that
// the held-out split cannot put one form on each side. Returns how many
// were dropped, or -1 when out of memory.
static long drop_repeated_prompts(Prefs *p) {
    size_t n = p->n_prompts;
    PromptKey *keys = calloc(n, sizeof *keys);
    char *drop = calloc(n, 1);
    int ok = keys && drop;
    for (size_t i = 0; ok && i < n; i++) {
        keys[i] = (PromptKey){prompt_compare_key(p->prompts[i].text), i};
        ok = keys[i].key != NULL;
    }
    long dropped = -1;
    if (ok) {
        qsort(keys, n, sizeof *keys, compare_prompt_keys);
        for (size_t i = 1; i < n; i++) drop[keys[i].index] = strcmp(keys[i - 1].key, keys[i].key) == 0;
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            if (drop[i]) free((char *)p->prompts[i].text), free(p->prompts[i].ids);
            else p->prompts[kept++] = p->prompts[i];
        }
        dropped = (long)(n - kept);
        p->n_prompts = kept;
    }
    for (size_t i = 0; keys && i < n; i++) free(keys[i].key);
    free(keys), free(drop);
    return dropped;
}

static int load_prompts(Prefs *p, const char *path, Error *err) {
    JsonlReader r;
    if (jsonl_open(&r, path, err)) return -1;
    size_t cap = 0;
    cJSON *o;
    int rc;
    while ((rc = jsonl_next(&r, &o, err)) == 1) {
        rc = add_prompt(p, &r, o, &cap, err);
        cJSON_Delete(o);
        if (rc) break;
    }
    jsonl_close(&r);
    if (rc == 0 && p->n_prompts == 0) rc = error_set(err, "%s: no prompts", path);
    long repeated = rc == 0 ? drop_repeated_prompts(p) : 0;
    if (repeated < 0) rc = error_set(err, "out of memory");
    if (repeated > 0)
        printf("prefs: %s: %ld prompts repeat earlier ones (compared after Unicode NFC normalisation); "
               "each is used once\n", path, repeated);
    return rc;
}

// ---------------------------------------------------------------- slots

// Lays out the pairs to make: round(val_frac * pairs) of them on held-out
// prompts (a seeded choice of ceil(val_frac * prompts) prompts), the rest on
// the others, each side cycling through its prompts in a seeded order.
static int plan_slots(Prefs *p, const Settings *s, Error *err) {
    size_t n = p->n_prompts, *order = malloc(n * sizeof *order);
    p->slots = calloc((size_t)s->pairs, sizeof *p->slots);
    if (!order || !p->slots) {
        free(order);
        return error_set(err, "out of memory");
    }
    p->n_slots = (size_t)s->pairs;
    Rng rng;
    rng_seed(&rng, (uint64_t)s->seed * 2654435761u + 17);
    for (size_t i = 0; i < n; i++) order[i] = i;
    for (size_t i = n; i > 1; i--) { // Fisher-Yates
        size_t j = (size_t)rng_below(&rng, i), t = order[i - 1];
        order[i - 1] = order[j], order[j] = t;
    }
    size_t n_val_pairs = (size_t)lround(s->val_frac * s->pairs);
    size_t n_val_prompts = n_val_pairs ? (size_t)ceil(s->val_frac * (double)n) : 0;
    if (n_val_prompts >= n) n_val_prompts = n - 1;
    if (n_val_prompts == 0 || n_val_pairs >= p->n_slots) n_val_pairs = 0; // nothing to hold out
    size_t n_train = p->n_slots - n_val_pairs;
    for (size_t i = 0; i < p->n_slots; i++) {
        int is_val = i >= n_train;
        size_t k = is_val ? (i - n_train) % n_val_prompts : n_val_prompts + i % (n - n_val_prompts);
        p->slots[i].prompt = &p->prompts[order[k]];
        p->slots[i].is_val = is_val;
    }
    free(order);
    return 0;
}

// ---------------------------------------------------------------- sampling

// The response text of one generated row, and whether it ended with the end
// token (not at the context limit, and not by starting a new user turn).
static int row_response(const Prefs *p, const int *ids, int n, char **text, int *ended, Error *err) {
    size_t k = chat_response_length(p->tok, ids, (size_t)n);
    *ended = k < (size_t)n && ids[k] == tokenizer_special(p->tok, TOK_ENDOFTEXT);
    return chat_response_text(p->tok, ids, (size_t)n, text, err); // valid UTF-8: U+FFFD for bad bytes
}

// Scores a slot's two responses and draws the label: A is chosen with
// probability sigmoid((gold_A - gold_B) / tau). Returns 0 without a label
// when the two score the same and ties are not kept: the annotator sees no
// difference (a human labeller would answer "no preference"), and a
// coin-flip label would only teach the reward model noise, so the slot is
// sampled again.
static int label_slot(const Prefs *p, Slot *slot, const Settings *s, Rng *label_rng) {
    for (int k = 0; k < 2; k++)
        slot->gold[k] = annotator_gold_category(p->annotator, slot->prompt->category,
                                                slot->response[k], slot->ended[k], NULL);
    if (slot->gold[0] == slot->gold[1] && !s->keep_ties) return 0;
    float tau = s->tau;
    double p_a = 1.0 / (1.0 + exp(-(slot->gold[0] - slot->gold[1]) / tau));
    slot->chosen = rng_uniform_double(label_rng) < p_a ? 0 : 1;
    slot->done = 1;
    return 1;
}

typedef struct {
    int *tokens, *lens;
    float *logprobs;
    const int **prompt_ids;
    int *prompt_lens;
    size_t *slot_of_row; // row j < n samples slot slot_of_row[j]'s first response, row n + j its second
} Batch;

// Fills the batch with up to max_slots pending slots; returns the row count
// 2n: rows 0..n-1 hold the slots' first samples, rows n..2n-1 their second.
static int fill_batch(const Prefs *p, Batch *b, size_t *next, int max_slots, int *max_new) {
    int n = 0, T = p->model.config.max_seq_len;
    *max_new = 0;
    // One pass from *next: each pending slot at most once per batch (a slot
    // twice in a batch would be settled and then overwritten).
    size_t start = *next;
    for (size_t tried = 0; tried < p->n_slots && n < max_slots; tried++) {
        size_t i = (start + tried) % p->n_slots;
        const Slot *s = &p->slots[i];
        if (s->done || s->attempts >= MAX_ATTEMPTS_PER_SLOT) continue;
        b->prompt_ids[n] = s->prompt->ids;
        b->prompt_lens[n] = s->prompt->n_ids;
        b->slot_of_row[n++] = i;
        if (T - s->prompt->n_ids > *max_new) *max_new = T - s->prompt->n_ids;
        *next = (i + 1) % p->n_slots;
    }
    for (int j = 0; j < n; j++) b->prompt_ids[n + j] = b->prompt_ids[j], b->prompt_lens[n + j] = b->prompt_lens[j];
    return 2 * n;
}

// Generates one batch and settles its slots: identical pairs, and pairs the
// annotator scores equal (unless --keep-ties), are retried.
static int run_batch(Prefs *p, Batch *b, int rows, int max_new, const Settings *s, Rng *gen_rng,
                     Rng *label_rng, Error *err) {
    int end = tokenizer_special(p->tok, TOK_ENDOFTEXT);
    SamplerConfig sc = {s->temperature, s->top_k, 1.0f};
    if (s->temperature2 < 0 || s->temperature2 == s->temperature) {
        generate(&p->model, &p->kv, b->prompt_ids, b->prompt_lens, rows, max_new, end, &sc, gen_rng, b->tokens,
                 b->logprobs, b->lens);
    } else { // each pair's first response at one temperature, its second at the other
        int n = rows / 2;
        SamplerConfig sc2 = {s->temperature2, s->top_k, 1.0f};
        generate(&p->model, &p->kv, b->prompt_ids, b->prompt_lens, n, max_new, end, &sc, gen_rng, b->tokens,
                 b->logprobs, b->lens);
        generate(&p->model, &p->kv, b->prompt_ids + n, b->prompt_lens + n, n, max_new, end, &sc2, gen_rng,
                 b->tokens + (size_t)n * max_new, b->logprobs + (size_t)n * max_new, b->lens + n);
    }
    int n = rows / 2;
    for (int j = 0; j < n; j++) {
        Slot *slot = &p->slots[b->slot_of_row[j]];
        slot->attempts++;
        for (int k = 0; k < 2; k++) {
            int r = j + k * n;
            free(slot->response[k]);
            slot->response[k] = NULL;
            if (row_response(p, b->tokens + (size_t)r * max_new, b->lens[r], &slot->response[k], &slot->ended[k],
                             err))
                return -1;
        }
        int labelled = 0;
        if (strcmp(slot->response[0], slot->response[1]) == 0) p->identical++;
        else if (!(labelled = label_slot(p, slot, s, label_rng))) p->ties++;
        if (!labelled && slot->attempts == MAX_ATTEMPTS_PER_SLOT) p->given_up++;
    }
    return 0;
}

static int sample_all(Prefs *p, const Settings *s, Error *err) {
    int T = p->model.config.max_seq_len, max_rows = 2 * s->batch;
    Batch b = {0};
    b.tokens = malloc((size_t)max_rows * T * sizeof *b.tokens);
    b.logprobs = malloc((size_t)max_rows * T * sizeof *b.logprobs);
    b.lens = malloc(max_rows * sizeof *b.lens);
    b.prompt_ids = malloc(max_rows * sizeof *b.prompt_ids);
    b.prompt_lens = malloc(max_rows * sizeof *b.prompt_lens);
    b.slot_of_row = malloc(max_rows * sizeof *b.slot_of_row);
    int rc = (b.tokens && b.logprobs && b.lens && b.prompt_ids && b.prompt_lens && b.slot_of_row)
                 ? 0 : error_set(err, "out of memory");
    Rng gen_rng, label_rng;
    rng_seed(&gen_rng, (uint64_t)s->seed);
    rng_seed(&label_rng, (uint64_t)s->seed ^ 0x9E3779B97F4A7C15ull);
    Progress prog;
    progress_init(&prog, stdout, PROG, 0, (long)p->n_slots, 1);
    size_t next = 0, settled = 0;
    double t0 = now_seconds();
    long sequences = 0;
    int rows, max_new;
    while (rc == 0 && !run_stop_requested() && (rows = fill_batch(p, &b, &next, s->batch, &max_new)) > 0) {
        rc = run_batch(p, &b, rows, max_new, s, &gen_rng, &label_rng, err);
        sequences += rows;
        settled = 0;
        for (size_t i = 0; i < p->n_slots; i++)
            settled += p->slots[i].done || p->slots[i].attempts >= MAX_ATTEMPTS_PER_SLOT;
        progress_update(&prog, (long)settled, "%ld sequences | %.1f seq/s | %ld identical | %ld ties",
                        sequences, sequences / (now_seconds() - t0 + 1e-9), p->identical, p->ties);
    }
    progress_done(&prog);
    free(b.tokens), free(b.logprobs), free(b.lens);
    free(b.prompt_ids), free(b.prompt_lens), free(b.slot_of_row);
    return rc;
}

// ---------------------------------------------------------------- output

// One pair: prompt, chosen, rejected, gold_chosen, gold_rejected, then what
// the gold scores were computed from besides the texts, so that `score --gold`
// recomputes them exactly: ended_chosen, ended_rejected (whether each response
// ended with the end token) and category (the category the responses were
// scored against; absent when the prompt names none).
static cJSON *pair_json(const Slot *s, const Annotator *a) {
    int c = s->chosen, r = 1 - c;
    const char *category = annotator_category_name(a, s->prompt->category);
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    int ok = cJSON_AddStringToObject(o, "prompt", s->prompt->text) &&
             cJSON_AddStringToObject(o, "chosen", s->response[c]) &&
             cJSON_AddStringToObject(o, "rejected", s->response[r]) &&
             jsonl_add_number(o, "gold_chosen", s->gold[c]) &&
             jsonl_add_number(o, "gold_rejected", s->gold[r]) &&
             cJSON_AddBoolToObject(o, "ended_chosen", s->ended[c]) &&
             cJSON_AddBoolToObject(o, "ended_rejected", s->ended[r]) &&
             (!category || cJSON_AddStringToObject(o, "category", category));
    if (!ok) cJSON_Delete(o);
    return ok ? o : NULL;
}

// Writes the settled slots of one split to out_dir/name, atomically.
static int write_pairs(const Prefs *p, const char *out_dir, const char *name, int is_val,
                       size_t *count, Error *err) {
    char path[4096];
    if (path_join(path, sizeof path, out_dir, name, err)) return -1;
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) return error_set(err, "out of memory");
    int rc = 0;
    *count = 0;
    for (size_t i = 0; i < p->n_slots && rc == 0; i++) {
        const Slot *s = &p->slots[i];
        if (!s->done || s->is_val != is_val) continue;
        cJSON *o = pair_json(s, p->annotator);
        if (!o || jsonl_write(mem, o)) rc = error_set(err, "out of memory writing %s", path);
        cJSON_Delete(o);
        (*count)++;
    }
    fclose(mem);
    if (rc == 0) rc = write_file_atomic(path, text, len, err);
    free(text);
    return rc;
}

// Label noise: the fraction of pairs (with different gold scores) whose
// label prefers the response with the lower gold score.
static void print_summary(const Prefs *p, const Settings *s, size_t n_train, size_t n_val) {
    size_t differ = 0, flipped = 0, ended = 0, n = 0;
    double gold_chosen = 0, gold_rejected = 0;
    for (size_t i = 0; i < p->n_slots; i++) {
        const Slot *q = &p->slots[i];
        if (!q->done) continue;
        n++;
        ended += (size_t)(q->ended[0] + q->ended[1]);
        gold_chosen += q->gold[q->chosen], gold_rejected += q->gold[1 - q->chosen];
        if (q->gold[0] == q->gold[1]) continue;
        differ++;
        flipped += q->gold[q->chosen] < q->gold[1 - q->chosen];
    }
    char ties[96];
    if (s->keep_ties) snprintf(ties, sizeof ties, "%zu pairs with equal gold scores kept (--keep-ties)", n - differ);
    else snprintf(ties, sizeof ties, "%ld pairs with equal gold scores resampled", p->ties);
    printf("%s: %zu pairs (%zu train, %zu validation); %ld identical pairs resampled; %s; %ld prompt "
           "slots given up after %d tries\n", PROG, n, n_train, n_val, p->identical, ties, p->given_up,
           MAX_ATTEMPTS_PER_SLOT);
    if (n == 0) return;
    printf("%s: mean gold %.3f chosen, %.3f rejected; %.1f%% of responses ended\n", PROG,
           gold_chosen / n, gold_rejected / n, 100.0 * ended / (2.0 * n));
    printf("%s: label noise %.1f%% (%zu of %zu pairs with different gold scores labelled against "
           "the gold order; tau %g)\n", PROG, differ ? 100.0 * flipped / differ : 0.0, flipped,
           differ, s->tau);
}

// ---------------------------------------------------------------- main

static int setup(Prefs *p, const Settings *s, Error *err) {
    memset(p, 0, sizeof *p);
    if (tokenizer_load(&p->tok, s->tokenizer, err)) return -1;
    CkptHeader h;
    unsigned kinds = (1u << CKPT_LM) | (1u << CKPT_POLICY);
    CkptTokenizer tk = {s->tokenizer, tokenizer_fingerprint(p->tok), tokenizer_vocab_size(p->tok)};
    if (run_load_model(&p->model, &h, s->policy, kinds, &tk, err)) return -1;
    if (kvcache_create(&p->kv, &p->model.config, 2 * s->batch, err)) return -1;
    if (annotator_load(&p->annotator, s->data_dir, err)) return -1;
    if (load_prompts(p, s->prompts, err)) return -1;
    size_t unknown = 0;
    for (size_t i = 0; i < p->n_prompts; i++) unknown += p->prompts[i].category < 0;
    if (unknown)
        fprintf(stderr, "%s: warning: %zu of %zu prompts name no known topic; their responses get "
                "no on-topic credit\n", PROG, unknown, p->n_prompts);
    return plan_slots(p, s, err);
}

// Pairs settled in one split.
static size_t count_pairs(const Prefs *p, int is_val) {
    size_t n = 0;
    for (size_t i = 0; i < p->n_slots; i++) n += p->slots[i].done && p->slots[i].is_val == is_val;
    return n;
}

// Nothing is written until every pair is sampled; then prefs.jsonl,
// prefs_val.jsonl and config.txt, config.txt last, so that a config.txt never
// describes pair files other than the ones beside it. SIGINT or SIGTERM while
// sampling stops without writing (returns 1); arriving during the writes, it
// only sets a flag and the writes complete.
static int run(const Settings *s, const CliOption *opts, int n_opts, Error *err) {
    const char *inputs[] = {s->policy, s->tokenizer, s->prompts, s->data_dir};
    RunFolderRequest req = {.dir = s->out, .force = s->force, .inputs = inputs, .n_inputs = sizeof inputs / sizeof inputs[0],
                            .replace_at_end = 1};
    RunFolder folder = {-1};
    if (run_folder_check(&req, err)) return -1; // before loading anything
    Prefs p;
    int rc = setup(&p, s, err);
    if (rc == 0) rc = run_folder_claim(&folder, &req, err);
    if (rc == 0) {
        printf("%s: %zu prompts, %d pairs from %s (context %d tokens), temperatures %g and %g, tau %g\n",
               PROG, p.n_prompts, s->pairs, s->policy, p.model.config.max_seq_len, s->temperature,
               s->temperature2 < 0 ? s->temperature : s->temperature2, s->tau);
        rc = sample_all(&p, s, err);
    }
    if (rc == 0 && run_stop_requested()) {
        printf("\n%s: interrupted while sampling; nothing written (the files in %s are as they were); run the "
               "same command again to sample the pairs\n", PROG, s->out);
        prefs_free_all(&p);
        return 1;
    }
    if (rc == 0 && count_pairs(&p, 0) == 0)
        rc = error_set(err, "%s: no training pair could be made (%ld identical pairs and %ld ties resampled, %ld "
                       "prompt slots given up); nothing written", s->out, p.identical, p.ties, p.given_up);
    size_t n_train = 0, n_val = 0;
    if (rc == 0) rc = make_dirs(s->out, err);
    if (rc == 0 && s->force) rc = run_folder_remove_run_files(s->out, err);
    if (rc == 0) rc = write_pairs(&p, s->out, "prefs.jsonl", 0, &n_train, err);
    if (rc == 0) rc = write_pairs(&p, s->out, "prefs_val.jsonl", 1, &n_val, err);
    if (rc == 0) rc = run_write_config(s->out, opts, n_opts, err);
    if (rc == 0) {
        print_summary(&p, s, n_train, n_val);
        printf("%s: wrote %s/prefs.jsonl and %s/prefs_val.jsonl\n", PROG, s->out, s->out);
    }
    prefs_free_all(&p);
    run_folder_release(&folder);
    return rc;
}

// Two greedy samples of one prompt are the same response: no pair can differ.
static int check_pairs_possible(const Settings *s, Error *err) {
    float t2 = s->temperature2 < 0 ? s->temperature : s->temperature2;
    if (s->top_k == 1)
        return usage_error(err, "--top-k 1 samples the most likely token every time: both responses of a pair would "
                         "be the same, so no pair can be made (use --top-k 0 or 2 or more)");
    if (s->temperature == 0 && t2 == 0)
        return usage_error(err, "--temperature 0 samples greedily and so does --temperature2 %s: both responses of a "
                         "pair would be the same, so no pair can be made (give one of them a temperature above 0)",
                         s->temperature2 < 0 ? "(unset: the same)" : "0");
    return 0;
}

int main(int argc, char **argv) {
    char train_prompts[4096];
    Error err;
    if (data_dir_file(train_prompts, sizeof train_prompts, "prompts_train.jsonl", &err)) error_exit("prefs", &err);
    Settings s = {.prompts = train_prompts, .data_dir = data_dir_default(), .pairs = 2000,
                  .seed = 1337, .batch = 32, .tau = 0.2f, .val_frac = 0.1f, .temperature = 1.0f,
                  .temperature2 = -1.0f};
    CliOption opts[] = {
        {"policy", CLI_STRING | CLI_REQUIRED, &s.policy, 0, 0, "checkpoint to sample from: language model or policy"},
        {"tokenizer", CLI_STRING | CLI_REQUIRED, &s.tokenizer, 0, 0, "tokenizer.bin the policy was trained with"},
        {"prompts", CLI_STRING, &s.prompts, 0, 0, "JSONL prompts: {\"prompt\", optional \"category\"}"},
        {"data-dir", CLI_STRING, &s.data_dir, 0, 0, "folder with the annotator's afinn165.tsv, keywords.tsv and fortunes.jsonl " DATA_DIR_HELP},
        {"out", CLI_STRING | CLI_REQUIRED, &s.out, 0, 0, "folder for prefs.jsonl, prefs_val.jsonl, config.txt"},
        {"force", CLI_FLAG, &s.force, 0, 0, "start afresh over another run's files in --out, removing them"},
        {"pairs", CLI_INT, &s.pairs, 1, 10000000, "preference pairs to write (train + validation)"},
        {"val-frac", CLI_FLOAT, &s.val_frac, 0, 0.9, "fraction of pairs held out, on held-out prompts"},
        {"tau", CLI_FLOAT, &s.tau, 1e-3, 100, "Bradley-Terry temperature of the labels: P(A) = sigmoid((gA-gB)/tau)"},
        {"temperature", CLI_FLOAT, &s.temperature, 0, 10, "sampling temperature of each pair's first response (0: greedy)"},
        {"temperature2", CLI_FLOAT, &s.temperature2, -1, 10,
         "sampling temperature of each pair's second response (-1: as --temperature)"},
        {"keep-ties", CLI_FLAG, &s.keep_ties, 0, 0,
         "keep pairs whose two responses have equal gold scores (labelled by a coin flip); by default they are sampled again"},
        {"top-k", CLI_INT, &s.top_k, 0, 1000000, "sample from the k most likely tokens (0: all)"},
        {"batch", CLI_INT, &s.batch, 1, 1024, "prompts per generation batch (two samples each)"},
        {"seed", CLI_INT, &s.seed, 0, 2147483647, "seed for prompt order, sampling and labels"},
        {"threads", CLI_INT, &s.threads, 0, 256, "threads (0: all cores)"},
    };
    int n_opts = sizeof opts / sizeof opts[0];
    int rc = cli_parse(PROG, opts, n_opts, argc, argv, NULL, &err);
    if (rc == CLI_HELP)
        cli_print_help(stdout, PROG, "Samples response pairs from a policy and labels them with "
                       "the simulated annotator.", opts, n_opts);
    if (rc > 0) return 0;
    if (rc == 0) rc = cli_check_recordable(opts, n_opts, &err);
    if (rc == 0) rc = check_pairs_possible(&s, &err);
    if (rc) error_exit_rc(PROG, rc, &err);
    s.threads = run_set_threads(s.threads); // config.txt records the count used
    run_install_signal_handlers(); // SIGINT/SIGTERM: stop sampling, write nothing (see run)
    rc = run(&s, opts, n_opts, &err);
    if (rc < 0) error_exit(PROG, &err);
    return stdout_finish(PROG, rc ? EXIT_STOPPED : 0);
}
