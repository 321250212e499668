// Byte-level BPE tokenizer: the interface every stage uses.
#ifndef TOKENIZER_TOKENIZER_H
#define TOKENIZER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

// Special tokens, addressed by name from code; never produced from plain text.
typedef enum {
    TOK_ENDOFTEXT = 0, // ends every document and every response
    TOK_USER,          // opens a user turn in the chat template
    TOK_ASSISTANT,     // opens an assistant turn
    TOK_PAD,           // fills batches; always masked out of losses
    TOK_NUM_SPECIAL
} TokSpecial;

typedef struct Tokenizer Tokenizer;

int tokenizer_load(Tokenizer **tok, const char *path, Error *err);
void tokenizer_free(Tokenizer *tok);
int tokenizer_vocab_size(const Tokenizer *tok);
uint32_t tokenizer_fingerprint(const Tokenizer *tok);
int tokenizer_special(const Tokenizer *tok, TokSpecial which);

// Normalises text to NFC and encodes it. Invalid UTF-8 is an error naming the
// byte offset unless lossy, which substitutes U+FFFD. *ids is malloc'ed.
int tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int lossy, int **ids,
                     size_t *n_ids, Error *err);
// Decodes ids into a malloc'ed NUL-terminated string; special tokens decode to
// nothing. Ids out of range are an error.
int tokenizer_decode(const Tokenizer *tok, const int *ids, size_t n_ids, char **text,
                     size_t *len, Error *err);

// The text of ids as every stage reads it: decoded, with each ill-formed
// UTF-8 subsequence (a sampled response can stop or wander inside a
// character) and each NUL byte replaced by U+FFFD, so that the result is a
// valid C string that tokenizer_encode accepts. *text is malloc'ed.
int tokenizer_decode_text(const Tokenizer *tok, const int *ids, size_t n_ids, char **text, Error *err);

#endif
