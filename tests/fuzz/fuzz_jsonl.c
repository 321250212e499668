// Fuzzes the strict JSONL record reader (common/jsonl.c) directly, with the
// property that a record it accepts, printed again by cJSON, is accepted
// again; then every JSONL reader built on it with the same bytes as a file:
// SFT pairs, preference pairs and prompt sets (which also run the chat
// template and the annotator's category lookup).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/jsonl.h"
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

// A record printed by cJSON and read again must pass the strict checks: it
// has one object, no repeated key and no NUL in a string by construction.
static void reread_printed(const cJSON *obj) {
    char *text = cJSON_PrintUnformatted(obj);
    if (!text) return;
    FILE *fp = fmemopen(text, strlen(text), "rb");
    JsonlReader again;
    Error err;
    if (fp && jsonl_open_stream(&again, fp, "<printed>", &err) == 0) {
        cJSON *o;
        if (jsonl_next(&again, &o, &err) != 1) {
            fprintf(stderr, "fuzz_jsonl: a printed record is refused: %s\n", err.msg);
            abort();
        }
        cJSON_Delete(o);
        jsonl_close(&again);
    }
    if (fp) fclose(fp);
    cJSON_free(text);
}

static void read_strictly(const uint8_t *data, size_t size) {
    FILE *fp = size ? fmemopen((void *)data, size, "rb") : NULL;
    if (!fp) return;
    JsonlReader r;
    Error err;
    if (jsonl_open_stream(&r, fp, "<fuzz>", &err) == 0) {
        cJSON *o;
        while (jsonl_next(&r, &o, &err) == 1) {
            double x;
            jsonl_string(&r, o, "prompt", &err);
            jsonl_number(&r, o, "gold_chosen", 1, &x, &err);
            reread_printed(o);
            cJSON_Delete(o);
        }
        jsonl_close(&r);
    }
    fclose(fp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    read_strictly(data, size);
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/fuzz_jsonl_%ld.jsonl", (long)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    Error err;
    SftSet sft;
    if (sft_load(&sft, tok, path, 63, &err) == 0) sft_free(&sft);
    PrefPair *pairs;
    size_t n;
    if (prefs_load(path, &pairs, &n, &err) == 0) prefs_free(pairs, n);
    PromptSet ps;
    if (prompts_load(&ps, tok, ann, path, 64, 1, &err) == 0) prompts_free(&ps);
    unlink(path);
    return 0;
}
