// The sample command: reproducible from its seed, log-probabilities that are
// those of the model (checked against a full forward pass here), top-k 1
// equal to greedy decoding, reward-model scores equal to the scalar head at
// the end token, normalised by the header, and clear refusals of bad input.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/chat_template.h"
#include "model/checkpoint.h"
#include "model/gpt.h"
#include "tests/testutil.h"
#include "tokenizer/tokenizer.h"

#define PROMPT "Say something memorable about cats."

typedef struct {
    char dir[256], bin[512], sample[600], data[512], tok[600], pre[600], sft[600], rm[600];
} Fixture;

// Writes a reward model made from the SFT checkpoint with a known head and
// normalisation, so that its scores can be recomputed exactly here.
static int make_reward_model(Fixture *f) {
    CkptHeader h;
    float *params;
    Error err;
    if (ckpt_load(f->sft, &h, &params, &err)) return -1;
    ParameterTensors p;
    gpt_point_params(&p, params, &h.config);
    for (int i = 0; i < h.config.n_embd; i++) p.headw[i] = 0.1f * (float)(i % 3 - 1);
    p.headb[0] = 0.5f;
    h.kind = CKPT_RM;
    h.reward_mean = 0.25f, h.reward_std = 0.5f;
    snprintf(f->rm, sizeof f->rm, "%s/rm.bin", f->dir);
    int rc = ckpt_save(f->rm, &h, params, &err);
    free(params);
    return rc;
}

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    char out[16384];
    make_temp_dir(f->dir, sizeof f->dir);
    bin_path(f->bin, sizeof f->bin, "");
    bin_path(f->sample, sizeof f->sample, "sample");
    src_path(f->data, sizeof f->data, "data");
    snprintf(f->tok, sizeof f->tok, "%s/tok.bin", f->dir);
    snprintf(f->pre, sizeof f->pre, "%s/pre/model.bin", f->dir);
    snprintf(f->sft, sizeof f->sft, "%s/sft/model.bin", f->dir);
    int rc = make_smoke_chain(f->dir, "sft");
    if (rc == 0) rc = run_cmd(out, sizeof out, "head -n 5 %s/prompts_eval.jsonl > %s/five.jsonl", f->data, f->dir);
    if (rc == 0) rc = make_reward_model(f);
    *state = f;
    return rc;
}

static int teardown(void **state) {
    Fixture *f = *state;
    char out[256];
    run_cmd(out, sizeof out, "rm -rf %s", f->dir);
    free(f);
    return 0;
}

// Runs `sample --model MODEL --tokenizer T ARGS --json` and parses stdout.
static cJSON *sample_json(const Fixture *f, const char *model, const char *args) {
    size_t n = 1 << 20;
    char *out = malloc(n);
    int rc = run_cmd(out, n, "(%s --model %s --tokenizer %s %s --json 2>/dev/null)", f->sample, model, f->tok, args);
    if (rc) printf("%s\n", out);
    cJSON *doc = cJSON_Parse(out);
    free(out);
    assert_int_equal(rc, 0);
    assert_non_null(doc);
    return doc;
}

