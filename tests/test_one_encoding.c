// One encoding everywhere (issue 19): a response gets one reward per text,
// whichever program scores it and whichever ids a sampler drew for it.
// ppo and evaluate score rollouts (rollout_decode + rollout_rm_scores),
// sample --rm and score call rm_score_text, train_rm formats its pairs with
// rm_encode and scores them in padded batches. A response drawn as ids that
// are not the tokenizer's encoding of their own text (single bytes where BPE
// would merge, a stray byte that is not UTF-8) must score alike on every path,
// and differently from its raw ids, which is what ppo used to score.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/chat_template.h"
#include "ppo/rollout.h"
#include "reward_model/reward_model.h"
#include "tokenizer/bpe_train.h"

static const char CORPUS[] =
    "Tell me a fortune about love. Love is blind. -- Anonymous\n"
    "Give me a fortune on computers. A computer lets you make more mistakes faster.\n"
    "Share something wise about work. Work is the curse of the drinking classes.\n"
    "Tell me a fortune about food. Yow! Am I having fun yet?\n";

static const char PROMPT[] = "Tell me a fortune about work.";
static const char RESPONSE[] = "Work is the curse of the drinking classes.";

typedef struct {
    Tokenizer *tok;
    GPT rm;
    CkptHeader h;
} Fixture;

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    BpeTrainConfig cfg = {.vocab_size = 400, .min_frequency = 2, .lossy = 0};
    BpeTrainer *trainer = NULL;
    Error err = {{0}};
    int rc = bpe_trainer_new(&trainer, &cfg, &err);
    for (int i = 0; rc == 0 && i < 20; i++) rc = bpe_trainer_add_text(trainer, CORPUS, strlen(CORPUS), "corpus", &err);
    if (rc == 0) rc = bpe_trainer_train(trainer, &f->tok, &err);
    bpe_trainer_free(trainer);
    if (rc) fail_msg("training the test tokenizer: %s", err.msg);
    GPTConfig mc = {.vocab_size = tokenizer_vocab_size(f->tok)};
    if (gpt_config_named(&mc, "smoke", &err) || gpt_create(&f->rm, &mc, &err) ||
        gpt_alloc_activations(&f->rm, 4, mc.max_seq_len, &err))
        fail_msg("%s", err.msg);
    gpt_init_random(&f->rm, 7);
    // A head that reads the trunk (a fresh model's is zero: every reward equal).
    for (int c = 0; c <= mc.n_embd; c++) f->rm.params.headw[c] = (float)sin(1.7 * c + 0.3);
    f->h.reward_mean = 0.25f, f->h.reward_std = 2.0f;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fixture *f = *state;
    tokenizer_free(f->tok);
    gpt_free(&f->rm);
    free(f);
    return 0;
}

static int *encode(const Tokenizer *tok, const char *text, size_t *n) {
    int *ids = NULL;
    Error err;
    if (tokenizer_encode(tok, text, strlen(text), 0, &ids, n, &err)) fail_msg("%s", err.msg);
    return ids;
}

// The id that decodes to the single byte b.
static int byte_id(const Tokenizer *tok, unsigned char b) {
    for (int id = 0; id < tokenizer_vocab_size(tok); id++) {
        char *text = NULL;
        size_t len = 0;
        Error err;
        if (tokenizer_decode(tok, &id, 1, &text, &len, &err) == 0 && len == 1 && (unsigned char)text[0] == b) {
            free(text);
            return id;
        }
        free(text);
    }
    fail_msg("no token for byte 0x%02x", b);
    return -1;
}

// RESPONSE drawn as the ids of its bytes: the same text, other ids.
static size_t bytewise(const Tokenizer *tok, const char *text, int *out) {
    size_t n = 0;
    for (const char *c = text; *c; c++) out[n++] = byte_id(tok, (unsigned char)*c);
    return n;
}

// Reward of (prompt, ids) read from a one-row rollout the way ppo and
// evaluate read it; with raw, of the sampled ids themselves (the old rule).
static float rollout_reward(Fixture *f, const int *resp, int n, int ended, int raw) {
    int eot = tokenizer_special(f->tok, TOK_ENDOFTEXT), pad = tokenizer_special(f->tok, TOK_PAD);
    int ctx = f->rm.config.max_seq_len;
    char *text = strdup(PROMPT);
    int *prompt_ids = NULL;
    size_t q = 0;
    Error err;
    assert_int_equal(chat_format(f->tok, PROMPT, NULL, &prompt_ids, &q, NULL, &err), 0);
    int category = 0, len = (int)q;
    PromptSet ps = {.text = &text, .ids = &prompt_ids, .len = &len, .category = &category, .n = 1};
    Rollout r;
    assert_int_equal(rollout_alloc(&r, 1, n + 1, ctx, &err), 0);
    memcpy(r.resp, resp, (size_t)n * sizeof *resp);
    r.resp_len[0] = n + ended, r.ended[0] = ended;
    if (ended) r.resp[n] = eot;
    if (raw) { // prompt, the drawn ids, the end token
        memcpy(r.rm_ids, prompt_ids, q * sizeof *prompt_ids);
        memcpy(r.rm_ids + q, resp, (size_t)n * sizeof *resp);
        r.rm_ids[q + n] = eot, r.rm_len[0] = (int)q + n + 1;
    } else {
        assert_int_equal(rollout_decode(&r, &ps, f->tok, NULL, NULL, &err), 0);
    }
    int idx = 0, lens[1], *inputs = malloc((size_t)ctx * sizeof(int));
    rollout_rm_scores(&f->rm, &f->h, &r, &idx, 1, pad, inputs, lens);
    float reward = r.score[0];
    free(inputs), free(text), free(prompt_ids);
    rollout_free(&r);
    return reward;
}

