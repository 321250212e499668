// The tokenizer file: round trip through disk, and refusal of every kind of
// damage with a clear message instead of a crash.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "common/bytes.h"
#include "common/fileio.h"
#include "common/rng.h"
#include "tests/tokenizer_test_util.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/tokenizer.h"

// Offsets in the file (docs/tokenizer.md).
#define OFF_VERSION 8
#define OFF_VOCAB 12
#define OFF_SPECIALS 16
#define OFF_MERGES 20
#define OFF_FIRST_NAME 24

typedef struct {
    Tokenizer *tok;
    uint8_t *image;
    size_t len;
    size_t merges_at; // offset of the first merge in the image
} Fixture;

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    size_t len;
    char *corpus = generated_corpus(3, 60000, &len);
    f->tok = train_on_text(corpus, len, 400, 2);
    free(corpus);
    Error err = {{0}};
    assert_int_equal(tokenizer_serialize(f->tok, &f->image, &f->len, &err), 0);
    f->merges_at = f->len - 4 - 8 * (size_t)tokenizer_num_merges(f->tok);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fixture *f = *state;
    tokenizer_free(f->tok);
    free(f->image);
    free(f);
    return 0;
}

// Parses buf and expects failure with a message containing want.
static void assert_refused(const uint8_t *buf, size_t len, const char *want) {
    Tokenizer *tok = (Tokenizer *)1;
    Error err = {{0}};
    assert_int_equal(tokenizer_parse(&tok, buf, len, "t.bin", &err), -1);
    assert_null(tok);
    if (strncmp(err.msg, "t.bin: ", 7) != 0) fail_msg("message does not name the file: '%s'", err.msg);
    if (want && !strstr(err.msg, want)) fail_msg("message '%s' lacks '%s'", err.msg, want);
}

static void fix_crc(uint8_t *buf, size_t len) {
    put_u32(buf + len - 4, (uint32_t)crc32(0L, buf, (uInt)(len - 4)));
}

static void test_round_trip_through_disk(void **state) {
    Fixture *f = *state;
    char path[] = "/tmp/test_tokenizer_file_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    Error err = {{0}};
    assert_int_equal(tokenizer_save(f->tok, path, &err), 0);
    Tokenizer *back = NULL;
    assert_int_equal(tokenizer_load(&back, path, &err), 0);
    assert_int_equal(tokenizer_vocab_size(back), tokenizer_vocab_size(f->tok));
    assert_int_equal(tokenizer_fingerprint(back), tokenizer_fingerprint(f->tok));
    // The fingerprint is the file's CRC-32 of everything before it.
    assert_int_equal(tokenizer_fingerprint(back), crc32(0L, f->image, (uInt)(f->len - 4)));
    for (int i = 0; i < tokenizer_num_merges(back); i++) {
        uint32_t a, b, c, d;
        tokenizer_merge(back, i, &a, &b);
        tokenizer_merge(f->tok, i, &c, &d);
        assert_int_equal(a, c);
        assert_int_equal(b, d);
    }
    unsigned char *disk = NULL;
    size_t disk_len = 0;
    assert_int_equal(read_file(path, 1 << 20, &disk, &disk_len, &err), 0);
    assert_int_equal(disk_len, f->len);
    assert_memory_equal(disk, f->image, f->len);
    free(disk);
    tokenizer_free(back);
    unlink(path);
    // Missing file.
    assert_int_equal(tokenizer_load(&back, path, &err), -1);
    assert_null(back);
    assert_non_null(strstr(err.msg, "cannot open"));
}

static void test_truncated_at_every_offset(void **state) {
    Fixture *f = *state;
    for (size_t n = 0; n < f->len; n++) {
        uint8_t *copy = malloc(n ? n : 1); // exact size, so ASan sees any overread
        memcpy(copy, f->image, n);
        assert_refused(copy, n, n < 28 ? "too short" : NULL);
        free(copy);
    }
    // And a truncated file with a freshly computed checksum fails structurally.
    size_t n = f->len - 6;
    uint8_t *copy = malloc(n);
    memcpy(copy, f->image, n);
    fix_crc(copy, n);
    assert_refused(copy, n, NULL);
    free(copy);
}

static void test_flipped_bytes(void **state) {
    Fixture *f = *state;
    uint8_t *copy = malloc(f->len);
    for (size_t i = 0; i < f->len; i++) {
        memcpy(copy, f->image, f->len);
        copy[i] ^= (uint8_t)(1u << (i % 8));
        assert_refused(copy, f->len, i < 8 ? "bad magic" : i < 12 ? "version" : "checksum mismatch");
    }
    free(copy);
}