static double num(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

// A model and tokenizer loaded here, to recompute what sample reports.
typedef struct {
    Tokenizer *tok;
    GPT m;
} Reference;

static void reference_load(Reference *r, const Fixture *f, const char *path) {
    CkptHeader h;
    float *params;
    Error err;
    assert_int_equal(tokenizer_load(&r->tok, f->tok, &err), 0);
    assert_int_equal(ckpt_load(path, &h, &params, &err), 0);
    assert_int_equal(gpt_create(&r->m, &h.config, &err), 0);
    memcpy(r->m.params_memory, params, r->m.num_params * sizeof(float));
    free(params);
    assert_int_equal(gpt_alloc_activations(&r->m, 1, h.config.max_seq_len, &err), 0);
}

static void reference_free(Reference *r) {
    tokenizer_free(r->tok);
    gpt_free(&r->m);
}

static void test_same_seed_same_output(void **state) {
    Fixture *f = *state;
    size_t n = 1 << 16;
    char *a = malloc(n), *b = malloc(n), *c = malloc(n);
    const char *fmt = "%s --model %s --tokenizer %s --prompts %s/five.jsonl --n 2 --max-new 24 --seed %d";
    assert_int_equal(run_cmd(a, n, fmt, f->sample, f->sft, f->tok, f->dir, 5), 0);
    assert_int_equal(run_cmd(b, n, fmt, f->sample, f->sft, f->tok, f->dir, 5), 0);
    assert_int_equal(run_cmd(c, n, fmt, f->sample, f->sft, f->tok, f->dir, 6), 0);
    assert_non_null(strstr(a, "== prompt 5, sample 2 =="));
    assert_string_equal(a, b);
    // The seed is in the first line; what follows must differ too.
    assert_string_not_equal(strchr(a, '\n'), strchr(c, '\n'));
    free(a), free(b), free(c);
}

// log softmax(logits)[id] at the last position of a full forward pass.
static double logprob_of(GPT *m, const int *ids, int n, int id) {
    gpt_forward(m, ids, 1, n, 1);
    const float *logits = m->acts.logits + (size_t)(n - 1) * m->config.vocab_size;
    double mx = -INFINITY, sum = 0;
    for (int v = 0; v < m->config.vocab_size; v++) mx = fmax(mx, logits[v]);
    for (int v = 0; v < m->config.vocab_size; v++) sum += exp(logits[v] - mx);
    return logits[id] - mx - log(sum);
}

// At temperature 1 without truncation, each reported log-probability is the
// model's, which a full forward pass over prompt + earlier tokens recomputes.
static void test_logprobs_are_the_models(void **state) {
    Fixture *f = *state;
    Reference r;
    reference_load(&r, f, f->sft);
    cJSON *doc = sample_json(f, f->sft, "--prompt '" PROMPT "' --n 3 --max-new 20 --logprobs --seed 3");
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(doc, "samples")) {
        const cJSON *tokens = cJSON_GetObjectItem(s, "tokens");
        int count = (int)num(s, "num_tokens");
        assert_true(count > 0);
        assert_int_equal(cJSON_GetArraySize(tokens), count);
        int *ids = NULL;
        size_t n = 0;
        Error err;
        assert_int_equal(chat_format(r.tok, PROMPT, NULL, &ids, &n, NULL, &err), 0);
        ids = realloc(ids, (n + (size_t)count) * sizeof(int));
        double sum = 0;
        for (int i = 0; i < count; i++) {
            const cJSON *t = cJSON_GetArrayItem(tokens, i);
            double lp = num(t, "logprob");
            int id = (int)num(t, "id");
            assert_true(lp <= 0);
            assert_true(fabs(lp - logprob_of(&r.m, ids, (int)n + i, id)) < 1e-3);
            ids[n + (size_t)i] = id;
            sum += lp;
        }
        assert_true(fabs(sum - num(s, "logprob_sum")) < 1e-4);
        free(ids);
    }
    cJSON_Delete(doc);
    reference_free(&r);
    // The text table has one row per generated token.
    char out[65536];
    assert_int_equal(run_cmd(out, sizeof out, "%s --model %s --tokenizer %s --prompt '" PROMPT "' --max-new 12 --logprobs",
                             f->sample, f->sft, f->tok), 0);
    const char *at = strstr(out, "tokens:   ");
    assert_non_null(at);
    int count = atoi(at + 10), rows = 0;
    at = strstr(at, "logprob  token\n");
    assert_non_null(at);
    for (at = strchr(at, '\n') + 1; *at && *at != '\n'; at = strchr(at, '\n') + 1) rows++;
    assert_int_equal(rows, count);
}

static void test_top_k_1_is_greedy(void **state) {
    Fixture *f = *state;
    char args[1024];
    snprintf(args, sizeof args, "--prompts %s/five.jsonl --n 2 --max-new 16 --top-k 1 --seed 1 --logprobs", f->dir);
    cJSON *a = sample_json(f, f->sft, args);
    snprintf(args, sizeof args, "--prompts %s/five.jsonl --n 2 --max-new 16 --temperature 0 --seed 2 --logprobs", f->dir);
    cJSON *b = sample_json(f, f->sft, args);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(a, "samples")), 10);
    assert_true(cJSON_Compare(cJSON_GetObjectItem(a, "samples"), cJSON_GetObjectItem(b, "samples"), 1));
    cJSON_Delete(a), cJSON_Delete(b);
}

// Each reward is (head at the end token of <|user|> prompt <|assistant|>
// response <|endoftext|> - 0.25) / 0.5 under the crafted reward model, the
// response being the sample's text encoded again (rm_encode_generated: the
// reward of a text, whichever ids were drawn for it).
static double expected_reward(Reference *r, const cJSON *sample) {
    int *ids = NULL;
    size_t n = 0;
    Error err;
    const char *response = cJSON_GetStringValue(cJSON_GetObjectItem(sample, "response"));
    assert_non_null(response);
    assert_int_equal(chat_format(r->tok, PROMPT, response, &ids, &n, NULL, &err), 0);
    gpt_forward(&r->m, ids, 1, (int)n, 0);
    free(ids);
    return (r->m.head[n - 1] - 0.25) / 0.5;
}

