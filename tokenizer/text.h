// Text preparation shared by training and encoding: UTF-8 checking, NFC
// normalisation and GPT-2 style pre-tokenisation. Training and encoding must
// agree on all three, or merges learned in one would not apply in the other.
#ifndef TOKENIZER_TEXT_H
#define TOKENIZER_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

// Longest pre-token in bytes; longer runs are cut at a character boundary.
// Bounds the work per pre-token and the length of any learned token.
#define PRETOKEN_MAX_BYTES 128

// Text ready for pre-tokenisation: valid UTF-8 in NFC. data points either into
// the caller's input (already NFC) or to `owned`.
typedef struct {
    const uint8_t *data;
    size_t len;
    uint8_t *owned;
} NfcText;

// Checks UTF-8 and normalises to NFC. Invalid UTF-8 is an error naming the
// byte offset unless lossy, which replaces each maximal ill-formed subsequence
// with U+FFFD. Free the result with nfc_text_free.
int nfc_text_make(NfcText *out, const char *text, size_t len, int lossy, Error *err);
void nfc_text_free(NfcText *t);

// Offset of the first ill-formed UTF-8 sequence, or len if there is none.
size_t utf8_first_invalid(const uint8_t *s, size_t len);

// Malloc'ed copy of s (NUL-terminated, *out_len bytes) with every maximal
// ill-formed subsequence replaced by U+FFFD; NULL when out of memory.
uint8_t *utf8_replace_invalid(const uint8_t *s, size_t len, size_t *out_len);

// End of the pre-token that starts at pos (pos < len) in valid UTF-8 text.
size_t pretoken_end(const uint8_t *s, size_t len, size_t pos);

#endif
