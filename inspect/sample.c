// sample: draws responses from a language model or policy checkpoint for one
// prompt or a JSONL file of prompts, with the chat template (or plain text
// continuation with --raw), the usual sampling knobs, optional per-token
// log-probabilities, and optional scores from a reward model.
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonl.h"
#include "data/chat_template.h"
#include "model/generate.h"
#include "model/run.h"
#include "reward_model/reward_model.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    const char *model, *tokenizer, *prompt, *prompts, *rm;
    int n, seed, max_new, raw, logprobs, json, threads;
    float temperature, top_p;
    int top_k;
} Settings;

typedef struct {
    Tokenizer *tok;
    GPT policy, rm;
    CkptHeader policy_h, rm_h;
    int have_rm;
    KVCache kv;
    char **prompts;
    char **prompt_where; // "FILE:LINE" of each prompt of --prompts, or "--prompt"
    size_t n_prompts;
    int *out_tokens; // (max_new) scratch for one sample
    float *out_logprobs;
} Sampler;

// One generated sample, ready to report.
typedef struct {
    size_t prompt_index;
    int sample_index, n_tokens, ended;
    const char *stop_reason; // why it did not end
    char *response;          // decoded up to the end of the turn
    double logprob_sum;
    int have_reward;
    float reward;
} Sample;

static void sampler_free(Sampler *s) {
    tokenizer_free(s->tok);
    gpt_free(&s->policy);
    gpt_free(&s->rm);
    kvcache_free(&s->kv);
    for (size_t i = 0; i < s->n_prompts; i++) free(s->prompts[i]), free(s->prompt_where[i]);
    free(s->prompts), free(s->prompt_where);
    free(s->out_tokens), free(s->out_logprobs);
}

static int add_prompt(Sampler *s, const char *text, const char *where, Error *err) {
    char **grown = realloc(s->prompts, (s->n_prompts + 1) * sizeof *grown);
    if (grown) s->prompts = grown;
    char **grown_where = realloc(s->prompt_where, (s->n_prompts + 1) * sizeof *grown_where);
    if (grown_where) s->prompt_where = grown_where;
    char *copy = strdup(text), *where_copy = strdup(where);
    if (!grown || !grown_where || !copy || !where_copy) {
        free(copy), free(where_copy);
        return error_set(err, "out of memory");
    }
    s->prompts[s->n_prompts] = copy;
    s->prompt_where[s->n_prompts++] = where_copy;
    return 0;
}

static int load_prompts(Sampler *s, const char *path, Error *err) {
    JsonlReader r;
    if (strcmp(path, "-") ? jsonl_open(&r, path, err) : jsonl_open_stream(&r, stdin, "<stdin>", err)) return -1;
    cJSON *o;
    int rc;
    while ((rc = jsonl_next(&r, &o, err)) == 1) {
        const char *text = jsonl_string(&r, o, "prompt", err);
        char where[4096 + 32];
        snprintf(where, sizeof where, "%s:%ld", r.path, r.line);
        rc = text ? add_prompt(s, text, where, err) : -1;
        cJSON_Delete(o);
        if (rc) break;
    }
    jsonl_close(&r);
    if (rc == 0 && s->n_prompts == 0) rc = error_set(err, "%s: no prompts", r.path);
    return rc;
}

// The ids generation starts from: the chat template up to <|assistant|>, or
// with --raw the end-of-text token (a document boundary, as in pretraining)
// and the text.
static int prompt_ids(const Sampler *s, const Settings *st, const char *prompt, int **ids, size_t *n,
                      Error *err) {
    if (!st->raw) return chat_format(s->tok, prompt, NULL, ids, n, NULL, err);
    int *text = NULL;
    size_t n_text = 0;
    if (tokenizer_encode(s->tok, prompt, strlen(prompt), 0, &text, &n_text, err)) return -1;
    *ids = malloc((n_text + 1) * sizeof(int));
    if (!*ids) {
        free(text);
        return error_set(err, "out of memory");
    }
    (*ids)[0] = tokenizer_special(s->tok, TOK_ENDOFTEXT);
    if (n_text) memcpy(*ids + 1, text, n_text * sizeof(int));
    *n = n_text + 1;
    free(text);
    return 0;
}

// Where the response ends: chat responses end at the token that ends the
// turn, raw continuations at the end-of-text token.
static size_t response_length(const Sampler *s, const Settings *st, const int *ids, size_t n) {
    if (!st->raw) return chat_response_length(s->tok, ids, n);
    int eot = tokenizer_special(s->tok, TOK_ENDOFTEXT);
    for (size_t i = 0; i < n; i++)
        if (ids[i] == eot) return i;
    return n;
}

