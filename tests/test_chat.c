// Tests of the chat template: the layout of formatted ids, where the
// response starts, and reading a response back from generated ids.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "data/chat_template.h"
#include "tokenizer/bpe_train.h"

// Enough repeated text that BPE learns merges spanning whole words, so the
// tests see multi-byte tokens and not just bytes.
static const char CORPUS[] =
    "Tell me a fortune about love. Love is blind. -- Anonymous\n"
    "Give me a fortune on computers. A computer lets you make more mistakes faster.\n"
    "Share something wise about work. Work is the curse of the drinking classes.\n"
    "Tell me a fortune about food. Yow! Am I having fun yet?\n";

static int setup_tokenizer(void **state) {
    BpeTrainConfig cfg = {.vocab_size = 400, .min_frequency = 2, .lossy = 0};
    BpeTrainer *trainer = NULL;
    Tokenizer *tok = NULL;
    Error err = {{0}};
    int rc = bpe_trainer_new(&trainer, &cfg, &err);
    for (int i = 0; rc == 0 && i < 20; i++)
        rc = bpe_trainer_add_text(trainer, CORPUS, strlen(CORPUS), "test corpus", &err);
    if (rc == 0) rc = bpe_trainer_train(trainer, &tok, &err);
    bpe_trainer_free(trainer);
    if (rc != 0) fail_msg("training the test tokenizer failed: %s", err.msg);
    *state = tok;
    return 0;
}

static int teardown_tokenizer(void **state) {
    tokenizer_free(*state);
    return 0;
}

static int *encode(const Tokenizer *tok, const char *text, size_t *n) {
    int *ids = NULL;
    Error err;
    if (tokenizer_encode(tok, text, strlen(text), 0, &ids, n, &err) != 0) fail_msg("%s", err.msg);
    return ids;
}

static int is_special(const Tokenizer *tok, int id) {
    for (int s = 0; s < TOK_NUM_SPECIAL; s++)
        if (id == tokenizer_special(tok, (TokSpecial)s)) return 1;
    return 0;
}

static void test_pair_layout(void **state) {
    const Tokenizer *tok = *state;
    const char *prompt = "Tell me a fortune about love.", *response = "Love is blind. -- Anonymous";
    int *ids = NULL;
    size_t n = 0, start = 0, n_prompt, n_response;
    Error err;
    assert_int_equal(chat_format(tok, prompt, response, &ids, &n, &start, &err), 0);
    int *p = encode(tok, prompt, &n_prompt), *r = encode(tok, response, &n_response);
    assert_true(n_prompt > 0 && n_response > 0);
    assert_true(n_prompt < strlen(prompt)); // merges were learned and used
    // [USER] prompt [ASSISTANT] response [END]
    assert_int_equal(n, 1 + n_prompt + 1 + n_response + 1);
    assert_int_equal(ids[0], tokenizer_special(tok, TOK_USER));
    assert_memory_equal(ids + 1, p, n_prompt * sizeof *p);
    assert_int_equal(start, n_prompt + 2);
    assert_int_equal(ids[start - 1], tokenizer_special(tok, TOK_ASSISTANT));
    assert_memory_equal(ids + start, r, n_response * sizeof *r);
    assert_int_equal(ids[n - 1], tokenizer_special(tok, TOK_ENDOFTEXT));
    for (size_t i = 1; i < n - 1; i++)
        if (i != start - 1) assert_false(is_special(tok, ids[i]));
    // The loss span ids[start..n) decodes to exactly the response.
    char *text = NULL;
    assert_int_equal(chat_response_text(tok, ids + start, n - start, &text, &err), 0);
    assert_string_equal(text, response);
    assert_int_equal(chat_response_length(tok, ids + start, n - start), n_response);
    free(text);
    free(p);
    free(r);
    free(ids);
}