// train_rm's path: rm_encode each response, pad them into one batch.
static float batch_reward(Fixture *f, const char *response, const char *other) {
    int *ids[2] = {NULL, NULL}, lens[2];
    Error err;
    assert_int_equal(rm_encode(f->tok, PROMPT, other, f->rm.config.max_seq_len, &ids[0], &lens[0], &err), 0);
    assert_int_equal(rm_encode(f->tok, PROMPT, response, f->rm.config.max_seq_len, &ids[1], &lens[1], &err), 0);
    int *inputs = malloc((size_t)2 * f->rm.config.max_seq_len * sizeof(int));
    int T = rm_fill_rows(inputs, ids, lens, 2, tokenizer_special(f->tok, TOK_PAD));
    float raw[2];
    rm_forward(&f->rm, inputs, lens, 2, T, raw);
    free(inputs), free(ids[0]), free(ids[1]);
    return (raw[1] - f->h.reward_mean) / f->h.reward_std;
}

static float text_reward(Fixture *f, const char *response) {
    float reward;
    Error err;
    assert_int_equal(rm_score_text(&f->rm, &f->h, f->tok, PROMPT, response, &reward, &err), 0);
    return reward;
}

static void test_bytewise_ids_score_as_their_text(void **state) {
    Fixture *f = *state;
    size_t n_canon;
    int *canon = encode(f->tok, RESPONSE, &n_canon);
    int bytes[256];
    size_t n_bytes = bytewise(f->tok, RESPONSE, bytes);
    assert_true(n_bytes > n_canon); // BPE merged something: the ids differ
    float by_text = text_reward(f, RESPONSE);
    for (int ended = 0; ended <= 1; ended++) {
        float from_canon = rollout_reward(f, canon, (int)n_canon, ended, 0);
        float from_bytes = rollout_reward(f, bytes, (int)n_bytes, ended, 0);
        // Every path reads the same ids: equal up to the order of float sums
        // in batches of other shapes.
        assert_float_equal(from_bytes, from_canon, 1e-5);
        assert_float_equal(from_bytes, by_text, 1e-5);
        assert_float_equal(batch_reward(f, RESPONSE, "Love is blind."), by_text, 1e-5);
        // Scoring the drawn ids themselves gives another reward: the test
        // can fail, and did with the rule it replaced.
        float raw = rollout_reward(f, bytes, (int)n_bytes, ended, 1);
        assert_true(fabsf(raw - by_text) > 1e-3f);
    }
    free(canon);
}

// A response cut inside a character (a lone lead byte) or holding a NUL is
// read as text with U+FFFD in their place, on every path.
static void test_invalid_bytes_score_as_replacement_characters(void **state) {
    Fixture *f = *state;
    int ids[256];
    size_t n = bytewise(f->tok, "Work is", ids);
    ids[n++] = byte_id(f->tok, 0xC3); // lead byte of a two-byte character, then a space
    ids[n++] = byte_id(f->tok, ' ');
    ids[n++] = byte_id(f->tok, 0x00);
    n += bytewise(f->tok, "fun", ids + n);
    char *text = NULL;
    Error err;
    assert_int_equal(chat_response_text(f->tok, ids, n, &text, &err), 0);
    assert_string_equal(text, "Work is\xEF\xBF\xBD \xEF\xBF\xBD" "fun");
    size_t n_enc;
    int *enc = encode(f->tok, text, &n_enc); // valid UTF-8 now: the encoder takes it
    free(enc);
    float by_text = text_reward(f, text);
    assert_float_equal(rollout_reward(f, ids, (int)n, 1, 0), by_text, 1e-5);
    assert_float_equal(batch_reward(f, text, "Yow!"), by_text, 1e-5);
    free(text);
}

// rm_encode_generated hands back the text it scored: the text the annotator
// judges is the one the reward model reads.
static void test_generated_text_is_returned(void **state) {
    Fixture *f = *state;
    int bytes[256], *ids = NULL, n = 0;
    size_t n_bytes = bytewise(f->tok, RESPONSE, bytes);
    bytes[n_bytes] = tokenizer_special(f->tok, TOK_ENDOFTEXT);
    bytes[n_bytes + 1] = byte_id(f->tok, 'x'); // after the turn: not part of the response
    char *text = NULL;
    Error err;
    assert_int_equal(rm_encode_generated(f->tok, PROMPT, bytes, n_bytes + 2, f->rm.config.max_seq_len, &ids, &n, &text,
                                         &err), 0);
    assert_string_equal(text, RESPONSE);
    int *expect = NULL, n_expect = 0;
    assert_int_equal(rm_encode(f->tok, PROMPT, RESPONSE, f->rm.config.max_seq_len, &expect, &n_expect, &err), 0);
    assert_int_equal(n, n_expect);
    assert_memory_equal(ids, expect, (size_t)n * sizeof *ids);
    free(ids), free(expect), free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytewise_ids_score_as_their_text),
        cmocka_unit_test(test_invalid_bytes_score_as_replacement_characters),
        cmocka_unit_test(test_generated_text_is_returned),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
