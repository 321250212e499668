// Tokenizer behaviour: pre-tokenisation rules, the merges learned on tiny
// hand-made corpora, special tokens, NFC, invalid UTF-8, determinism.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tokenizer_test_util.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/text.h"
#include "tokenizer/tokenizer.h"

// Checks that text splits into exactly the pre-tokens listed (NULL-terminated).
static void assert_pretokens(const char *text, const char *const *expected) {
    const uint8_t *s = (const uint8_t *)text;
    size_t len = strlen(text), pos = 0, k = 0;
    while (pos < len) {
        size_t end = pretoken_end(s, len, pos);
        assert_true(end > pos && end <= len);
        if (!expected[k]) fail_msg("'%s': extra pre-token '%.*s'", text, (int)(end - pos), text + pos);
        if (strlen(expected[k]) != end - pos || memcmp(expected[k], text + pos, end - pos) != 0)
            fail_msg("'%s': pre-token %zu is '%.*s', expected '%s'", text, k, (int)(end - pos),
                     text + pos, expected[k]);
        k++;
        pos = end;
    }
    if (expected[k]) fail_msg("'%s': missing pre-token '%s'", text, expected[k]);
}

static void test_pretokenize_rules(void **state) {
    (void)state;
    assert_pretokens("Hello, world! It's 2024.",
                     (const char *[]){"Hello", ",", " world", "!", " It", "'s", " 2024", ".", NULL});
    // Runs of spaces leave their last space to the next word, as in GPT-2.
    assert_pretokens("  two  spaces\n\nnew end   ",
                     (const char *[]){" ", " two", " ", " spaces", "\n", "\n", "new", " end", "   ", NULL});
    assert_pretokens("don't we'll they're",
                     (const char *[]){"don", "'t", " we", "'ll", " they", "'re", NULL});
    assert_pretokens("\tword x--y", (const char *[]){"\t", "word", " x", "--", "y", NULL});
    // Beyond ASCII: letters, marks, numbers and spaces come from Unicode categories.
    assert_pretokens("café naïve", (const char *[]){"café", " naïve", NULL});
    assert_pretokens("日本語テキスト。次", (const char *[]){"日本語テキスト", "。", "次", NULL});
    assert_pretokens("x² a\xC2\xA0" "b", (const char *[]){"x", "²", " a", "\xC2\xA0", "b", NULL});
    assert_pretokens("e\xCC\x81\xCC\xA3z", (const char *[]){"e\xCC\x81\xCC\xA3z", NULL});
    assert_pretokens("hi 😀😀! ٣٤", (const char *[]){"hi", " 😀😀!", " ٣٤", NULL});
}

static void test_pretoken_length_cap(void **state) {
    (void)state;
    char text[301];
    memset(text, 'a', 300);
    text[300] = 0;
    assert_int_equal(pretoken_end((const uint8_t *)text, 300, 0), PRETOKEN_MAX_BYTES);
    assert_int_equal(pretoken_end((const uint8_t *)text, 300, 256), 300);
    // A cut never splits a character: 50 three-byte characters, cap 128 -> 126.
    char cjk[151];
    for (int i = 0; i < 50; i++) memcpy(cjk + 3 * i, "\xE4\xB8\x80", 3);
    assert_int_equal(pretoken_end((const uint8_t *)cjk, 150, 0), 126);
}

static void assert_merges(const Tokenizer *tok, const uint32_t *expected, int n) {
    assert_int_equal(tokenizer_num_merges(tok), n);
    for (int i = 0; i < n; i++) {
        uint32_t left, right;
        tokenizer_merge(tok, i, &left, &right);
        if (left != expected[2 * i] || right != expected[2 * i + 1])
            fail_msg("merge %d is (%u, %u), expected (%u, %u)", i, left, right, expected[2 * i],
                     expected[2 * i + 1]);
    }
}

static void assert_encodes_to(const Tokenizer *tok, const char *text, const int *expected, size_t n) {
    int *ids = NULL;
    size_t n_ids = 0;
    Error err = {{0}};
    assert_int_equal(tokenizer_encode(tok, text, strlen(text), 0, &ids, &n_ids, &err), 0);
    assert_int_equal(n_ids, n);
    for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], expected[i]);
    free(ids);
}