static void test_prompt_only_is_a_prefix(void **state) {
    const Tokenizer *tok = *state;
    int *pair = NULL, *prompt_only = NULL;
    size_t n_pair, n_prompt, start_pair, start_prompt;
    Error err;
    assert_int_equal(chat_format(tok, "Give me a fortune on computers.", "Yow!", &pair, &n_pair,
                                 &start_pair, &err), 0);
    assert_int_equal(chat_format(tok, "Give me a fortune on computers.", NULL, &prompt_only,
                                 &n_prompt, &start_prompt, &err), 0);
    // Generation starts exactly where the response of a pair starts.
    assert_int_equal(n_prompt, start_pair);
    assert_int_equal(start_prompt, n_prompt);
    assert_int_equal(prompt_only[n_prompt - 1], tokenizer_special(tok, TOK_ASSISTANT));
    assert_memory_equal(prompt_only, pair, n_prompt * sizeof *pair);
    free(pair);
    free(prompt_only);
}

static void test_empty_texts(void **state) {
    const Tokenizer *tok = *state;
    int *ids = NULL;
    size_t n, start;
    Error err;
    assert_int_equal(chat_format(tok, "", "", &ids, &n, &start, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(start, 2);
    assert_int_equal(ids[0], tokenizer_special(tok, TOK_USER));
    assert_int_equal(ids[1], tokenizer_special(tok, TOK_ASSISTANT));
    assert_int_equal(ids[2], tokenizer_special(tok, TOK_ENDOFTEXT));
    free(ids);
}

// Generated ids run past the end of the turn; only the part before counts.
static void test_response_text_stops_at_end_of_turn(void **state) {
    const Tokenizer *tok = *state;
    size_t n_yow, n_junk;
    int *yow = encode(tok, "Yow! Am I having fun yet?", &n_yow);
    int *junk = encode(tok, "Work is the curse", &n_junk);
    int generated[256];
    assert_true(n_yow + 1 + n_junk <= 256);
    memcpy(generated, yow, n_yow * sizeof *yow);
    memcpy(generated + n_yow + 1, junk, n_junk * sizeof *junk);
    const TokSpecial enders[] = {TOK_ENDOFTEXT, TOK_USER};
    for (int k = 0; k < 2; k++) {
        generated[n_yow] = tokenizer_special(tok, enders[k]);
        char *text = NULL;
        Error err;
        assert_int_equal(chat_response_text(tok, generated, n_yow + 1 + n_junk, &text, &err), 0);
        assert_string_equal(text, "Yow! Am I having fun yet?");
        assert_int_equal(chat_response_length(tok, generated, n_yow + 1 + n_junk), n_yow);
        free(text);
    }
    // Without an end token (generation hit its length limit) all of it counts.
    char *text = NULL;
    Error err;
    assert_int_equal(chat_response_length(tok, yow, n_yow), n_yow);
    assert_int_equal(chat_response_text(tok, yow, n_yow, &text, &err), 0);
    assert_string_equal(text, "Yow! Am I having fun yet?");
    free(text);
    free(yow);
    free(junk);
}

static void test_invalid_utf8_names_the_part(void **state) {
    const Tokenizer *tok = *state;
    int *ids = NULL;
    size_t n = 0, start = 0;
    Error err = {{0}};
    assert_int_equal(chat_format(tok, "fine", "caf\xe9", &ids, &n, &start, &err), -1);
    assert_null(ids);
    assert_non_null(strstr(err.msg, "response"));
    assert_int_equal(chat_format(tok, "\xff", "fine", &ids, &n, &start, &err), -1);
    assert_null(ids);
    assert_non_null(strstr(err.msg, "prompt"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pair_layout),
        cmocka_unit_test(test_prompt_only_is_a_prefix),
        cmocka_unit_test(test_empty_texts),
        cmocka_unit_test(test_response_text_stops_at_end_of_turn),
        cmocka_unit_test(test_invalid_utf8_names_the_part),
    };
    return cmocka_run_group_tests(tests, setup_tokenizer, teardown_tokenizer);
}
