// evaluate: compares a policy with its reference on held-out prompts, several
// samples each: gold and reward-model scores with standard errors, KL to the
// reference, perplexity under the reference, diversity, length, end-token
// rate and the gold win rate. A table on the terminal and DIR/eval.json.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "common/data_dir.h"
#include "common/fileio.h"
#include "common/jsonl.h"
#include "model/run.h"
#include "model/run_folder.h"
#include "ppo/heldout.h"

typedef struct {
    const char *config, *policy, *ref, *rm, *tokenizer, *prompts, *data_dir, *out, *dump;
    int seed, threads, samples, n_prompts, max_new, batch;
    float temperature;
    int force; // per invocation
} Settings;

static int apply_config(void *settings, const char *name, Error *err) {
    Settings *s = settings;
    s->config = name;
    if (!strcmp(name, "smoke")) s->samples = 2, s->n_prompts = 16, s->max_new = 24;
    else if (!strcmp(name, "tiny")) s->samples = 4, s->n_prompts = 0, s->max_new = 64;
    else if (!strcmp(name, "small")) s->samples = 4, s->n_prompts = 0, s->max_new = 96;
    else return error_set(err, "--config: unknown config '%s' (expected smoke, tiny or small)", name);
    return 0;
}

typedef struct {
    Tokenizer *tok;
    Annotator *ann;
    GPT policy, ref, rm;
    CkptHeader rm_h;
    PromptSet ps;
    Rollout a, b; // samples of the policy, of the reference
    AnnotatorParts *parts_a, *parts_b; // the gold's parts of each sample
    KVCache kv;
    ScoreScratch sc;
    Heldout h; // the sample's settings and the models that read it
} Eval;

static void eval_free(Eval *e) {
    tokenizer_free(e->tok);
    annotator_free(e->ann);
    gpt_free(&e->policy), gpt_free(&e->ref), gpt_free(&e->rm);
    prompts_free(&e->ps);
    rollout_free(&e->a), rollout_free(&e->b);
    free(e->parts_a), free(e->parts_b);
    kvcache_free(&e->kv);
    free(e->sc.inputs), free(e->sc.lens), free(e->sc.order);
}

static int eval_setup(Eval *e, const Settings *s, Error *err) {
    memset(e, 0, sizeof *e);
    if (tokenizer_load(&e->tok, s->tokenizer, err) || annotator_load(&e->ann, s->data_dir, err)) return -1;
    CkptTokenizer tk = {s->tokenizer, tokenizer_fingerprint(e->tok), tokenizer_vocab_size(e->tok)};
    unsigned lm_or_policy = (1u << CKPT_LM) | (1u << CKPT_POLICY);
    CkptHeader h;
    if (run_load_model(&e->policy, &h, s->policy, lm_or_policy, &tk, err) ||
        run_load_model(&e->ref, &h, s->ref, lm_or_policy, &tk, err) ||
        run_load_model(&e->rm, &e->rm_h, s->rm, 1u << CKPT_RM, &tk, err))
        return -1;
    int ctx = e->policy.config.max_seq_len, rows = 8;
    if (e->ref.config.max_seq_len != ctx || e->rm.config.max_seq_len < ctx)
        return error_set(err, "%s, %s and %s have different contexts", s->policy, s->ref, s->rm);
    if (prompts_load(&e->ps, e->tok, e->ann, s->prompts, ctx, 1, err)) return -1;
    int n_prompts = s->n_prompts > 0 && s->n_prompts < (int)e->ps.n ? s->n_prompts : (int)e->ps.n;
    int n = n_prompts * s->samples;
    int rm_ctx = e->rm.config.max_seq_len;
    if (rollout_alloc(&e->a, n, s->max_new, rm_ctx, err) || rollout_alloc(&e->b, n, s->max_new, rm_ctx, err)) return -1;
    e->parts_a = calloc((size_t)n, sizeof *e->parts_a), e->parts_b = calloc((size_t)n, sizeof *e->parts_b);
    if (!e->parts_a || !e->parts_b) return error_set(err, "out of memory");
    if (gpt_alloc_activations(&e->policy, rows, ctx, err) || gpt_alloc_activations(&e->ref, rows, ctx, err) ||
        gpt_alloc_activations(&e->rm, rows, ctx, err) || kvcache_create(&e->kv, &e->policy.config, s->batch, err))
        return -1;
    e->sc = (ScoreScratch){rows, malloc((size_t)rows * ctx * sizeof(int)), malloc(rows * sizeof(int)), malloc(n * sizeof(int))};
    if (!e->sc.inputs || !e->sc.lens || !e->sc.order) return error_set(err, "out of memory");
    e->h = (Heldout){&e->policy, &e->ref, &e->rm, &e->rm_h, e->tok, e->ann, &e->ps, &e->kv, &e->sc, n_prompts,
                     s->samples, s->temperature, (uint64_t)s->seed};
    return 0;
}

