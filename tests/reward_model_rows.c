#include "tests/reward_model_rows.h"

void reward_model_rows(Rollout *r, const PromptSet *ps, int eot) {
    for (int i = 0; i < r->n; i++) {
        int q = ps->len[r->prompt[i]], L = r->resp_len[i] - r->ended[i], n = 0;
        int *row = r->rm_ids + (size_t)i * r->rm_ctx;
        for (int t = 0; t < q && n < r->rm_ctx - 1; t++) row[n++] = ps->ids[r->prompt[i]][t];
        for (int k = 0; k < L && n < r->rm_ctx - 1; k++) row[n++] = r->resp[(size_t)i * r->max_new + k];
        row[n++] = eot;
        r->rm_len[i] = n;
    }
}