// "low":1, " lower":1, " lowest":1, " low":2. (l,o) and (o,w) both occur 5
// times; the tie goes to the lower left id, 'l' = 108.
static void test_merges_on_hand_made_corpus(void **state) {
    (void)state;
    const char *corpus = "low lower lowest low low";
    Tokenizer *tok = train_on_text(corpus, strlen(corpus), 1000, 2);
    const uint32_t expected[] = {'l', 'o', 260, 'w', ' ', 261, 262, 'e'};
    assert_merges(tok, expected, 4);
    assert_int_equal(tokenizer_vocab_size(tok), 264); // stopped: every pair left is seen once
    size_t len;
    const uint8_t *bytes = tokenizer_token_bytes(tok, 263, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(bytes, " lowe", 5);
    assert_encodes_to(tok, "lowest", (const int[]){261, 'e', 's', 't'}, 4);
    assert_encodes_to(tok, " lower low", (const int[]){263, 'r', 262}, 3);
    tokenizer_free(tok);

    // With min_frequency 1 training continues with the pairs seen once, and
    // vocab_size caps it.
    tok = train_on_text(corpus, strlen(corpus), 266, 1);
    assert_int_equal(tokenizer_vocab_size(tok), 266);
    tokenizer_free(tok);
}

// "ab":1, " ab":1, " cd":2: (32,99), (97,98), (99,100) all occur twice.
static void test_ties_go_to_lowest_ids(void **state) {
    (void)state;
    const char *corpus = "ab ab cd cd";
    Tokenizer *tok = train_on_text(corpus, strlen(corpus), 1000, 2);
    const uint32_t expected[] = {' ', 'c', 'a', 'b', 260, 'd'};
    assert_merges(tok, expected, 3);
    tokenizer_free(tok);
}

// Merging must follow the corpus as it changes, and overlapping pairs merge
// left to right. "aaaa":1, " aaaa":2, " aaa":1: after (a,a) -> 260, the pairs
// (' ',260) and (260,260) both occur 3 times and the tie goes to ' ' = 32;
// then " aaaa" is [261, 260] twice while "aaaa" alone keeps (260,260).
static void test_overlapping_pairs(void **state) {
    (void)state;
    const char *corpus = "aaaa aaaa aaaa aaa";
    Tokenizer *tok = train_on_text(corpus, strlen(corpus), 1000, 2);
    const uint32_t expected[] = {'a', 'a', ' ', 260, 261, 260};
    assert_merges(tok, expected, 3);
    assert_encodes_to(tok, "aaaaa", (const int[]){260, 260, 'a'}, 3);
    assert_encodes_to(tok, " aaa", (const int[]){261, 'a'}, 2);
    assert_encodes_to(tok, " aaaa", (const int[]){262}, 1);
    tokenizer_free(tok);
}

// The incremental pair counts must give exactly the merges of the obvious
// algorithm that recounts every pair of every word before each merge.
typedef struct {
    uint32_t sym[PRETOKEN_MAX_BYTES];
    size_t len;
    int64_t count;
} NaiveWord;

typedef struct {
    uint32_t a, b;
    int64_t count;
} NaivePair;

static int naive_pair_order(const void *x, const void *y) {
    const NaivePair *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    if (p->b != q->b) return p->b < q->b ? -1 : 1;
    return 0;
}

// Every adjacent position of every word, sorted and summed: the best pair.
static int64_t naive_best_pair(const NaiveWord *words, size_t n_words, NaivePair *scratch,
                               uint32_t *best_a, uint32_t *best_b) {
    size_t n = 0;
    for (size_t w = 0; w < n_words; w++)
        for (size_t i = 0; i + 1 < words[w].len; i++)
            scratch[n++] = (NaivePair){words[w].sym[i], words[w].sym[i + 1], words[w].count};
    qsort(scratch, n, sizeof *scratch, naive_pair_order);
    int64_t best = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        int64_t c = 0;
        while (j < n && naive_pair_order(&scratch[i], &scratch[j]) == 0) c += scratch[j++].count;
        if (c > best) { // sorted ascending, so the first of equal counts has the lowest ids
            best = c;
            *best_a = scratch[i].a;
            *best_b = scratch[i].b;
        }
        i = j;
    }
    return best;
}