static void print_table(const Settings *s, const HeldoutFigures *p, const HeldoutFigures *r, double win, int n) {
    // What the figures measure: ppo's held-out evaluations print the same terms.
    printf("evaluate: %d samples (%d held-out prompts, %d each; seed %d, temperature %g, max-new %d, batch %d)\n", n,
           n / s->samples, s->samples, s->seed, s->temperature, s->max_new, s->batch);
    printf("  %-32s %18s %18s\n", "", "policy", "reference");
    printf("  %-32s %10.3f ± %5.3f %10.3f ± %5.3f\n", "gold score", p->gold, p->gold_se, r->gold, r->gold_se);
    printf("  %-32s %10.3f ± %5.3f %10.3f ± %5.3f\n", "reward-model score", p->score, p->score_se, r->score,
           r->score_se);
    printf("  %-32s %10.1f%% ± %4.1f %9.1f%% ± %4.1f\n", "reward model agrees with gold", 100 * p->agreement,
           100 * p->agreement_se, 100 * r->agreement, 100 * r->agreement_se);
    printf("  %-32s %10.3f ± %5.3f %18.3f\n", "KL to reference (full vocab)", p->kl_full, p->kl_full_se, r->kl_full);
    printf("  %-32s %18.3f %18.3f\n", "KL to reference (k1)", p->kl, r->kl);
    printf("  %-32s %18.3f %18.3f\n", "KL to reference (k3)", p->kl_k3, r->kl_k3);
    printf("  %-32s %18.2f %18.2f\n", "perplexity under reference", p->ppl_ref, r->ppl_ref);
    printf("  %-32s %18.3f %18.3f\n", "distinct-1", p->distinct1, r->distinct1);
    printf("  %-32s %18.3f %18.3f\n", "distinct-2", p->distinct2, r->distinct2);
    printf("  %-32s %18.1f %18.1f\n", "mean length (tokens)", p->length, r->length);
    printf("  %-32s %17.1f%% %17.1f%%\n", "end-token rate", 100 * p->end_rate, 100 * r->end_rate);
    printf("  gold parts (means; docs/annotator.md)\n");
    printf("  %-32s %18.3f %18.3f\n", "  valence", p->valence, r->valence);
    printf("  %-32s %18.3f %18.3f\n", "  topic", p->topic, r->topic);
    printf("  %-32s %18.3f %18.3f\n", "  fluency", p->fluency, r->fluency);
    printf("  %-32s %18.3f %18.3f\n", "  length credit", p->length_credit, r->length_credit);
    printf("  %-32s %18.3f %18.3f\n", "  repetition", p->repetition, r->repetition);
    printf("evaluate: reward-model agreement: over %ld pairs of the policy's samples and %ld of the reference's "
           "(two samples of one prompt whose gold differs)\n", p->agreement_pairs, r->agreement_pairs);
    printf("evaluate: gold win rate of the policy against the reference: %.1f%%\n", 100 * win);
}

