#include "tests/tokenizer_test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

Tokenizer *train_on_text(const char *text, size_t len, int vocab, int min_frequency) {
    BpeTrainConfig cfg = {.vocab_size = vocab, .min_frequency = min_frequency, .lossy = 0};
    BpeTrainer *trainer = NULL;
    Tokenizer *tok = NULL;
    Error err = {{0}};
    if (bpe_trainer_new(&trainer, &cfg, &err) != 0 ||
        bpe_trainer_add_text(trainer, text, len, "test corpus", &err) != 0 ||
        bpe_trainer_train(trainer, &tok, &err) != 0)
        fail_msg("training failed: %s", err.msg);
    bpe_trainer_free(trainer);
    return tok;
}

static size_t put_utf8(char *buf, int32_t cp) {
    return (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)buf);
}

size_t append_random_char(Rng *rng, char *buf) {
    static const int32_t accented[] = {0xE9, 0xE8, 0xEA, 0xF1, 0xFC, 0xC5, 0xE7, 0x153, 0x159, 0x1EB9};
    static const int32_t marks[] = {0x300, 0x301, 0x302, 0x308, 0x323, 0x327, 0x30A, 0x331};
    static const char ascii[] = "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 .,;:!?'\"-()\n\t ";
    switch (rng_below(rng, 9)) {
    case 0: case 1: case 2:
        buf[0] = ascii[rng_below(rng, sizeof ascii - 1)];
        return 1;
    case 3: return put_utf8(buf, accented[rng_below(rng, sizeof accented / sizeof *accented)]);
    case 4: return put_utf8(buf, marks[rng_below(rng, sizeof marks / sizeof *marks)]);
    case 5: return put_utf8(buf, 0x4E00 + (int32_t)rng_below(rng, 0x200)); // CJK
    case 6: // Hangul jamo, which NFC composes into syllables
        return put_utf8(buf, rng_below(rng, 2) ? 0x1100 + (int32_t)rng_below(rng, 19)
                                               : 0x1161 + (int32_t)rng_below(rng, 21));
    case 7: return put_utf8(buf, 0x1F600 + (int32_t)rng_below(rng, 0x50)); // emoji
    default: return put_utf8(buf, 0x10000 + (int32_t)rng_below(rng, 0x7F)); // Linear B
    }
}

char *generated_corpus(uint64_t seed, size_t bytes, size_t *len) {
    static const char *words[] = {"the", "cat", "sat", "on", "mat", "and", "café", "naïve",
                                  "über", "日本", "語", "😀", "don't", "it's", "1999", "42",
                                  "hello", "world", "résumé", "한국어", "e\xCC\x81t\xC3\xA9"};
    Rng rng;
    rng_seed(&rng, seed);
    char *buf = malloc(bytes + 64);
    size_t n = 0;
    while (n < bytes) {
        if (rng_below(&rng, 4) == 0) {
            n += append_random_char(&rng, buf + n);
        } else {
            const char *w = words[rng_below(&rng, sizeof words / sizeof *words)];
            size_t wl = strlen(w);
            memcpy(buf + n, w, wl);
            n += wl;
            buf[n++] = rng_below(&rng, 10) == 0 ? '\n' : ' ';
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *nfc_of(const char *s, size_t len, size_t *out_len) {
    utf8proc_uint8_t *out = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &out,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (n < 0) fail_msg("utf8proc_map failed: %s", utf8proc_errmsg(n));
    *out_len = (size_t)n;
    return (char *)out;
}
