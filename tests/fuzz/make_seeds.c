// Writes small valid inputs for the fuzzers into DIR/<target>/ through the
// project's own writers, so each seed is well-formed by construction.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "model/checkpoint.h"
#include "model/gpt.h"
#include "tokenizer/bpe_train.h"

static void check(int rc, const Error *err) {
    if (rc) error_exit("make_seeds", err);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    char path[4096];
    Error err;
    // The smallest model there is: a checkpoint of a few hundred bytes.
    GPTConfig cfg = {.vocab_size = 4, .max_seq_len = 2, .n_layer = 1, .n_head = 1, .n_embd = 2};
    GPT m;
    check(gpt_create(&m, &cfg, &err), &err);
    gpt_init_random(&m, 1);
    CkptHeader h;
    check(ckpt_header_init(&h, CKPT_LM, &cfg, "pretrain", &err), &err);
    snprintf(path, sizeof path, "%s/fuzz_checkpoint", argv[1]);
    check(make_dirs(path, &err), &err);
    snprintf(path, sizeof path, "%s/fuzz_checkpoint/model.bin", argv[1]);
    check(ckpt_save(path, &h, m.params_memory, &err), &err);
    TrainState s = {.step = 3, .rng_state = 42, .ckpt_fp = h.fingerprint};
    snprintf(path, sizeof path, "%s/fuzz_checkpoint/model.opt", argv[1]);
    check(trainstate_save(path, &s, m.params_memory, m.params_memory, m.num_params, &err), &err);
    gpt_free(&m);
    // A tokenizer with a few merges.
    uint32_t merges[] = {'t', 'h', 260, 'e', ' ', 't'};
    Tokenizer *tok;
    check(tokenizer_from_merges(&tok, merges, 3, &err), &err);
    snprintf(path, sizeof path, "%s/fuzz_tokenizer_file", argv[1]);
    check(make_dirs(path, &err), &err);
    snprintf(path, sizeof path, "%s/fuzz_tokenizer_file/tokenizer.bin", argv[1]);
    check(tokenizer_save(tok, path, &err), &err);
    tokenizer_free(tok);
    // Text and JSONL seeds.
    const char *files[][2] = {
        {"fuzz_bpe_encode/text.txt", "The café's 日本 😀 fortune -- 42!\n"},
        {"fuzz_jsonl/sft.jsonl", "{\"prompt\":\"Tell me a fortune about love.\",\"response\":\"Love is all.\"}\n"},
        {"fuzz_jsonl/prefs.jsonl", "{\"prompt\":\"Say something about cats.\",\"chosen\":\"Cats purr.\",\"rejected\":\"no\","
                                   "\"gold_chosen\":0.5,\"gold_rejected\":-0.2}\n"},
        {"fuzz_jsonl/prompts.jsonl", "{\"prompt\":\"What wisdom do you have about pets?\",\"category\":\"pets\"}\n"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%.*s", argv[1], (int)(strchr(files[i][0], '/') - files[i][0]), files[i][0]);
        check(make_dirs(dir, &err), &err);
        snprintf(path, sizeof path, "%s/%s", argv[1], files[i][0]);
        check(write_file_atomic(path, files[i][1], strlen(files[i][1]), &err), &err);
    }
    return 0;
}
