// DPO batches (dpo/dpo_batch.c): the row layout, sequence log-probs against a
// direct computation and unchanged by padding, the batch loss's values and
// its gradient against finite differences on a tiny random model, and
// dpo_load on a real tokenizer.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/chat_template.h"
#include "dpo/dpo_batch.h"
#include "dpo/dpo_loss.h"
#include "tests/gradcheck.h"
#include "tests/testutil.h"

// ---- hand-built pairs on a tiny random model ------------------------------------
// Token ids as the tokenizer numbers its specials; the rest stand for text.
enum { EOT = 0, USR = 1, AST = 2, PAD = 3 };
enum { V = 20, CTX = 16, NP = 3, MAX_ROWS = 2 * NP };

// Chosen and rejected of three pairs with different lengths; pair 1's chosen
// fills the whole context (CTX + 1 tokens: CTX inputs, CTX targets).
static int c0[] = {USR, 5, 6, 7, AST, 8, 9, 10, EOT};
static int r0[] = {USR, 5, 6, 7, AST, 11, 12, 13, 14, 15, 16, EOT};
static int c1[] = {USR, 4, AST, 17, 18, 19, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, EOT};
static int r1[] = {USR, 4, AST, 13, EOT};
static int c2[] = {USR, 9, 9, 8, 7, AST, 5, 5, EOT};
static int r2[] = {USR, 9, 9, 8, 7, AST, 6, EOT};

#define EXAMPLE(a, start) {a, (int)(sizeof a / sizeof a[0]), start}

typedef struct {
    GPT m;
    LmBatch b;
    DpoPair pairs[NP];
    DpoSet set;
} Tiny;

static int setup_tiny(void **state) {
    Tiny *f = calloc(1, sizeof *f);
    GPTConfig cfg = {.vocab_size = V, .max_seq_len = CTX, .n_layer = 2, .n_head = 2, .n_embd = 16};
    Error err;
    if (gpt_create(&f->m, &cfg, &err) || gpt_alloc_training(&f->m, MAX_ROWS, CTX, &err) ||
        lm_batch_alloc(&f->b, &f->m, MAX_ROWS, CTX, &err)) {
        printf("%s\n", err.msg);
        return -1;
    }
    gpt_init_random(&f->m, 7);
    // LayerNorm weights off 1 and biases off 0, so every gradient term is non-trivial.
    float *noise = malloc(f->m.num_params * sizeof(float));
    fill_normal(noise, f->m.num_params, 0.1f, 8);
    for (size_t i = 0; i < f->m.num_params; i++) f->m.params_memory[i] += noise[i];
    free(noise);
    DpoPair pairs[NP] = {{EXAMPLE(c0, 5), EXAMPLE(r0, 5), 0, 0, 0, 1},
                         {EXAMPLE(c1, 3), EXAMPLE(r1, 3), 0, 0, 0, 2},
                         {EXAMPLE(c2, 6), EXAMPLE(r2, 6), 0, 0, 0, 3}};
    memcpy(f->pairs, pairs, sizeof pairs);
    f->set = (DpoSet){f->pairs, NP, 0};
    *state = f;
    return 0;
}

static int teardown_tiny(void **state) {
    Tiny *f = *state;
    lm_batch_free(&f->b);
    gpt_free(&f->m);
    free(f);
    return 0;
}

static void assert_row_is(const LmBatch *b, int row, int T, const SftExample *e) {
    for (int t = 0; t < T; t++) {
        int real = t + 1 < e->n, k = row * T + t;
        assert_int_equal(b->inputs[k], real ? e->ids[t] : PAD);
        assert_int_equal(b->targets[k], real ? e->ids[t + 1] : PAD);
        assert_true(b->weights[k] == (real && t + 1 >= e->response_start ? 1.0f : 0.0f));
    }
}

// Chosen rows first, then the rejected ones in the same pair order; the end
// token is a weighted target, the assistant token and padding are not.
static void test_fill_rows_layout(void **state) {
    Tiny *f = *state;
    size_t idx[NP] = {2, 0, 1};
    int T = dpo_fill_rows(&f->b, &f->set, idx, NP, PAD);
    assert_int_equal(T, CTX); // c1: 17 tokens, 16 positions
    for (int i = 0; i < NP; i++) {
        assert_row_is(&f->b, i, T, &f->pairs[idx[i]].chosen);
        assert_row_is(&f->b, NP + i, T, &f->pairs[idx[i]].rejected);
    }
    assert_int_equal(f->b.targets[1 * T + 7], EOT); // c0's last target, weight 1
    assert_true(f->b.weights[1 * T + 7] == 1.0f);
    assert_true(f->b.weights[1 * T + 3] == 0.0f); // c0 predicting its assistant token
    // Two pairs without c1: T is their longest row, r0's 11 positions.
    size_t two[2] = {0, 2};
    assert_int_equal(dpo_fill_rows(&f->b, &f->set, two, 2, PAD), 11);
    assert_row_is(&f->b, 0, 11, &f->pairs[0].chosen);
    assert_row_is(&f->b, 3, 11, &f->pairs[2].rejected);
}