static int naive_train(NaiveWord *words, size_t n_words, size_t n_positions, int n_wanted,
                       uint32_t *merges) {
    NaivePair *scratch = malloc((n_positions + 1) * sizeof *scratch);
    int n = 0;
    for (; n < n_wanted; n++) {
        uint32_t a = 0, b = 0;
        if (naive_best_pair(words, n_words, scratch, &a, &b) < 2) break;
        merges[2 * n] = a;
        merges[2 * n + 1] = b;
        for (size_t w = 0; w < n_words; w++) {
            size_t out = 0;
            for (size_t i = 0; i < words[w].len; out++) {
                if (i + 1 < words[w].len && words[w].sym[i] == a && words[w].sym[i + 1] == b) {
                    words[w].sym[out] = (uint32_t)(TOK_FIRST_MERGE + n);
                    i += 2;
                } else {
                    words[w].sym[out] = words[w].sym[i++];
                }
            }
            words[w].len = out;
        }
    }
    free(scratch);
    return n;
}

static int same_word(const NaiveWord *w, const char *s, size_t len) {
    if (w->len != len) return 0;
    for (size_t i = 0; i < len; i++)
        if (w->sym[i] != (uint8_t)s[i]) return 0;
    return 1;
}

static void test_incremental_matches_recount(void **state) {
    (void)state;
    size_t len, nfc_len;
    char *corpus = generated_corpus(77, 20000, &len);
    char *nfc = nfc_of(corpus, len, &nfc_len);
    NaiveWord *words = calloc(nfc_len, sizeof *words);
    size_t n_words = 0;
    for (size_t pos = 0, end; pos < nfc_len; pos = end) {
        end = pretoken_end((const uint8_t *)nfc, nfc_len, pos);
        size_t w = 0;
        while (w < n_words && !same_word(&words[w], nfc + pos, end - pos)) w++;
        if (w == n_words) {
            words[n_words].len = end - pos;
            for (size_t i = 0; i < end - pos; i++) words[n_words].sym[i] = (uint8_t)nfc[pos + i];
            n_words++;
        }
        words[w].count++;
    }
    uint32_t naive[2 * 200];
    int n_naive = naive_train(words, n_words, nfc_len, 200, naive);
    assert_true(n_naive > 100);
    Tokenizer *tok = train_on_text(corpus, len, TOK_FIRST_MERGE + 200, 2);
    assert_merges(tok, naive, n_naive);
    tokenizer_free(tok);
    free(words);
    free(nfc);
    free(corpus);
}

static void test_specials_never_come_from_text(void **state) {
    (void)state;
    const char *text = "<|endoftext|> hello <|user|><|assistant|> <|pad|> world <|endoftext|>\n";
    char corpus[8192] = "";
    for (int i = 0; i < 60; i++) strcat(corpus, text);
    Tokenizer *tok = train_on_text(corpus, strlen(corpus), 400, 2);
    assert_true(tokenizer_num_merges(tok) > 20);
    const char *names[] = {"<|endoftext|>", "<|user|>", "<|assistant|>", "<|pad|>"};
    for (int s = 0; s < TOK_NUM_SPECIAL; s++) {
        assert_int_equal(tokenizer_special(tok, (TokSpecial)s), 256 + s);
        assert_string_equal(tokenizer_special_name(tok, (TokSpecial)s), names[s]);
    }
    int *ids = NULL;
    size_t n = 0;
    Error err = {{0}};
    assert_int_equal(tokenizer_encode(tok, corpus, strlen(corpus), 0, &ids, &n, &err), 0);
    for (size_t i = 0; i < n; i++) assert_true(ids[i] < 256 || ids[i] >= 260);
    assert_true(n < strlen(corpus) / 4); // the literal names compress into ordinary merges
    char *back = NULL;
    size_t back_len = 0;
    assert_int_equal(tokenizer_decode(tok, ids, n, &back, &back_len, &err), 0);
    assert_int_equal(back_len, strlen(corpus));
    assert_memory_equal(back, corpus, back_len);
    free(back);
    free(ids);
    // Specials decode to nothing.
    int mixed[] = {256, 'h', 257, 'i', 258, 259};
    assert_int_equal(tokenizer_decode(tok, mixed, 6, &back, &back_len, &err), 0);
    assert_string_equal(back, "hi");
    free(back);
    tokenizer_free(tok);
}

