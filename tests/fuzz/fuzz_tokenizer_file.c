// Fuzzes the tokenizer-file parser, and decoding with whatever it accepts.
#include <stdint.h>
#include <stdlib.h>

#include "tokenizer/bpe_train.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Tokenizer *tok = NULL;
    Error err;
    if (tokenizer_parse(&tok, data, size, "fuzz", &err) != 0) return 0;
    int ids[4] = {0, 1, tokenizer_vocab_size(tok) - 1, tokenizer_special(tok, TOK_ENDOFTEXT)};
    char *text = NULL;
    size_t len;
    if (tokenizer_decode(tok, ids, 4, &text, &len, &err) == 0) free(text);
    tokenizer_free(tok);
    return 0;
}