// Sum over response positions of log softmax(logits)[target], in double,
// from a forward pass over the example alone (no padding, no batch).
static double direct_logp(GPT *m, const SftExample *e) {
    int T = e->n - 1;
    gpt_forward(m, e->ids, 1, T, 1);
    double sum = 0;
    for (int t = e->response_start - 1; t < T; t++) {
        const float *z = m->acts.logits + (size_t)t * V;
        double mx = z[0], s = 0;
        for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        for (int v = 0; v < V; v++) s += exp(z[v] - mx);
        sum += z[e->ids[t + 1]] - mx - log(s);
    }
    return sum;
}

static void test_sequence_logps_match_direct(void **state) {
    Tiny *f = *state;
    size_t idx[NP] = {0, 1, 2};
    int T = dpo_fill_rows(&f->b, &f->set, idx, NP, PAD);
    double seq[MAX_ROWS];
    dpo_sequence_logps(&f->b, 2 * NP, T, seq);
    for (int i = 0; i < NP; i++) {
        double want_c = direct_logp(&f->m, &f->pairs[i].chosen), want_r = direct_logp(&f->m, &f->pairs[i].rejected);
        printf("pair %d: chosen %.6f (direct %.6f), rejected %.6f (direct %.6f)\n", i, seq[i], want_c, seq[NP + i],
               want_r);
        assert_true(want_c < -1.0 && want_r < -1.0); // a real sum of several terms, not 0
        assert_float_equal(seq[i], want_c, 1e-4);
        assert_float_equal(seq[NP + i], want_r, 1e-4);
    }
}

// r1 (5 tokens) as the only row, then beside c1 (17 tokens): 12 pads after it.
static void test_padding_does_not_change_logp(void **state) {
    Tiny *f = *state;
    const SftExample *shortest = &f->pairs[1].rejected;
    int T_alone = shortest->n - 1;
    sft_fill_row(&f->b, 0, T_alone, shortest, PAD);
    double alone;
    dpo_sequence_logps(&f->b, 1, T_alone, &alone);
    size_t idx[1] = {1};
    int T = dpo_fill_rows(&f->b, &f->set, idx, 1, PAD);
    assert_int_equal(T, CTX);
    double both[2];
    dpo_sequence_logps(&f->b, 2, T, both);
    printf("alone %.8f, padded %.8f\n", alone, both[1]);
    assert_float_equal(both[1], alone, 1e-5);
}

typedef struct {
    LmBatch *b;
    int B, T;
    const double *ref_c, *ref_r;
    double beta;
} LossCtx;

static double batch_loss(void *p) {
    LossCtx *c = p;
    return dpo_batch_loss(c->b, c->B, c->T, c->ref_c, c->ref_r, c->beta, 0).loss;
}

// References off the policy by different amounts per pair, so each pair's
// sigmoid (hence its d_chosen) differs; reward margins beta (off_r - off_c)
// = -1.0, 0.5, 0.6: pair 0 loses, pairs 1 and 2 win.
static void refs_off_policy(const double *seq, double *ref_c, double *ref_r) {
    const double off_c[NP] = {0.8, -0.6, -1.5}, off_r[NP] = {-1.2, 0.4, -0.3};
    for (int i = 0; i < NP; i++) ref_c[i] = seq[i] + off_c[i], ref_r[i] = seq[NP + i] + off_r[i];
}

// The statistics are the means of dpo_loss over the pairs.
static void test_batch_stats_are_pair_means(void **state) {
    Tiny *f = *state;
    size_t idx[NP] = {0, 1, 2};
    int T = dpo_fill_rows(&f->b, &f->set, idx, NP, PAD);
    double seq[MAX_ROWS], ref_c[NP], ref_r[NP], beta = 0.5;
    dpo_sequence_logps(&f->b, 2 * NP, T, seq);
    refs_off_policy(seq, ref_c, ref_r);
    DpoStats want = {0};
    for (int i = 0; i < NP; i++) {
        DpoPairLoss p = dpo_loss(seq[i], seq[NP + i], ref_c[i], ref_r[i], beta, NULL);
        want.loss += p.loss / NP, want.margin += (p.reward_chosen - p.reward_rejected) / NP;
        want.reward_chosen += p.reward_chosen / NP, want.reward_rejected += p.reward_rejected / NP;
        want.accuracy += (p.reward_chosen > p.reward_rejected) / (double)NP;
        want.logp_chosen += seq[i] / NP, want.logp_rejected += seq[NP + i] / NP;
    }
    DpoStats got = dpo_batch_loss(&f->b, NP, T, ref_c, ref_r, beta, 0);
    assert_float_equal(got.loss, want.loss, 1e-12);
    assert_float_equal(got.reward_chosen, want.reward_chosen, 1e-12);
    assert_float_equal(got.reward_rejected, want.reward_rejected, 1e-12);
    assert_float_equal(got.margin, want.margin, 1e-12);
    assert_float_equal(got.logp_chosen, want.logp_chosen, 1e-12);
    assert_float_equal(got.logp_rejected, want.logp_rejected, 1e-12);
    assert_float_equal(got.margin, (-1.0 + 0.5 + 0.6) / NP, 1e-9);
    assert_float_equal(got.accuracy, 2.0 / 3.0, 1e-12);
    assert_float_equal(got.accuracy, want.accuracy, 1e-12);
}

