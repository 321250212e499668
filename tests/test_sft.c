// SFT: the loss covers response tokens only (checked against finite
// differences), and the stage runs end to end on the smoke config.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/checkpoint.h"
#include "model/loss.h"
#include "sft/sft_data.h"
#include "tests/gradcheck.h"
#include "tests/testutil.h"

typedef struct {
    char dir[256], bin[512], data[512], tok[600], pre[600];
} Fixture;

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    make_temp_dir(f->dir, sizeof f->dir);
    bin_path(f->bin, sizeof f->bin, "");
    src_path(f->data, sizeof f->data, "data");
    snprintf(f->tok, sizeof f->tok, "%s/tok.bin", f->dir);
    snprintf(f->pre, sizeof f->pre, "%s/pre/model.bin", f->dir);
    int rc = make_smoke_chain(f->dir, "pre");
    *state = f;
    return rc;
}

static int teardown(void **state) {
    Fixture *f = *state;
    char out[256];
    run_cmd(out, sizeof out, "rm -rf %s", f->dir);
    free(f);
    return 0;
}

typedef struct {
    LmBatch *b;
    int N;
    float *logits;
} MaskCtx;

static double mask_loss(void *p) {
    MaskCtx *c = p;
    logprob_forward(c->b->logp, c->logits, c->b->targets, c->N, c->b->V, 1.0f);
    return masked_nll(c->b->logp, c->b->weights, c->N, NULL);
}