static int write_json(const Settings *s, const HeldoutFigures *p, const HeldoutFigures *r, double win, int n,
                      Error *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "policy_checkpoint", s->policy);
    cJSON_AddStringToObject(o, "reference_checkpoint", s->ref);
    jsonl_add_number(o, "samples", n);
    jsonl_add_number(o, "samples_per_prompt", s->samples);
    jsonl_add_number(o, "seed", s->seed);
    jsonl_add_number(o, "temperature", s->temperature);
    cJSON_AddItemToObject(o, "policy", heldout_figures_json(p));
    cJSON_AddItemToObject(o, "reference", heldout_figures_json(r));
    jsonl_add_number(o, "gold_win_rate", win);
    char *text = cJSON_Print(o), path[4096];
    cJSON_Delete(o);
    if (!text) return error_set(err, "out of memory writing %s/eval.json", s->out);
    int rc = make_dirs(s->out, err) || path_join(path, sizeof path, s->out, "eval.json", err) ||
             write_file_atomic(path, text, strlen(text), err);
    cJSON_free(text);
    return rc ? -1 : 0;
}

// --dump FILE: one JSON line per sample, the policy's then the reference's,
// written atomically.
static int write_dump(const Eval *e, const Settings *s, Error *err) {
    AtomicFile af;
    if (atomic_open(&af, s->dump, err)) return -1;
    if (heldout_dump(af.fp, s->dump, "policy", &e->h, &e->a, e->parts_a, err) ||
        heldout_dump(af.fp, s->dump, "reference", &e->h, &e->b, e->parts_b, err)) {
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af, err);
}

static int evaluate(Eval *e, const Settings *s, Error *err) {
    heldout_sample(&e->h, &e->a, &e->policy);
    heldout_sample(&e->h, &e->b, &e->ref);
    if (heldout_read(&e->h, &e->a, e->parts_a, err) || heldout_read(&e->h, &e->b, e->parts_b, err)) return -1;
    HeldoutFigures p = heldout_figures(&e->a, e->parts_a, s->samples, 0);
    HeldoutFigures r = heldout_figures(&e->b, e->parts_b, s->samples, 1);
    double win = 0;
    for (int i = 0; i < e->a.n; i++) win += e->a.gold[i] > e->b.gold[i] ? 1.0 : e->a.gold[i] == e->b.gold[i] ? 0.5 : 0.0;
    win /= e->a.n;
    print_table(s, &p, &r, win, e->a.n);
    if (s->out && write_json(s, &p, &r, win, e->a.n, err)) return -1;
    if (s->out) printf("evaluate: wrote %s/eval.json\n", s->out);
    if (s->dump && write_dump(e, s, err)) return -1;
    if (s->dump) printf("evaluate: wrote %d samples to %s\n", 2 * e->a.n, s->dump);
    return 0;
}

// --dump FILE must not replace a file evaluate reads: an input, or a file
// of the annotator's folder. Checked before anything is loaded.
static int check_dump(const char *dump, const char *const *inputs, int n, const char *data_dir, Error *err) {
    struct stat d, in;
    if (stat(dump, &d) != 0) return 0; // a new file replaces nothing
    for (int i = 0; i < n; i++)
        if (inputs[i] && stat(inputs[i], &in) == 0 && in.st_dev == d.st_dev && in.st_ino == d.st_ino)
            return usage_error(err, "--dump %s: is the input %s; evaluate does not write over what it reads", dump,
                               inputs[i]);
    char *file = realpath(dump, NULL), *dir = realpath(data_dir, NULL), *slash = file ? strrchr(file, '/') : NULL;
    int inside = slash && dir && (size_t)(slash - file) == strlen(dir) && !strncmp(file, dir, strlen(dir));
    free(file), free(dir);
    if (inside)
        return usage_error(err, "--dump %s: is a file of the annotator's folder %s; evaluate does not write over what "
                           "it reads", dump, data_dir);
    return 0;
}