// Damage with a valid checksum: the structure itself must be checked.
static void test_bad_fields_with_valid_checksum(void **state) {
    Fixture *f = *state;
    uint8_t *c = malloc(f->len + 16);
#define RESET() memcpy(c, f->image, f->len)
    RESET();
    memcpy(c, "GGUFxxxx", 8);
    assert_refused(c, f->len, "bad magic");
    RESET();
    put_u32(c + OFF_VERSION, 2);
    fix_crc(c, f->len);
    assert_refused(c, f->len, "unsupported tokenizer file version 2");
    RESET();
    put_u32(c + OFF_MERGES, 0xFFFFFFFFu);
    fix_crc(c, f->len);
    assert_refused(c, f->len, "more than the limit");
    RESET();
    put_u32(c + OFF_MERGES, 1000000);
    fix_crc(c, f->len);
    assert_refused(c, f->len, "do not fit");
    RESET();
    put_u32(c + OFF_VOCAB, 0xFFFFFFF0u);
    fix_crc(c, f->len);
    assert_refused(c, f->len, "does not match");
    RESET();
    put_u32(c + OFF_SPECIALS, 70000);
    fix_crc(c, f->len);
    assert_refused(c, f->len, "special tokens, expected 4");
    RESET();
    put_u32(c + OFF_FIRST_NAME + 4, 0xFFFFFFF0u); // length of the first special's name
    fix_crc(c, f->len);
    assert_refused(c, f->len, "name of");
    RESET();
    put_u32(c + OFF_FIRST_NAME, 300); // id of the first special
    fix_crc(c, f->len);
    assert_refused(c, f->len, "expected 256");
    RESET();
    c[OFF_FIRST_NAME + 8] = '\n';
    fix_crc(c, f->len);
    assert_refused(c, f->len, "not printable");
    RESET();
    put_u32(c + f->merges_at, 400); // merge 0 refers to an id made later
    fix_crc(c, f->len);
    assert_refused(c, f->len, "merge 0 uses id 400, which is not defined before it");
    RESET();
    put_u32(c + f->merges_at + 12, 257); // merge 1's right is a special token
    fix_crc(c, f->len);
    assert_refused(c, f->len, "merge 1 uses special token 257");
    RESET();
    memcpy(c + f->merges_at + 8, c + f->merges_at, 8); // merge 1 repeats merge 0
    fix_crc(c, f->len);
    assert_refused(c, f->len, "repeats the pair");
    RESET();
    // Trailing bytes after the merges.
    memcpy(c + f->len, c + f->len - 4, 4);
    memset(c + f->len - 4, 0, 4);
    fix_crc(c, f->len + 4);
    assert_refused(c, f->len + 4, "unexpected bytes");
#undef RESET
    free(c);
}

// Merges that double a token each time would describe exponentially long
// tokens from a few bytes of file; the length limit stops it.
// Random damage behind a valid checksum: every file either loads into a
// tokenizer that still round-trips text, or is refused; nothing crashes.
static void test_random_damage_with_valid_checksum(void **state) {
    Fixture *f = *state;
    Rng rng;
    rng_seed(&rng, 5);
    uint8_t *c = malloc(f->len);
    int loaded = 0, refused = 0;
    for (int k = 0; k < 3000; k++) {
        memcpy(c, f->image, f->len);
        int n_changes = 1 + (int)rng_below(&rng, 3);
        for (int j = 0; j < n_changes; j++) {
            size_t at = 12 + rng_below(&rng, f->len - 16);
            // Small values, huge values or random bits, so ids land near the limits.
            uint32_t v = rng_below(&rng, 3) == 0 ? (uint32_t)rng_below(&rng, 600)
                         : rng_below(&rng, 2) ? 0xFFFFFFFFu - (uint32_t)rng_below(&rng, 4)
                                              : (uint32_t)rng_u64(&rng);
            if (at + 4 <= f->len - 4) put_u32(c + at, v);
            else c[at] ^= (uint8_t)v;
        }
        fix_crc(c, f->len);
        Tokenizer *tok = NULL;
        Error err = {{0}};
        if (tokenizer_parse(&tok, c, f->len, "t.bin", &err) != 0) {
            assert_null(tok);
            assert_true(strncmp(err.msg, "t.bin: ", 7) == 0);
            refused++;
            continue;
        }
        loaded++;
        const char *text = "Some text, ümlauts and 日本語 😀 to encode.";
        int *ids = NULL;
        size_t n = 0, back_len = 0;
        char *back = NULL;
        assert_int_equal(tokenizer_encode(tok, text, strlen(text), 0, &ids, &n, &err), 0);
        assert_int_equal(tokenizer_decode(tok, ids, n, &back, &back_len, &err), 0);
        assert_string_equal(back, text);
        free(back);
        free(ids);
        tokenizer_free(tok);
    }
    assert_true(refused > 1000); // most damage is caught
    assert_true(loaded > 0);     // e.g. a merge rewired to another valid pair
    free(c);
}

static void test_token_length_limit(void **state) {
    (void)state;
    uint32_t merges[2 * 10];
    merges[0] = merges[1] = 'a';
    for (int i = 1; i < 10; i++) merges[2 * i] = merges[2 * i + 1] = (uint32_t)(TOK_FIRST_MERGE + i - 1);
    Tokenizer *tok = NULL;
    Error err = {{0}};
    assert_int_equal(tokenizer_from_merges(&tok, merges, 7, &err), 0); // 128 bytes: allowed
    size_t len;
    assert_non_null(tokenizer_token_bytes(tok, TOK_FIRST_MERGE + 6, &len));
    assert_int_equal(len, 128);
    tokenizer_free(tok);
    assert_int_equal(tokenizer_from_merges(&tok, merges, 10, &err), -1);
    assert_null(tok);
    assert_non_null(strstr(err.msg, "merge 7 makes a token of 256 bytes"));
}

static void test_no_merges_file(void **state) {
    (void)state;
    Tokenizer *tok = NULL;
    Error err = {{0}};
    assert_int_equal(tokenizer_from_merges(&tok, NULL, 0, &err), 0);
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(tokenizer_serialize(tok, &buf, &len, &err), 0);
    Tokenizer *back = NULL;
    assert_int_equal(tokenizer_parse(&back, buf, len, "t.bin", &err), 0);
    assert_int_equal(tokenizer_vocab_size(back), 260);
    assert_int_equal(tokenizer_fingerprint(back), tokenizer_fingerprint(tok));
    tokenizer_free(back);
    tokenizer_free(tok);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_through_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_at_every_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_fields_with_valid_checksum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_damage_with_valid_checksum, setup, teardown),
        cmocka_unit_test(test_token_length_limit),
        cmocka_unit_test(test_no_merges_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