static void test_rm_scores(void **state) {
    Fixture *f = *state;
    Reference r;
    reference_load(&r, f, f->rm);
    char args[1024];
    snprintf(args, sizeof args, "--prompt '" PROMPT "' --n 3 --max-new 16 --logprobs --rm %s", f->rm);
    cJSON *doc = sample_json(f, f->sft, args);
    const cJSON *s;
    double first = NAN;
    int differ = 0;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(doc, "samples")) {
        double got = num(s, "reward");
        assert_true(fabs(got - expected_reward(&r, s)) < 1e-4);
        differ |= !isnan(first) && got != first;
        first = got;
    }
    assert_true(differ); // the head reads the response, not a constant
    cJSON_Delete(doc);
    reference_free(&r);
    char out[16384];
    assert_int_equal(run_cmd(out, sizeof out, "%s --model %s --tokenizer %s --prompt hi --max-new 4 --rm %s",
                             f->sample, f->sft, f->tok, f->rm), 0);
    assert_non_null(strstr(out, "reward:   "));
}

static void test_raw_continuation(void **state) {
    Fixture *f = *state;
    cJSON *doc = sample_json(f, f->pre, "--prompt 'The' --raw --max-new 10 --seed 4");
    const cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "samples"), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "raw")));
    assert_true(num(s, "num_tokens") >= 1 && num(s, "num_tokens") <= 10);
    if (cJSON_IsFalse(cJSON_GetObjectItem(s, "ended"))) assert_string_equal(str(s, "stop_reason"), "--max-new reached");
    cJSON_Delete(doc);
}

static void test_bad_input(void **state) {
    Fixture *f = *state;
    char out[16384];
    const char *s = f->sample, *t = f->tok;
    assert_int_equal(run_cmd(out, sizeof out, "%s --model %s/none.bin --tokenizer %s --prompt x", s, f->dir, t), 1);
    assert_non_null(strstr(out, "sample: "));
    assert_non_null(strstr(out, "none.bin: cannot open"));
    assert_int_equal(run_cmd(out, sizeof out, "head -c 1000 %s > %s/cut.bin && %s --model %s/cut.bin --tokenizer %s --prompt x",
                             f->sft, f->dir, s, f->dir, t), 1);
    assert_non_null(strstr(out, "cut.bin: "));
    assert_int_equal(run_cmd(out, sizeof out, "%s --model %s --tokenizer %s --prompt x", s, f->rm, t), 1);
    assert_non_null(strstr(out, "rm.bin: is a reward-model checkpoint; expected a language-model or policy"));
    assert_int_equal(run_cmd(out, sizeof out, "%s --model %s --tokenizer %s --prompt x --rm %s", s, f->sft, t, f->pre), 1);
    assert_non_null(strstr(out, "is a language-model checkpoint; expected a reward-model"));
    assert_int_equal(run_cmd(out, sizeof out, "%sbpe train --input %s/fortunes.jsonl --jsonl-field text --vocab 400 --out %s/other.bin && "
                             "%s --model %s --tokenizer %s/other.bin --prompt x",
                             f->bin, f->data, f->dir, s, f->sft, f->dir), 1);
    assert_non_null(strstr(out, "trained with tokenizer"));
    assert_int_equal(run_cmd(out, sizeof out, "printf '{\"prompt\":\"a\"}\\n{\"text\":\"b\"}\\n' > %s/bad.jsonl && "
                             "%s --model %s --tokenizer %s --prompts %s/bad.jsonl", f->dir, s, f->sft, t, f->dir), 1);
    assert_non_null(strstr(out, "bad.jsonl:2: missing field \"prompt\""));
    assert_int_equal(run_cmd(out, sizeof out, "%s --model %s --tokenizer %s", s, f->sft, t), 2); // a usage error
    assert_non_null(strstr(out, "exactly one of --prompt and --prompts"));
    assert_int_equal(run_cmd(out, sizeof out, "%s --help", s), 0);
    assert_non_null(strstr(out, "--top-p X"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_output),
        cmocka_unit_test(test_logprobs_are_the_models),
        cmocka_unit_test(test_top_k_1_is_greedy),
        cmocka_unit_test(test_rm_scores),
        cmocka_unit_test(test_raw_continuation),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
