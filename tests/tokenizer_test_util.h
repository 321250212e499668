// Helpers shared by the tokenizer tests: small tokenizers trained in-process
// and a generated corpus that mixes scripts.
#ifndef TESTS_TOKENIZER_TEST_UTIL_H
#define TESTS_TOKENIZER_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"
#include "tokenizer/bpe_train.h"

// Trains on text (one document) or fails the test.
Tokenizer *train_on_text(const char *text, size_t len, int vocab, int min_frequency);

// Appends one random character of a random kind (ASCII, accented, combining
// mark, CJK, Hangul jamo, emoji, other 4-byte) to buf as UTF-8; returns bytes written.
size_t append_random_char(Rng *rng, char *buf);

// About `bytes` bytes of word-like text drawing on every kind above; malloc'ed.
char *generated_corpus(uint64_t seed, size_t bytes, size_t *len);

// The NFC form of s, computed with utf8proc directly; malloc'ed.
char *nfc_of(const char *s, size_t len, size_t *out_len);

#endif