// The ids of prompt pi, refused (naming its file and line) when they leave
// no room for a response in the model's context.
static int encode_prompt(const Sampler *s, const Settings *st, size_t pi, int **ids, size_t *n,
                         Error *err) {
    Error inner;
    if (prompt_ids(s, st, s->prompts[pi], ids, n, &inner))
        return error_set(err, "%s: %s", s->prompt_where[pi], inner.msg);
    int T = s->policy.config.max_seq_len;
    if (*n >= (size_t)T) {
        free(*ids);
        *ids = NULL;
        return error_set(err, "%s: prompt is %zu tokens; the model's context of %d leaves no room for a response",
                         s->prompt_where[pi], *n, T);
    }
    return 0;
}

// Every prompt is checked before the first sample is printed, so a bad one
// late in the file does not cut the output short halfway.
static int check_prompts_fit(const Sampler *s, const Settings *st, Error *err) {
    for (size_t pi = 0; pi < s->n_prompts; pi++) {
        int *ids = NULL;
        size_t n = 0;
        if (encode_prompt(s, st, pi, &ids, &n, err)) return -1;
        free(ids);
        if (!s->have_rm) continue;
        Error inner;
        if (chat_format(s->tok, s->prompts[pi], NULL, &ids, &n, NULL, &inner))
            return error_set(err, "%s: %s", s->prompt_where[pi], inner.msg);
        free(ids);
        if (n + 1 > (size_t)s->rm.config.max_seq_len)
            return error_set(err, "%s: prompt is %zu tokens; the context of reward model %s (%d) leaves no room "
                             "for a response", s->prompt_where[pi], n, st->rm, s->rm.config.max_seq_len);
    }
    return 0;
}

static int sampler_setup(Sampler *s, const Settings *st, Error *err) {
    memset(s, 0, sizeof *s);
    if (tokenizer_load(&s->tok, st->tokenizer, err)) return -1;
    CkptTokenizer tk = {st->tokenizer, tokenizer_fingerprint(s->tok), tokenizer_vocab_size(s->tok)};
    unsigned lm_or_policy = (1u << CKPT_LM) | (1u << CKPT_POLICY);
    if (run_load_model(&s->policy, &s->policy_h, st->model, lm_or_policy, &tk, err)) return -1;
    if (st->rm) {
        if (run_load_model(&s->rm, &s->rm_h, st->rm, 1u << CKPT_RM, &tk, err) ||
            gpt_alloc_activations(&s->rm, 1, s->rm.config.max_seq_len, err))
            return -1;
        s->have_rm = 1;
    }
    if (st->prompts ? load_prompts(s, st->prompts, err) : add_prompt(s, st->prompt, "--prompt", err)) return -1;
    if (check_prompts_fit(s, st, err)) return -1;
    int T = s->policy.config.max_seq_len;
    s->out_tokens = malloc((size_t)T * sizeof(int));
    s->out_logprobs = malloc((size_t)T * sizeof(float));
    if (!s->out_tokens || !s->out_logprobs) return error_set(err, "out of memory");
    return kvcache_create(&s->kv, &s->policy.config, 1, err);
}

static int draw_sample(Sampler *s, const Settings *st, Rng *rng, size_t pi, Sample *out, Error *err) {
    int *ids = NULL;
    size_t n = 0;
    Error inner;
    if (encode_prompt(s, st, pi, &ids, &n, err)) return -1;
    int T = s->policy.config.max_seq_len;
    int room = T - (int)n, budget = st->max_new > 0 && st->max_new < room ? st->max_new : room;
    SamplerConfig sc = {st->temperature, st->top_k, st->top_p};
    const int *prompts[1] = {ids};
    int prompt_len = (int)n, len = 0, eot = tokenizer_special(s->tok, TOK_ENDOFTEXT);
    generate(&s->policy, &s->kv, prompts, &prompt_len, 1, budget, eot, &sc, rng, s->out_tokens,
             s->out_logprobs, &len);
    free(ids);
    size_t kept = response_length(s, st, s->out_tokens, (size_t)len);
    out->prompt_index = pi;
    out->n_tokens = len;
    out->ended = kept < (size_t)len;
    out->stop_reason = out->ended ? "" : len == st->max_new ? "--max-new reached" : "context full";
    out->logprob_sum = 0;
    for (int i = 0; i < len; i++) out->logprob_sum += s->out_logprobs[i];
    // The response is its text (invalid UTF-8 as U+FFFD), and the reward is
    // that text's, read as score and train_rm read a response from a file
    // (rm_encode_generated in reward_model.h: one reward per text).
    if (tokenizer_decode_text(s->tok, s->out_tokens, kept, &out->response, err)) return -1;
    out->have_reward = s->have_rm;
    if (s->have_rm && rm_score_text(&s->rm, &s->rm_h, s->tok, s->prompts[pi], out->response, &out->reward, &inner)) {
        free(out->response);
        return error_set(err, "%s: %s (reward model %s)", s->prompt_where[pi], inner.msg, st->rm);
    }
    return 0;
}