// d(mean loss)/d(params) against central differences on every tensor.
static void test_gradient_against_finite_differences(void **state) {
    Tiny *f = *state;
    size_t idx[NP] = {0, 1, 2};
    int T = dpo_fill_rows(&f->b, &f->set, idx, NP, PAD);
    double seq[MAX_ROWS], ref_c[NP], ref_r[NP];
    dpo_sequence_logps(&f->b, 2 * NP, T, seq);
    refs_off_policy(seq, ref_c, ref_r);
    LossCtx c = {&f->b, NP, T, ref_c, ref_r, 0.5};
    DpoStats s = dpo_batch_loss(&f->b, NP, T, ref_c, ref_r, c.beta, 1);
    assert_true(s.loss > 0.1 && isfinite(s.loss));
    size_t sizes[NUM_PARAMETER_TENSORS], off = 0;
    gpt_param_sizes(&f->m.config, sizes);
    // As test_model's whole-model check: eps 1e-2 (float32 forward noise
    // over two layers swamps smaller steps), relative error 2e-2 per tensor.
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        double rel = gradcheck(gpt_param_name(k), f->m.params_memory + off, f->m.grads_memory + off, sizes[k], 24,
                               1e-2f, batch_loss, &c);
        assert_true(rel < 2e-2);
        off += sizes[k];
    }
}

// With the policy as its own reference every pair is a tie: loss log 2,
// rewards 0, accuracy 0.5, and the gradient on each weighted token is
// dL/dlogp_c = beta (sigmoid(0) - 1) / B on chosen rows, minus that on
// rejected ones, 0 on prompt and padding.
static void test_at_the_reference(void **state) {
    Tiny *f = *state;
    size_t idx[NP] = {0, 1, 2};
    int T = dpo_fill_rows(&f->b, &f->set, idx, NP, PAD);
    double seq[MAX_ROWS], beta = 0.5;
    dpo_sequence_logps(&f->b, 2 * NP, T, seq);
    DpoStats s = dpo_batch_loss(&f->b, NP, T, seq, seq + NP, beta, 1);
    assert_float_equal(s.loss, log(2.0), 1e-12);
    assert_true(fabs(s.reward_chosen) < 1e-12 && fabs(s.reward_rejected) < 1e-12 && fabs(s.margin) < 1e-12);
    assert_float_equal(s.accuracy, 0.5, 1e-12);
    assert_float_equal(s.logp_chosen, (seq[0] + seq[1] + seq[2]) / NP, 1e-12);
    float d = (float)(-beta * 0.5 / NP);
    for (int row = 0; row < 2 * NP; row++)
        for (int t = 0; t < T; t++) {
            float w = f->b.weights[row * T + t], want = row < NP ? d * w : -d * w;
            assert_float_equal(f->b.dlogp[row * T + t], want, 1e-9);
        }
}

// ---- dpo_load on a real tokenizer -----------------------------------------------
typedef struct {
    char dir[256], tok_path[300];
    Tokenizer *tok;
} TokFixture;

static int setup_tok(void **state) {
    TokFixture *f = calloc(1, sizeof *f);
    make_temp_dir(f->dir, sizeof f->dir);
    snprintf(f->tok_path, sizeof f->tok_path, "%s/tok.bin", f->dir);
    Error err;
    *state = f;
    if (make_smoke_chain(f->dir, "tok")) return -1;
    return tokenizer_load(&f->tok, f->tok_path, &err);
}

