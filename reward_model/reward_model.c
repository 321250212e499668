#include "reward_model/reward_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/chat_template.h"

double bt_loss(double r_chosen, double r_rejected, double margin, double *d_chosen) {
    double z = r_chosen - r_rejected - margin;
    // -log sigmoid(z) = log(1 + exp(-z)), written to stay finite for any z.
    double loss = z > 0 ? log1p(exp(-z)) : -z + log1p(exp(z));
    if (d_chosen) *d_chosen = -1.0 / (1.0 + exp(z)); // -(1 - sigmoid(z))
    return loss;
}

int rm_encode(const Tokenizer *tok, const char *prompt, const char *response, int max_len,
              int **ids, int *n, Error *err) {
    size_t count = 0, start = 0;
    if (chat_format(tok, prompt, response, ids, &count, &start, err)) return -1;
    if (count > (size_t)max_len) {
        if (start + 1 > (size_t)max_len) {
            free(*ids);
            *ids = NULL;
            return error_set(err, "prompt of %zu tokens leaves no room for a response in a context of %d",
                             start, max_len);
        }
        (*ids)[max_len - 1] = (*ids)[count - 1]; // keep the end token last
        count = (size_t)max_len;
    }
    *n = (int)count;
    return 0;
}

int rm_encode_generated(const Tokenizer *tok, const char *prompt, const int *response, size_t n_response,
                        int max_len, int **ids, int *n, char **text, Error *err) {
    char *decoded = NULL;
    if (chat_response_text(tok, response, n_response, &decoded, err)) return -1;
    int rc = rm_encode(tok, prompt, decoded, max_len, ids, n, err);
    if (rc == 0 && text) *text = decoded;
    else free(decoded);
    return rc;
}

int rm_fill_rows(int *inputs, int *const *ids, const int *lens, int B, int pad_id) {
    int T = 1;
    for (int i = 0; i < B; i++) T = lens[i] > T ? lens[i] : T;
    for (int i = 0; i < B; i++)
        for (int t = 0; t < T; t++) inputs[i * T + t] = t < lens[i] ? ids[i][t] : pad_id;
    return T;
}

void rm_forward(GPT *m, const int *inputs, const int *lens, int B, int T, float *rewards) {
    gpt_forward(m, inputs, B, T, 0);
    for (int i = 0; i < B; i++) rewards[i] = m->head[i * T + lens[i] - 1];
}

int rm_score_text(GPT *m, const CkptHeader *h, const Tokenizer *tok, const char *prompt,
                  const char *response, float *reward, Error *err) {
    int *ids = NULL, n = 0;
    if (rm_encode(tok, prompt, response, m->config.max_seq_len, &ids, &n, err)) return -1;
    float raw;
    rm_forward(m, ids, &n, 1, n, &raw);
    free(ids);
    *reward = (raw - h->reward_mean) / h->reward_std;
    return 0;
}
