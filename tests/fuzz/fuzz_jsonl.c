// Fuzzes every JSONL reader with arbitrary files: SFT pairs, preference
// pairs and prompt sets (which also run the chat template and the
// annotator's category lookup).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/prefs_io.h"
#include "ppo/rollout.h"
#include "sft/sft_data.h"
#include "tokenizer/bpe_train.h"

// Built once (libFuzzer gives the target no context): the harness's globals.
static Tokenizer *tok;
static Annotator *ann;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    Error err;
    if (tokenizer_from_merges(&tok, NULL, 0, &err)) abort(); // bytes and specials only
    const char *root = getenv("MINIRLHF_ROOT");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/data", root ? root : ".");
    if (annotator_load(&ann, dir, &err)) {
        fprintf(stderr, "fuzz_jsonl: %s (set MINIRLHF_ROOT to the source folder)\n", err.msg);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/fuzz_jsonl_%ld.jsonl", (long)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    Error err;
    SftSet sft;
    if (sft_load(&sft, tok, path, 64, &err) == 0) sft_free(&sft);
    PrefPair *pairs;
    size_t n;
    if (prefs_load(path, &pairs, &n, &err) == 0) prefs_free(pairs, n);
    PromptSet ps;
    if (prompts_load(&ps, tok, ann, path, 64, 1, &err) == 0) prompts_free(&ps);
    unlink(path);
    return 0;
}
