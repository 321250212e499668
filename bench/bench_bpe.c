// Tokenizer benchmark: training time, held-out compression (tokens per
// character) and encode throughput, as key=value lines for bench_bpe.sh.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/progress.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/tokenizer.h"

#define MAX_RUNS 50

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static size_t count_codepoints(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static int train_once(const char *path, int vocab, Tokenizer **tok, double *seconds, Error *err) {
    BpeTrainConfig cfg = {.vocab_size = vocab, .min_frequency = 2, .lossy = 0};
    BpeTrainer *trainer = NULL;
    double t0 = now_seconds();
    int rc = bpe_trainer_new(&trainer, &cfg, err);
    if (rc == 0) rc = bpe_trainer_add_file(trainer, path, NULL, err);
    if (rc == 0) rc = bpe_trainer_train(trainer, tok, err);
    *seconds = now_seconds() - t0;
    bpe_trainer_free(trainer);
    return rc;
}

static int count_tokens(const Tokenizer *tok, const char *text, size_t len, size_t *n_tokens,
                        Error *err) {
    int *ids = NULL;
    if (tokenizer_encode(tok, text, len, 0, &ids, n_tokens, err) != 0) return -1;
    free(ids);
    return 0;
}

// Tokens and characters line by line, newlines excluded: how sentencepiece
// sees a text file, so the two can be compared on equal terms.
static int per_line_compression(const Tokenizer *tok, const char *text, size_t len,
                                size_t *tokens, size_t *chars, Error *err) {
    *tokens = *chars = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len, n = 0;
        if (count_tokens(tok, text + pos, end - pos, &n, err) != 0) return -1;
        *tokens += n;
        *chars += count_codepoints(text + pos, end - pos);
        pos = end + 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *train_path = NULL, *heldout_path = NULL, *out = NULL;
    int vocab = 4096, runs = 5;
    CliOption opts[] = {
        {.name = "train", .type = CLI_STRING | CLI_REQUIRED, .dest = &train_path, .help = "training text"},
        {.name = "heldout", .type = CLI_STRING | CLI_REQUIRED, .dest = &heldout_path, .help = "held-out text"},
        {.name = "vocab", .type = CLI_INT, .dest = &vocab, .lo = TOK_FIRST_MERGE,
         .hi = TOK_MAX_VOCAB, .help = "vocabulary size"},
        {.name = "runs", .type = CLI_INT, .dest = &runs, .lo = 1, .hi = MAX_RUNS,
         .help = "repetitions; medians are reported"},
        {.name = "out", .type = CLI_STRING, .dest = &out, .help = "also save the tokenizer here"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    Error err = {{0}};
    int rc = cli_parse("bench_bpe", opts, n_opts, argc, argv, NULL, &err);
    if (rc == CLI_HELP) cli_print_help(stdout, "bench_bpe", "Benchmarks BPE training and encoding.", opts, n_opts);
    if (rc > 0) return 0;
    if (rc != 0) error_exit_rc("bench_bpe", rc, &err);

    double train_s[MAX_RUNS], encode_mbs[MAX_RUNS];
    Tokenizer *tok = NULL;
    for (int r = 0; r < runs; r++) {
        Tokenizer *t = NULL;
        if (train_once(train_path, vocab, &t, &train_s[r], &err) != 0)
            error_exit("bench_bpe", &err);
        if (tok && tokenizer_fingerprint(t) != tokenizer_fingerprint(tok)) {
            error_set(&err, "run %d trained a different tokenizer", r + 1);
            error_exit("bench_bpe", &err);
        }
        tokenizer_free(tok);
        tok = t;
    }
    if (out && tokenizer_save(tok, out, &err) != 0) error_exit("bench_bpe", &err);

    unsigned char *train_text = NULL, *heldout = NULL;
    size_t train_len = 0, heldout_len = 0, whole_tokens = 0, line_tokens = 0, line_chars = 0;
    if (read_file(train_path, (size_t)1 << 31, &train_text, &train_len, &err) != 0 ||
        read_file(heldout_path, (size_t)1 << 31, &heldout, &heldout_len, &err) != 0 ||
        count_tokens(tok, (const char *)heldout, heldout_len, &whole_tokens, &err) != 0 ||
        per_line_compression(tok, (const char *)heldout, heldout_len, &line_tokens, &line_chars,
                             &err) != 0)
        error_exit("bench_bpe", &err);
    size_t whole_chars = count_codepoints((const char *)heldout, heldout_len), train_tokens = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = now_seconds();
        if (count_tokens(tok, (const char *)train_text, train_len, &train_tokens, &err) != 0)
            error_exit("bench_bpe", &err);
        encode_mbs[r] = train_len / (now_seconds() - t0) / 1e6;
    }
    printf("vocab=%d\nfingerprint=%08x\nruns=%d\n", tokenizer_vocab_size(tok),
           tokenizer_fingerprint(tok), runs);
    printf("train_seconds_median=%.3f\n", median(train_s, runs));
    printf("heldout_line_chars=%zu\nheldout_line_tokens=%zu\nheldout_line_tokens_per_char=%.4f\n",
           line_chars, line_tokens, (double)line_tokens / line_chars);
    printf("heldout_chars=%zu\nheldout_tokens=%zu\nheldout_tokens_per_char=%.4f\n", whole_chars,
           whole_tokens, (double)whole_tokens / whole_chars);
    printf("encode_bytes=%zu\nencode_tokens=%zu\nencode_mb_per_s_median=%.1f\n", train_len,
           train_tokens, median(encode_mbs, runs));
    free(train_text);
    free(heldout);
    tokenizer_free(tok);
    return 0;
}
