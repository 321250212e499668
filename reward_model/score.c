// score: prints the reward model's (normalised) reward of each
// {"prompt","response"} line of a JSONL file or of standard input.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/jsonl.h"
#include "model/run.h"
#include "reward_model/reward_model.h"

static int score_all(GPT *m, const CkptHeader *h, const Tokenizer *tok, JsonlReader *r, int jsonl, Error *err) {
    cJSON *o;
    int rc;
    while ((rc = jsonl_next(r, &o, err)) == 1) {
        const char *prompt = jsonl_string(r, o, "prompt", err);
        const char *response = prompt ? jsonl_string(r, o, "response", err) : NULL;
        float reward;
        Error e2;
        rc = 0;
        if (!response) rc = -1;
        else if (rm_score_text(m, h, tok, prompt, response, &reward, &e2))
            rc = error_set(err, "%s:%ld: %s", r->path, r->line, e2.msg);
        if (rc == 0 && jsonl) {
            // A "reward" of the input is replaced, never written twice.
            cJSON_DeleteItemFromObjectCaseSensitive(o, "reward");
            jsonl_add_number(o, "reward", reward);
            jsonl_write(stdout, o);
        } else if (rc == 0) {
            printf("%.4f\n", reward);
        }
        cJSON_Delete(o);
        if (rc) return -1;
    }
    return rc;
}

int main(int argc, char **argv) {
    const char *rm = NULL, *tokenizer = NULL, *input = "-";
    int threads = 0, jsonl = 0;
    CliOption opts[] = {
        {"rm", CLI_STRING | CLI_REQUIRED, &rm, 0, 0, "reward-model checkpoint from train_rm"},
        {"tokenizer", CLI_STRING | CLI_REQUIRED, &tokenizer, 0, 0, "tokenizer.bin of that checkpoint"},
        {"input", CLI_STRING, &input, 0, 0, "JSONL of {\"prompt\",\"response\"}; - is standard input"},
        {"jsonl", CLI_FLAG, &jsonl, 0, 0, "print each input record with a \"reward\" field added"},
        {"threads", CLI_INT, &threads, 0, 256, "threads (0: all cores)"},
    };
    int n_opts = sizeof opts / sizeof opts[0];
    Error err;
    int rc = cli_parse("score", opts, n_opts, argc, argv, NULL, &err);
    if (rc == CLI_HELP)
        cli_print_help(stdout, "score", "Prints the reward of each prompt/response pair (mean 0, std 1 on SFT samples).",
                       opts, n_opts);
    if (rc > 0) return 0;
    if (rc) error_exit_rc("score", rc, &err);
    run_set_threads(threads);
    Tokenizer *tok = NULL;
    GPT m = {0};
    CkptHeader h;
    JsonlReader r = {0};
    rc = tokenizer_load(&tok, tokenizer, &err);
    if (rc == 0) {
        CkptTokenizer tk = {tokenizer, tokenizer_fingerprint(tok), tokenizer_vocab_size(tok)};
        rc = run_load_model(&m, &h, rm, 1u << CKPT_RM, &tk, &err);
    }
    if (rc == 0) rc = gpt_alloc_activations(&m, 1, m.config.max_seq_len, &err);
    if (rc == 0) rc = strcmp(input, "-") ? jsonl_open(&r, input, &err) : jsonl_open_stream(&r, stdin, "<stdin>", &err);
    if (rc == 0) rc = score_all(&m, &h, tok, &r, jsonl, &err);
    jsonl_close(&r);
    gpt_free(&m);
    tokenizer_free(tok);
    if (rc) error_exit("score", &err);
    return stdout_finish("score", 0);
}
