#include "data/chat_template.h"

#include <stdlib.h>
#include <string.h>

// Encodes text and appends its ids to ids[*n..], growing the buffer.
static int append_text(const Tokenizer *tok, const char *what, const char *text, int **ids,
                       size_t *n, size_t *cap, Error *err) {
    int *enc = NULL;
    size_t n_enc = 0;
    if (tokenizer_encode(tok, text, strlen(text), 0, &enc, &n_enc, err) != 0) {
        if (!err) return -1;
        Error inner = *err;
        return error_set(err, "chat template: %s: %s", what, inner.msg);
    }
    if (*n + n_enc + 2 > *cap) {
        size_t cap_new = *n + n_enc + 2;
        int *grown = realloc(*ids, cap_new * sizeof *grown);
        if (!grown) {
            free(enc);
            return error_set(err, "out of memory");
        }
        *ids = grown;
        *cap = cap_new;
    }
    if (n_enc) memcpy(*ids + *n, enc, n_enc * sizeof *enc);
    *n += n_enc;
    free(enc);
    return 0;
}

int chat_format(const Tokenizer *tok, const char *prompt, const char *response, int **ids,
                size_t *n_ids, size_t *response_start, Error *err) {
    // Room for the three special tokens; append_text grows it for the text.
    size_t cap = 3, n = 0, start = 0;
    int *out = malloc(cap * sizeof *out);
    if (!out) return error_set(err, "out of memory");
    out[n++] = tokenizer_special(tok, TOK_USER);
    int rc = append_text(tok, "prompt", prompt, &out, &n, &cap, err);
    if (rc == 0) {
        out[n++] = tokenizer_special(tok, TOK_ASSISTANT);
        start = n;
    }
    if (rc == 0 && response) {
        rc = append_text(tok, "response", response, &out, &n, &cap, err);
        if (rc == 0) out[n++] = tokenizer_special(tok, TOK_ENDOFTEXT);
    }
    if (rc != 0) {
        free(out);
        return -1;
    }
    *ids = out;
    *n_ids = n;
    if (response_start) *response_start = start;
    return 0;
}

size_t chat_response_length(const Tokenizer *tok, const int *ids, size_t n) {
    int end = tokenizer_special(tok, TOK_ENDOFTEXT), user = tokenizer_special(tok, TOK_USER);
    for (size_t i = 0; i < n; i++)
        if (ids[i] == end || ids[i] == user) return i;
    return n;
}

int chat_response_text(const Tokenizer *tok, const int *ids, size_t n, char **text, Error *err) {
    return tokenizer_decode_text(tok, ids, chat_response_length(tok, ids, n), text, err);
}
