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
    // Training states: moments must be finite and the second one >= 0.
    float *moment = calloc(m.num_params, sizeof *moment);
    if (!moment) return 1;
    for (size_t i = 0; i < m.num_params; i++) moment[i] = 1e-3f * (float)(i % 7);
    TrainState s = {.ckpt_fp = h.fingerprint, .n_ranks = 1, .step = 3, .rng_state = 42, .shape = cfg,
                    .inputs = {.tokenizer_fp = 0x1234abcdu}};
    snprintf(path, sizeof path, "%s/fuzz_checkpoint/model.opt", argv[1]);
    check(trainstate_save(path, &s, m.params_memory, moment, &err), &err);
    snprintf(path, sizeof path, "%s/fuzz_trainstate", argv[1]);
    check(make_dirs(path, &err), &err);
    snprintf(path, sizeof path, "%s/fuzz_trainstate/pretrain.opt", argv[1]);
    check(trainstate_save(path, &s, m.params_memory, moment, &err), &err);
    // A PPO state: reference and reward model fingerprints and a KL coefficient.
    s.step = 40, s.inputs = (TrainInputs){0x1234abcdu, 0x0badf00du, 0xfeedbeefu}, s.stage.kl_beta = 0.0625;
    snprintf(path, sizeof path, "%s/fuzz_trainstate/ppo.opt", argv[1]);
    check(trainstate_save(path, &s, m.params_memory, moment, &err), &err);
    free(moment);
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
        {"fuzz_config/pretrain.txt", "config = smoke\ntokenizer = tok.bin\ndata = data/fortunes.jsonl\nout = runs/pre\n"
                                     "resume = \nseed = 1337\nthreads = 0\nsteps = 400\nbatch = 8\n"
                                     "lr = 0.000123456791\nmin-lr-frac = 0.1\nwarmup = 20\nweight-decay = 0.1\n"
                                     "grad-clip = 1\nstop-after = 0\nraw = off\n"},
        {"fuzz_config/edited.txt", "steps = 5\n\nlr = 1e-07\nraw = on\nout = a = b\n"},
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