static int teardown_tok(void **state) {
    TokFixture *f = *state;
    char out[256];
    if (f->tok) tokenizer_free(f->tok);
    run_cmd(out, sizeof out, "rm -rf %s", f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void assert_encodes_as(const Tokenizer *tok, const SftExample *e, const char *prompt, const char *response) {
    int *ids;
    size_t n, start;
    Error err;
    assert_int_equal(chat_format(tok, prompt, response, &ids, &n, &start, &err), 0);
    assert_int_equal(e->n, (int)n);
    assert_int_equal(e->response_start, (int)start);
    assert_memory_equal(e->ids, ids, n * sizeof *ids);
    free(ids);
}

static void test_load(void **state) {
    TokFixture *f = *state;
    char path[400];
    snprintf(path, sizeof path, "%s/pairs.jsonl", f->dir);
    char long_text[2000] = "";
    for (int i = 0; i < 60; i++) strcat(long_text, "the moon and the sea ");
    char text[4096];
    snprintf(text, sizeof text,
             "{\"prompt\":\"Tell me a fortune.\",\"chosen\":\"You will be happy.\",\"rejected\":\"No.\","
             "\"gold_chosen\":0.75,\"gold_rejected\":-0.25}\n"
             "{\"prompt\":\"Hi\",\"chosen\":\"ok\",\"rejected\":\"%s\"}\n"
             "{\"prompt\":\"Hi\",\"chosen\":\"Good day.\",\"rejected\":\"Bad day.\"}\n",
             long_text);
    write_file(path, text);
    DpoSet set;
    Error err;
    assert_int_equal(dpo_load(&set, f->tok, path, 32, &err), 0);
    assert_int_equal(set.n, 2);
    assert_int_equal(set.skipped_long, 1); // its rejected side is too long
    assert_true(set.pairs[0].has_gold && set.pairs[0].gold_chosen == 0.75 && set.pairs[0].gold_rejected == -0.25);
    assert_false(set.pairs[1].has_gold);
    assert_int_equal(set.pairs[0].line, 1);
    assert_int_equal(set.pairs[1].line, 3);
    assert_encodes_as(f->tok, &set.pairs[0].chosen, "Tell me a fortune.", "You will be happy.");
    assert_encodes_as(f->tok, &set.pairs[0].rejected, "Tell me a fortune.", "No.");
    assert_encodes_as(f->tok, &set.pairs[1].rejected, "Hi", "Bad day.");
    // The batch: chosen rows then rejected, padded with the tokenizer's pad.
    GPT m = {.config = {.vocab_size = tokenizer_vocab_size(f->tok)}};
    LmBatch b;
    assert_int_equal(lm_batch_alloc(&b, &m, 4, 32, &err), 0);
    size_t idx[2] = {1, 0};
    int pad = tokenizer_special(f->tok, TOK_PAD);
    int T = dpo_fill_rows(&b, &set, idx, 2, pad);
    int longest = 0;
    for (int i = 0; i < 2; i++) {
        const DpoPair *p = &set.pairs[idx[i]];
        longest = p->chosen.n > longest ? p->chosen.n : longest;
        longest = p->rejected.n > longest ? p->rejected.n : longest;
        assert_int_equal(b.inputs[i * T], tokenizer_special(f->tok, TOK_USER));
        assert_int_equal(b.targets[i * T + p->chosen.n - 2], tokenizer_special(f->tok, TOK_ENDOFTEXT));
        assert_int_equal(b.targets[(2 + i) * T + p->rejected.n - 2], tokenizer_special(f->tok, TOK_ENDOFTEXT));
    }
    assert_int_equal(T, longest - 1);
    lm_batch_free(&b);
    dpo_free(&set);
    // With a context too small for every pair: an error naming the file.
    assert_int_equal(dpo_load(&set, f->tok, path, 4, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "none of its 3 pairs fits the model's context of 4 tokens"));
    // No pairs at all, and a malformed line: file (and line) named.
    write_file(path, "");
    assert_int_equal(dpo_load(&set, f->tok, path, 32, &err), -1);
    assert_non_null(strstr(err.msg, "no pairs in the file"));
    write_file(path, "{\"prompt\":\"a\",\"chosen\":\"b\",\"rejected\":\"c\"}\n{\"prompt\":\"a\",\"chosen\":\"b\"}\n");
    assert_int_equal(dpo_load(&set, f->tok, path, 32, &err), -1);
    assert_non_null(strstr(err.msg, "pairs.jsonl:2: missing field \"rejected\""));
}

int main(void) {
    const struct CMUnitTest tiny[] = {
        cmocka_unit_test(test_fill_rows_layout),
        cmocka_unit_test(test_sequence_logps_match_direct),
        cmocka_unit_test(test_padding_does_not_change_logp),
        cmocka_unit_test(test_batch_stats_are_pair_means),
        cmocka_unit_test(test_gradient_against_finite_differences),
        cmocka_unit_test(test_at_the_reference),
    };
    const struct CMUnitTest tok[] = {
        cmocka_unit_test(test_load),
    };
    int failed = cmocka_run_group_tests_name("dpo batch maths", tiny, setup_tiny, teardown_tiny);
    return failed + cmocka_run_group_tests_name("dpo_load", tok, setup_tok, teardown_tok);
}