int main(int argc, char **argv) {
    char eval_prompts[4096];
    Error err;
    if (data_dir_file(eval_prompts, sizeof eval_prompts, "prompts_eval.jsonl", &err)) error_exit("evaluate", &err);
    Settings s = {.prompts = eval_prompts, .data_dir = data_dir_default(), .seed = 1337, .batch = 32,
                  .temperature = 1.0f};
    apply_config(&s, "tiny", &err);
    CliOption opts[] = {
        {"config", CLI_STRING, &s.config, 0, 0, "defaults: smoke, tiny or small"},
        {"policy", CLI_STRING | CLI_REQUIRED, &s.policy, 0, 0, "policy (or any language model) to evaluate"},
        {"ref", CLI_STRING | CLI_REQUIRED, &s.ref, 0, 0, "reference it is compared with, e.g. the SFT model"},
        {"rm", CLI_STRING | CLI_REQUIRED, &s.rm, 0, 0, "reward-model checkpoint"},
        {"tokenizer", CLI_STRING | CLI_REQUIRED, &s.tokenizer, 0, 0, "tokenizer.bin of these checkpoints"},
        {"prompts", CLI_STRING, &s.prompts, 0, 0, "held-out prompts, JSONL {\"prompt\", optional \"category\"}"},
        {"data-dir", CLI_STRING, &s.data_dir, 0, 0, "folder of the annotator's files " DATA_DIR_HELP},
        {"out", CLI_STRING, &s.out, 0, 0, "folder for eval.json (none: print the results only)"},
        {"force", CLI_FLAG, &s.force, 0, 0, "start afresh over another run's files in --out, removing them"},
        {"dump", CLI_STRING, &s.dump, 0, 0, "write every sample to this JSONL file (docs/evaluate.md)"},
        {"samples", CLI_INT, &s.samples, 1, 1000, "samples per prompt from each model"},
        {"n-prompts", CLI_INT, &s.n_prompts, 0, 1000000, "prompts to use (0: all)"},
        {"max-new", CLI_INT, &s.max_new, 1, 8192, "longest response in tokens"},
        {"temperature", CLI_FLOAT, &s.temperature, 0.01, 10, "sampling temperature"},
        {"batch", CLI_INT, &s.batch, 1, 256, "sequences generated at once"},
        {"seed", CLI_INT, &s.seed, 0, 2147483647, "seed for sampling"},
        {"threads", CLI_INT, &s.threads, 0, 256, "threads (0: all cores)"},
    };
    int n_opts = sizeof opts / sizeof opts[0];
    char *stored = NULL;
    int rc = run_parse_options("evaluate", "Compares a policy with a reference on held-out prompts.", opts, n_opts, argc,
                               argv, NULL, apply_config, &s, &stored, &err);
    if (rc > 0) return 0;
    if (rc) error_exit_rc("evaluate", rc, &err);
    run_set_threads(s.threads);
    const char *inputs[] = {s.policy, s.ref, s.rm, s.tokenizer, s.prompts, s.data_dir};
    RunFolderRequest req = {.dir = s.out, .force = s.force, .inputs = inputs, .n_inputs = sizeof inputs / sizeof inputs[0]};
    RunFolder folder = {-1};
    if (s.dump && check_dump(s.dump, inputs, sizeof inputs / sizeof inputs[0], s.data_dir, &err))
        error_exit_rc("evaluate", ERR_USAGE, &err);
    if (s.out && run_folder_check(&req, &err)) error_exit("evaluate", &err); // before loading anything
    Eval e;
    int ok = eval_setup(&e, &s, &err) == 0 && (!s.out || run_folder_claim(&folder, &req, &err) == 0) &&
             evaluate(&e, &s, &err) == 0;
    run_folder_release(&folder);
    eval_free(&e);
    free(stored);
    if (!ok) error_exit("evaluate", &err);
    return stdout_finish("evaluate", 0);
}