// Text of one token for the log-probability table; special tokens, which
// decode to nothing, by name. The caller frees it.
static char *token_text(const Tokenizer *tok, int id) {
    for (int k = 0; k < TOK_NUM_SPECIAL; k++)
        if (tokenizer_special(tok, (TokSpecial)k) == id) return strdup(tokenizer_special_name(tok, (TokSpecial)k));
    char *text = NULL;
    size_t len;
    Error err;
    if (tokenizer_decode(tok, &id, 1, &text, &len, &err)) return strdup("?");
    return text;
}

// Quoted, with control characters escaped, so a newline token stays on its row.
static void print_quoted(const char *text) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '\n') fputs("\\n", stdout);
        else if (*p == '\t') fputs("\\t", stdout);
        else if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p < 0x20) printf("\\x%02x", *p);
        else putchar(*p);
    }
    putchar('"');
}

static void print_logprob_table(const Sampler *s, int n) {
    printf("%6s %6s %10s  %s\n", "#", "id", "logprob", "token");
    for (int i = 0; i < n; i++) {
        char *text = token_text(s->tok, s->out_tokens[i]);
        printf("%6d %6d %10.4f  ", i, s->out_tokens[i], (double)s->out_logprobs[i]);
        print_quoted(text ? text : "?");
        putchar('\n');
        free(text);
    }
}

static void print_sample(const Sampler *s, const Settings *st, const Sample *x) {
    printf("== prompt %zu, sample %d ==\n", x->prompt_index + 1, x->sample_index + 1);
    printf("prompt:   %s\n", s->prompts[x->prompt_index]);
    printf("response: %s\n", x->response);
    if (x->ended) printf("tokens:   %d, ended with the end token\n", x->n_tokens);
    else printf("tokens:   %d, did not end (%s)\n", x->n_tokens, x->stop_reason);
    printf("logprob:  %.4f (sum over the generated tokens)\n", x->logprob_sum);
    if (x->have_reward)
        printf("reward:   %+.4f (raw %.4f)\n", (double)x->reward,
               (double)(x->reward * s->rm_h.reward_std + s->rm_h.reward_mean));
    if (st->logprobs) print_logprob_table(s, x->n_tokens);
    printf("\n");
}

static cJSON *sample_json(const Sampler *s, const Settings *st, const Sample *x) {
    cJSON *o = cJSON_CreateObject();
    jsonl_add_number(o, "prompt_index", (double)x->prompt_index);
    jsonl_add_number(o, "sample_index", x->sample_index);
    jsonl_add_text(o, "prompt", s->prompts[x->prompt_index]);
    jsonl_add_text(o, "response", x->response);
    jsonl_add_number(o, "num_tokens", x->n_tokens);
    cJSON_AddBoolToObject(o, "ended", x->ended);
    if (!x->ended) cJSON_AddStringToObject(o, "stop_reason", x->stop_reason);
    jsonl_add_number(o, "logprob_sum", x->logprob_sum);
    if (x->have_reward) jsonl_add_number(o, "reward", x->reward);
    if (!st->logprobs) return o;
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens");
    for (int i = 0; i < x->n_tokens; i++) {
        cJSON *t = cJSON_CreateObject();
        char *text = token_text(s->tok, s->out_tokens[i]);
        jsonl_add_number(t, "id", s->out_tokens[i]);
        jsonl_add_text(t, "text", text ? text : "?");
        jsonl_add_number(t, "logprob", s->out_logprobs[i]);
        cJSON_AddItemToArray(tokens, t);
        free(text);
    }
    return o;
}

static cJSON *run_json_header(const Sampler *s, const Settings *st) {
    cJSON *doc = cJSON_CreateObject();
    char hex[16];
    jsonl_add_text(doc, "model", st->model);
    snprintf(hex, sizeof hex, "%08" PRIx32, s->policy_h.fingerprint);
    cJSON_AddStringToObject(doc, "model_fingerprint", hex);
    cJSON_AddStringToObject(doc, "model_kind", ckpt_kind_name((CkptKind)s->policy_h.kind));
    if (st->rm) jsonl_add_text(doc, "rm", st->rm);
    jsonl_add_number(doc, "seed", st->seed);
    jsonl_add_number(doc, "temperature", st->temperature);
    jsonl_add_number(doc, "top_k", st->top_k);
    jsonl_add_number(doc, "top_p", st->top_p);
    cJSON_AddBoolToObject(doc, "raw", st->raw);
    return doc;
}

