// Property tests: decode(encode(x)) == NFC(x) for thousands of random strings
// mixing scripts, and lossy encoding of random bytes always yields valid UTF-8.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "tests/tokenizer_test_util.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/text.h"
#include "tokenizer/tokenizer.h"

#define N_STRINGS 4000

static int setup(void **state) {
    size_t len;
    char *corpus = generated_corpus(1, 300000, &len);
    *state = train_on_text(corpus, len, 1500, 2);
    free(corpus);
    return 0;
}

static int teardown(void **state) {
    tokenizer_free(*state);
    return 0;
}

static void assert_ids_valid(const Tokenizer *tok, const int *ids, size_t n) {
    int vocab = tokenizer_vocab_size(tok);
    for (size_t i = 0; i < n; i++) {
        assert_true(ids[i] >= 0 && ids[i] < vocab);
        assert_false(ids[i] >= TOK_FIRST_SPECIAL && ids[i] < TOK_FIRST_MERGE);
    }
}

static void test_decode_encode_is_nfc(void **state) {
    const Tokenizer *tok = *state;
    assert_true(tokenizer_num_merges(tok) > 1000); // merges of every script get exercised
    Rng rng;
    rng_seed(&rng, 2024);
    char text[4 * 200 + 8];
    size_t total_ids = 0, total_bytes = 0;
    for (int k = 0; k < N_STRINGS; k++) {
        size_t n_chars = rng_below(&rng, 120), len = 0;
        for (size_t c = 0; c < n_chars; c++) len += append_random_char(&rng, text + len);
        size_t want_len;
        char *want = nfc_of(text, len, &want_len);
        int *ids = NULL;
        size_t n_ids = 0;
        Error err = {{0}};
        if (tokenizer_encode(tok, text, len, 0, &ids, &n_ids, &err) != 0)
            fail_msg("string %d: %s", k, err.msg);
        assert_ids_valid(tok, ids, n_ids);
        char *back = NULL;
        size_t back_len = 0;
        assert_int_equal(tokenizer_decode(tok, ids, n_ids, &back, &back_len, &err), 0);
        if (back_len != want_len || memcmp(back, want, want_len) != 0)
            fail_msg("string %d: decode(encode(x)) differs from NFC(x)", k);
        total_ids += n_ids;
        total_bytes += want_len;
        free(back);
        free(ids);
        free(want);
    }
    // Merges must actually apply, not just byte fallback.
    assert_true(total_ids < total_bytes * 2 / 3);
}

static void test_lossy_random_bytes(void **state) {
    const Tokenizer *tok = *state;
    Rng rng;
    rng_seed(&rng, 99);
    uint8_t bytes[64];
    for (int k = 0; k < N_STRINGS / 2; k++) {
        size_t len = rng_below(&rng, sizeof bytes);
        for (size_t i = 0; i < len; i++) {
            // Mostly bytes that start or continue multi-byte sequences.
            bytes[i] = rng_below(&rng, 4) ? (uint8_t)(0x80 + rng_below(&rng, 0x80))
                                          : (uint8_t)rng_below(&rng, 0x80);
        }
        size_t bad = utf8_first_invalid(bytes, len);
        int *ids = NULL;
        size_t n_ids = 0;
        Error err = {{0}};
        int rc = tokenizer_encode(tok, (const char *)bytes, len, 0, &ids, &n_ids, &err);
        if (bad < len) {
            char want[64];
            snprintf(want, sizeof want, "invalid UTF-8 at byte offset %zu", bad);
            assert_int_equal(rc, -1);
            assert_string_equal(err.msg, want);
        } else {
            assert_int_equal(rc, 0);
            free(ids);
        }
        assert_int_equal(tokenizer_encode(tok, (const char *)bytes, len, 1, &ids, &n_ids, &err), 0);
        assert_ids_valid(tok, ids, n_ids);
        char *back = NULL;
        size_t back_len = 0;
        assert_int_equal(tokenizer_decode(tok, ids, n_ids, &back, &back_len, &err), 0);
        assert_int_equal(utf8_first_invalid((const uint8_t *)back, back_len), back_len);
        if (bad == len) { // valid input comes back as its NFC form
            size_t want_len;
            char *want = nfc_of((const char *)bytes, len, &want_len);
            assert_int_equal(back_len, want_len);
            assert_memory_equal(back, want, want_len);
            free(want);
        }
        free(back);
        free(ids);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_encode_is_nfc),
        cmocka_unit_test(test_lossy_random_bytes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
