// Fuzzes BPE encoding of arbitrary bytes, strict and lossy: strict either
// encodes or names an offset; lossy always encodes; what encodes decodes.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/bpe_train.h"
#include "tokenizer/tokenizer.h"

// libFuzzer calls the target with no context argument, so the tokenizer it
// encodes with is built once and kept here: the harness's one global.
static Tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    static const char corpus[] =
        "The quick brown fox jumps over the lazy dog. Love is wonderful; work is hard. "
        "Café naïve résumé — 日本語のテキスト 😀 and 12345 numbers, punctuation!? 'quotes' \"too\".";
    BpeTrainConfig cfg = {400, 1, 0};
    BpeTrainer *tr;
    Error err;
    if (bpe_trainer_new(&tr, &cfg, &err)) abort();
    for (int i = 0; i < 4; i++)
        if (bpe_trainer_add_text(tr, corpus, strlen(corpus), "corpus", &err)) abort();
    if (bpe_trainer_train(tr, &tok, &err)) abort();
    bpe_trainer_free(tr);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Error err;
    for (int lossy = 0; lossy < 2; lossy++) {
        int *ids = NULL;
        size_t n = 0;
        if (tokenizer_encode(tok, (const char *)data, size, lossy, &ids, &n, &err) != 0) {
            if (lossy) abort(); // lossy encoding accepts any bytes
            continue;
        }
        char *text = NULL;
        size_t len;
        if (tokenizer_decode(tok, ids, n, &text, &len, &err) != 0) abort();
        free(text);
        free(ids);
    }
    return 0;
}