static void test_nfc_before_encoding(void **state) {
    (void)state;
    const char *corpus = "café café résumé naïve café";
    Tokenizer *tok = train_on_text(corpus, strlen(corpus), 300, 2);
    int *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    Error err = {{0}};
    const char *composed = "un café", *decomposed = "un cafe\xCC\x81";
    assert_int_equal(tokenizer_encode(tok, composed, strlen(composed), 0, &a, &na, &err), 0);
    assert_int_equal(tokenizer_encode(tok, decomposed, strlen(decomposed), 0, &b, &nb, &err), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(tokenizer_decode(tok, b, nb, &text, &len, &err), 0);
    assert_string_equal(text, composed);
    free(text);
    free(a);
    free(b);
    tokenizer_free(tok);
}

static void assert_invalid_at(const Tokenizer *tok, const char *text, size_t len, size_t offset) {
    int *ids = (int *)1;
    size_t n = 7;
    Error err = {{0}};
    assert_int_equal(tokenizer_encode(tok, text, len, 0, &ids, &n, &err), -1);
    assert_null(ids);
    assert_int_equal(n, 0);
    char want[64];
    snprintf(want, sizeof want, "invalid UTF-8 at byte offset %zu", offset);
    if (!strstr(err.msg, want)) fail_msg("message '%s' lacks '%s'", err.msg, want);
}

static void assert_lossy_gives(const Tokenizer *tok, const char *text, size_t len, const char *want,
                               size_t want_len) {
    int *ids = NULL;
    size_t n = 0;
    Error err = {{0}};
    assert_int_equal(tokenizer_encode(tok, text, len, 1, &ids, &n, &err), 0);
    char *back = NULL;
    size_t back_len = 0;
    assert_int_equal(tokenizer_decode(tok, ids, n, &back, &back_len, &err), 0);
    assert_int_equal(back_len, want_len);
    assert_memory_equal(back, want, back_len);
    free(back);
    free(ids);
}

static void test_invalid_utf8(void **state) {
    (void)state;
    const char *corpus = "abc abc abc";
    Tokenizer *tok = train_on_text(corpus, strlen(corpus), 300, 2);
    assert_invalid_at(tok, "abc\xff", 4, 3);
    assert_invalid_at(tok, "ab\xC0\xAF", 4, 2);          // overlong '/'
    assert_invalid_at(tok, "é\xED\xA0\x80", 5, 2);       // surrogate U+D800
    assert_invalid_at(tok, "x\xF4\x90\x80\x80", 5, 1);   // above U+10FFFF
    assert_invalid_at(tok, "abcd\xE2\x82", 6, 4);        // cut short at the end
    assert_invalid_at(tok, "a\x80", 2, 1);               // lone continuation byte
    // Lossy: one U+FFFD per maximal ill-formed subsequence.
    assert_lossy_gives(tok, "abc\xff", 4, "abc\xEF\xBF\xBD", 6);
    assert_lossy_gives(tok, "\xE2\x82x", 3, "\xEF\xBF\xBDx", 4);
    assert_lossy_gives(tok, "a\xC0\xAF" "b", 4, "a\xEF\xBF\xBD\xEF\xBF\xBD" "b", 8);
    // NUL is a valid character and survives.
    assert_lossy_gives(tok, "a\0b", 3, "a\0b", 3);
    tokenizer_free(tok);
}

static void test_decode_rejects_bad_ids(void **state) {
    (void)state;
    const char *corpus = "abc abc abc";
    Tokenizer *tok = train_on_text(corpus, strlen(corpus), 300, 2);
    int vocab = tokenizer_vocab_size(tok);
    char *text = NULL;
    size_t len = 0;
    Error err = {{0}};
    int bad1[] = {'a', -1};
    assert_int_equal(tokenizer_decode(tok, bad1, 2, &text, &len, &err), -1);
    assert_non_null(strstr(err.msg, "token id -1 at position 1 is out of range"));
    int bad2[] = {vocab};
    assert_int_equal(tokenizer_decode(tok, bad2, 1, &text, &len, &err), -1);
    assert_null(text);
    assert_int_equal(tokenizer_decode(tok, NULL, 0, &text, &len, &err), 0);
    assert_string_equal(text, "");
    free(text);
    // Empty text encodes to no ids.
    int *ids = NULL;
    size_t n = 5;
    assert_int_equal(tokenizer_encode(tok, "", 0, 0, &ids, &n, &err), 0);
    assert_int_equal(n, 0);
    free(ids);
    tokenizer_free(tok);
}

static uint8_t *image_of(const Tokenizer *tok, size_t *len) {
    uint8_t *buf = NULL;
    Error err = {{0}};
    assert_int_equal(tokenizer_serialize(tok, &buf, len, &err), 0);
    return buf;
}

static void test_training_is_deterministic(void **state) {
    (void)state;
    size_t len;
    char *corpus = generated_corpus(11, 200000, &len);
    Tokenizer *a = train_on_text(corpus, len, 800, 2), *b = train_on_text(corpus, len, 800, 2);
    Tokenizer *c = train_on_text(corpus, len, 801, 2);
    assert_int_equal(tokenizer_vocab_size(a), 800);
    size_t la, lb, lc;
    uint8_t *ia = image_of(a, &la), *ib = image_of(b, &lb), *ic = image_of(c, &lc);
    assert_int_equal(la, lb);
    assert_memory_equal(ia, ib, la);
    assert_int_equal(tokenizer_fingerprint(a), tokenizer_fingerprint(b));
    assert_true(tokenizer_fingerprint(a) != tokenizer_fingerprint(c));
    // One vocabulary is a prefix of the other: training is greedy.
    assert_int_equal(lc, la + 8);
    free(ia);
    free(ib);
    free(ic);
    tokenizer_free(a);
    tokenizer_free(b);
    tokenizer_free(c);
    free(corpus);
}

// A long input goes through the per-call cache of pre-tokens; the ids must be
// those of the pieces encoded one by one.
static void test_cached_encoding_matches_uncached(void **state) {
    (void)state;
    size_t len;
    char *corpus = generated_corpus(5, 100000, &len);
    Tokenizer *tok = train_on_text(corpus, len, 600, 2);
    const char *unit = "Hello wörld, 日本語 don't 😀!\n";
    size_t unit_len = strlen(unit), reps = 300;
    char *text = malloc(unit_len * reps + 1);
    for (size_t i = 0; i < reps; i++) memcpy(text + i * unit_len, unit, unit_len);
    int *one = NULL, *all = NULL;
    size_t n_one = 0, n_all = 0;
    Error err = {{0}};
    assert_int_equal(tokenizer_encode(tok, unit, unit_len, 0, &one, &n_one, &err), 0);
    assert_int_equal(tokenizer_encode(tok, text, unit_len * reps, 0, &all, &n_all, &err), 0);
    assert_int_equal(n_all, n_one * reps);
    for (size_t i = 0; i < reps; i++) assert_memory_equal(all + i * n_one, one, n_one * sizeof *one);
    free(one);
    free(all);
    free(text);
    tokenizer_free(tok);
    free(corpus);
}

static void test_training_refuses_bad_settings(void **state) {
    (void)state;
    BpeTrainConfig cfg = {.vocab_size = 259, .min_frequency = 2};
    BpeTrainer *trainer = NULL;
    Error err = {{0}};
    assert_int_equal(bpe_trainer_new(&trainer, &cfg, &err), -1);
    assert_null(trainer);
    assert_non_null(strstr(err.msg, "vocabulary size 259 is smaller than the 256 byte tokens plus 4"));
    cfg.vocab_size = 260; // bytes and specials only: legal, no merges
    assert_int_equal(bpe_trainer_new(&trainer, &cfg, &err), 0);
    Tokenizer *tok = NULL;
    assert_int_equal(bpe_trainer_add_text(trainer, "", 0, "empty.txt", &err), 0);
    assert_int_equal(bpe_trainer_train(trainer, &tok, &err), -1);
    assert_null(tok);
    assert_non_null(strstr(err.msg, "empty corpus"));
    assert_int_equal(bpe_trainer_add_text(trainer, "ok\xff", 3, "bad.txt", &err), -1);
    assert_string_equal(err.msg, "bad.txt: invalid UTF-8 at byte offset 2");
    assert_int_equal(bpe_trainer_add_text(trainer, "hello hello", 11, "good.txt", &err), 0);
    assert_int_equal(bpe_trainer_train(trainer, &tok, &err), 0);
    assert_int_equal(tokenizer_vocab_size(tok), 260);
    assert_encodes_to(tok, "hi", (const int[]){'h', 'i'}, 2);
    tokenizer_free(tok);
    bpe_trainer_free(trainer);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pretokenize_rules),
        cmocka_unit_test(test_pretoken_length_cap),
        cmocka_unit_test(test_merges_on_hand_made_corpus),
        cmocka_unit_test(test_ties_go_to_lowest_ids),
        cmocka_unit_test(test_overlapping_pairs),
        cmocka_unit_test(test_incremental_matches_recount),
        cmocka_unit_test(test_specials_never_come_from_text),
        cmocka_unit_test(test_nfc_before_encoding),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_decode_rejects_bad_ids),
        cmocka_unit_test(test_training_is_deterministic),
        cmocka_unit_test(test_cached_encoding_matches_uncached),
        cmocka_unit_test(test_training_refuses_bad_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