// Batches built from real pairs: the loss gradient is zero at every position
// that predicts a prompt token or padding, non-zero at response positions,
// and matches finite differences everywhere.
static void test_prompt_tokens_get_zero_gradient(void **state) {
    Fixture *f = *state;
    Tokenizer *tok;
    Error err;
    assert_int_equal(tokenizer_load(&tok, f->tok, &err), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/sft_val.jsonl", f->data);
    SftSet set;
    // No pair fits a context of 4 tokens: the message gives the model's context
    // (it used to say one more, the length of a pair that would fit).
    SftSet none;
    assert_int_equal(sft_load(&none, tok, path, 4, &err), -1);
    assert_non_null(strstr(err.msg, "pairs fits the model's context of 4 tokens"));
    assert_int_equal(sft_load(&set, tok, path, 64, &err), 0);
    assert_true(set.n > 3);
    for (size_t i = 0; i < set.n; i++) assert_true(set.ex[i].n <= 65); // ctx + 1: inputs and the last target
    GPT m = {.config = {.vocab_size = 512}};
    m.config.vocab_size = tokenizer_vocab_size(tok);
    LmBatch b;
    assert_int_equal(lm_batch_alloc(&b, &m, 3, 64, &err), 0);
    size_t idx[3] = {0, 1, 2};
    int pad = tokenizer_special(tok, TOK_PAD), eot = tokenizer_special(tok, TOK_ENDOFTEXT);
    int T = sft_fill_batch(&b, &set, idx, 3, pad);
    int V = b.V, N = 3 * T;
    for (int i = 0; i < 3; i++) { // the layout itself
        const SftExample *e = &set.ex[i];
        assert_int_equal(b.inputs[i * T], tokenizer_special(tok, TOK_USER));
        assert_int_equal(b.inputs[i * T + e->response_start - 1], tokenizer_special(tok, TOK_ASSISTANT));
        assert_int_equal(b.targets[i * T + e->n - 2], eot); // the end token is a target with weight 1
        assert_true(b.weights[i * T + e->n - 2] == 1.0f);
    }
    float *logits = malloc((size_t)N * V * sizeof(float)), *dlogits = malloc((size_t)N * V * sizeof(float));
    fill_normal(logits, (size_t)N * V, 1.0f, 5);
    MaskCtx c = {&b, N, logits};
    mask_loss(&c);
    masked_nll(b.logp, b.weights, N, b.dlogp);
    logprob_backward(dlogits, logits, b.targets, b.dlogp, N, V, 1.0f);
    for (int i = 0; i < 3; i++) {
        const SftExample *e = &set.ex[i];
        for (int t = 0; t < T; t++) {
            double norm = 0;
            for (int v = 0; v < V; v++) norm += fabs(dlogits[(size_t)(i * T + t) * V + v]);
            int response = t + 1 >= e->response_start && t + 1 < e->n;
            if (response) assert_true(norm > 1e-6);
            else assert_true(norm == 0.0); // prompt or padding: exactly no gradient
        }
    }
    // Finite differences over whole rows: a prompt row and a padding row move
    // the loss by exactly nothing, a response row as the gradient says.
    int shortest = set.ex[0].n < set.ex[1].n ? 0 : 1;
    size_t rows[3] = {0, (size_t)set.ex[0].response_start, (size_t)(shortest * T + T - 1)};
    assert_true(set.ex[shortest].n - 1 < T); // that last row really is padding
    const char *names[3] = {"sft prompt row", "sft response row", "sft padding row"};
    for (int k = 0; k < 3; k++) {
        // eps 5e-2: float32 noise in a 512-way log-sum-exp, divided by 2 eps, would
        // otherwise rival the tiny gradients of the 511 non-target logits.
        double rel = gradcheck(names[k], logits + rows[k] * V, dlogits + rows[k] * V, V, V, 5e-2f, mask_loss, &c);
        assert_true(rel < 1e-2);
    }
    // Changing a prompt target changes nothing; changing a response target does.
    double base = mask_loss(&c);
    b.targets[1] = (b.targets[1] + 1) % V;
    assert_true(mask_loss(&c) == base);
    int r = set.ex[0].response_start;
    b.targets[r] = (b.targets[r] + 1) % V;
    assert_true(mask_loss(&c) != base);
    free(logits), free(dlogits);
    lm_batch_free(&b);
    sft_free(&set);
    tokenizer_free(tok);
}

static double printed_figure(const char *out, const char *label) {
    const char *p = strstr(out, label);
    return p ? strtod(p + strlen(label), NULL) : NAN;
}

static void test_sft_smoke_run(void **state) {
    Fixture *f = *state;
    char out[16384], path[700];
    int rc = run_cmd(out, sizeof out, "%ssft --config smoke --init %s --tokenizer %s --data %s/sft.jsonl --val %s/sft_val.jsonl --out %s/sft",
                     f->bin, f->pre, f->tok, f->data, f->data, f->dir);
    printf("%s", out);
    assert_int_equal(rc, 0);
    double after = printed_figure(out, "held-out response loss "), before = printed_figure(out, "(pretrained model: ");
    assert_true(isfinite(after) && isfinite(before));
    assert_true(after < before);
    assert_non_null(strstr(out, "end-token rate"));
    snprintf(path, sizeof path, "%s/sft/model.bin", f->dir);
    CkptHeader h, parent;
    float *params;
    Error err;
    assert_int_equal(ckpt_load(path, &h, &params, &err), 0);
    free(params);
    assert_int_equal(ckpt_read_header(f->pre, &parent, &err), 0);
    assert_int_equal(h.kind, CKPT_LM);
    assert_string_equal(h.stage, "sft");
    assert_int_equal(h.step, 40);
    assert_int_equal(h.parent_fp, parent.fingerprint); // lineage
    assert_int_equal(h.tokenizer_fp, parent.tokenizer_fp);
    double loss[64];
    snprintf(path, sizeof path, "%s/sft/metrics.csv", f->dir);
    assert_int_equal(read_csv_column(path, "loss", loss, 64), 40);
    snprintf(path, sizeof path, "%s/sft/samples.txt", f->dir);
    assert_int_equal(run_cmd(out, sizeof out, "grep -c '^prompt:' %s", path), 0);
    assert_int_equal(atoi(out), 8); // 4 prompts at steps 20 and 40
}

static void test_sft_resume_is_bit_exact(void **state) {
    Fixture *f = *state;
    char out[16384];
    const char *args = "--config smoke --steps 12 --eval-every 100 --eval-prompts 2";
    assert_int_equal(run_cmd(out, sizeof out, "%ssft %s --init %s --tokenizer %s --data %s/sft.jsonl --val %s/sft_val.jsonl --out %s/a",
                             f->bin, args, f->pre, f->tok, f->data, f->data, f->dir), 0);
    assert_int_equal(run_cmd(out, sizeof out, "%ssft %s --init %s --tokenizer %s --data %s/sft.jsonl --val %s/sft_val.jsonl --out %s/b --stop-after 5",
                             f->bin, args, f->pre, f->tok, f->data, f->data, f->dir), EXIT_STOPPED);
    assert_int_equal(run_cmd(out, sizeof out, "%ssft --resume %s/b", f->bin, f->dir), 0);
    assert_int_equal(run_cmd(out, sizeof out, "cmp %s/a/model.bin %s/b/model.bin", f->dir, f->dir), 0);
}

static void test_sft_refuses_wrong_inputs(void **state) {
    Fixture *f = *state;
    char out[16384], path[700];
    // A reward-model checkpoint as --init.
    CkptHeader h;
    float *params;
    Error err;
    assert_int_equal(ckpt_load(f->pre, &h, &params, &err), 0);
    h.kind = CKPT_RM;
    snprintf(path, sizeof path, "%s/rm.bin", f->dir);
    assert_int_equal(ckpt_save(path, &h, params, &err), 0);
    free(params);
    int rc = run_cmd(out, sizeof out, "%ssft --config smoke --init %s --tokenizer %s --out %s/x", f->bin, path, f->tok, f->dir);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "is a reward-model checkpoint; expected a language-model"));
    // A tokenizer other than the one the checkpoint was trained with.
    rc = run_cmd(out, sizeof out, "%sbpe train --input %s/fortunes.jsonl --jsonl-field text --vocab 400 --out %s/other.bin && "
                 "%ssft --config smoke --init %s --tokenizer %s/other.bin --out %s/x",
                 f->bin, f->data, f->dir, f->bin, f->pre, f->dir, f->dir);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "tokenizer"));
    // A malformed pair names the file and line.
    rc = run_cmd(out, sizeof out, "printf '{\"prompt\":\"a\",\"response\":\"b\"}\\n{\"prompt\":\"a\"}\\n' > %s/bad.jsonl && "
                 "%ssft --config smoke --init %s --tokenizer %s --data %s/bad.jsonl --out %s/x",
                 f->dir, f->bin, f->pre, f->tok, f->dir, f->dir);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "bad.jsonl:2: missing field \"response\""));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompt_tokens_get_zero_gradient),
        cmocka_unit_test(test_sft_smoke_run),
        cmocka_unit_test(test_sft_resume_is_bit_exact),
        cmocka_unit_test(test_sft_refuses_wrong_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