// Draws st->n samples for every prompt from one seeded stream and reports
// each as it comes (text) or all at the end (JSON).
static int sample_all(Sampler *s, const Settings *st, Error *err) {
    Rng rng;
    rng_seed(&rng, (uint64_t)st->seed);
    cJSON *doc = st->json ? run_json_header(s, st) : NULL;
    cJSON *samples = doc ? cJSON_AddArrayToObject(doc, "samples") : NULL;
    if (!st->json)
        printf("model %s (%s, %s step %" PRIu64 ", %08" PRIx32 "); temperature %g, top-k %d, top-p %g, seed %d\n\n",
               st->model, ckpt_kind_name((CkptKind)s->policy_h.kind), s->policy_h.stage, s->policy_h.step,
               s->policy_h.fingerprint, (double)st->temperature, st->top_k, (double)st->top_p, st->seed);
    int rc = 0;
    for (size_t pi = 0; rc == 0 && pi < s->n_prompts; pi++) {
        for (int k = 0; rc == 0 && k < st->n; k++) {
            Sample x = {.sample_index = k};
            rc = draw_sample(s, st, &rng, pi, &x, err);
            if (rc) break;
            if (doc) cJSON_AddItemToArray(samples, sample_json(s, st, &x));
            else print_sample(s, st, &x);
            free(x.response);
        }
    }
    if (doc && rc == 0) {
        char *text = cJSON_Print(doc);
        if (text) printf("%s\n", text);
        free(text);
    }
    cJSON_Delete(doc);
    return rc;
}

int main(int argc, char **argv) {
    Settings st = {.n = 1, .seed = 1337, .temperature = 1.0f, .top_p = 1.0f};
    CliOption opts[] = {
        {"model", CLI_STRING | CLI_REQUIRED, &st.model, 0, 0, "language-model or policy checkpoint"},
        {"tokenizer", CLI_STRING | CLI_REQUIRED, &st.tokenizer, 0, 0, "tokenizer.bin the model was trained with"},
        {"prompt", CLI_STRING, &st.prompt, 0, 0, "one prompt"},
        {"prompts", CLI_STRING, &st.prompts, 0, 0, "JSONL file of {\"prompt\": ...}, - for standard input (instead of --prompt)"},
        {"n", CLI_INT, &st.n, 1, 100000, "samples per prompt"},
        {"temperature", CLI_FLOAT, &st.temperature, 0, 100, "sampling temperature (0: greedy)"},
        {"top-k", CLI_INT, &st.top_k, 0, 1 << 20, "sample among the k most likely tokens (0: all)"},
        {"top-p", CLI_FLOAT, &st.top_p, 1e-6, 1, "sample among the most likely tokens with this mass (1: all)"},
        {"seed", CLI_INT, &st.seed, 0, 2147483647, "seed of the sampling stream"},
        {"max-new", CLI_INT, &st.max_new, 0, 1 << 20, "most tokens per response (0: up to the context)"},
        {"raw", CLI_FLAG, &st.raw, 0, 0, "continue plain text instead of the chat template (pretrained models)"},
        {"logprobs", CLI_FLAG, &st.logprobs, 0, 0, "show each generated token with its log-probability"},
        {"rm", CLI_STRING, &st.rm, 0, 0, "reward-model checkpoint to score each sample with"},
        {"json", CLI_FLAG, &st.json, 0, 0, "machine-readable output (JSON, valid UTF-8: invalid bytes become U+FFFD)"},
        {"threads", CLI_INT, &st.threads, 0, 256, "threads (0: all cores)"},
    };
    int n_opts = sizeof opts / sizeof opts[0];
    Error err;
    int rc = cli_parse("sample", opts, n_opts, argc, argv, NULL, &err);
    if (rc == CLI_HELP)
        cli_print_help(stdout, "sample",
                       "Samples responses from a language model or policy, with log-probabilities\n"
                       "and reward-model scores on request.",
                       opts, n_opts);
    if (rc > 0) return 0;
    if (rc == 0 && !st.prompt == !st.prompts)
        rc = usage_error(&err, "give exactly one of --prompt and --prompts (see sample --help)");
    if (rc) error_exit_rc("sample", rc, &err);
    run_set_threads(st.threads);
    Sampler s;
    rc = sampler_setup(&s, &st, &err);
    if (rc == 0) rc = sample_all(&s, &st, &err);
    sampler_free(&s);
    if (rc) error_exit("sample", &err);
    return stdout_finish("sample", 0);
}
