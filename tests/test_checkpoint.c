// Tests of the parameter layout, checkpoint files and training-state files:
// bit-exact round trips, and one clear refusal for every way a file can be
// damaged, truncated, forged or mismatched.
// nftw() for cleaning up the temporary folders is an X/Open extension.
#define _XOPEN_SOURCE 700

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <float.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common/bytes.h"
#include "common/fileio.h"
#include "model/checkpoint.h"
#include "model/gpt.h"

// A model small enough to count by hand: V=11, maxT=5, L=2, NH=2, C=4.
// V*C + maxT*C + L*(12C^2 + 13C) + 3C + 1 = 44 + 20 + 488 + 13 = 565.
#define SMALL_NUM_PARAMS 565
#define PAYLOAD_BYTES (4 * SMALL_NUM_PARAMS)
#define FILE_BYTES (CKPT_HEADER_SIZE + PAYLOAD_BYTES)

typedef struct {
    char dir[64];
    char path[128]; // dir/model.bin, written by setup
    CkptHeader h;
    float *params;
} Fixture;

static GPTConfig small_config(void) {
    GPTConfig c = {.vocab_size = 11, .max_seq_len = 5, .n_layer = 2, .n_head = 2, .n_embd = 4};
    return c;
}

// Every 32-bit pattern is a float worth preserving, NaNs included.
static void fill_bit_patterns(float *x, size_t n, uint32_t seed) {
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        memcpy(&x[i], &s, 4);
    }
}

static void set_bits(float *x, uint32_t bits) { memcpy(x, &bits, 4); }

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/minirlhf_ckpt_XXXXXX");
    if (!f || !mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/model.bin", f->dir);
    GPTConfig cfg = small_config();
    Error err;
    if (ckpt_header_init(&f->h, CKPT_RM, &cfg, "train_rm", &err) != 0) return -1;
    f->h.tokenizer_fp = 0xA1B2C3D4u;
    f->h.step = 0x0123456789ABCDEFull;
    f->h.reward_mean = -0.25f;
    f->h.reward_std = 3.5f;
    if (ckpt_set_parent(&f->h, "/runs/x/sft/model.bin", 0xCAFEF00Du, &err) != 0) return -1;
    f->params = malloc(SMALL_NUM_PARAMS * sizeof *f->params);
    if (!f->params) return -1;
    fill_bit_patterns(f->params, SMALL_NUM_PARAMS, 1);
    set_bits(&f->params[0], 0x80000000u);   // -0.0
    set_bits(&f->params[1], 0x00000001u);   // smallest denormal
    set_bits(&f->params[2], 0x807FFFFFu);   // largest negative denormal
    set_bits(&f->params[3], 0x7FA12345u);   // signalling NaN with a payload
    set_bits(&f->params[4], 0xFFC00001u);   // negative quiet NaN with a payload
    set_bits(&f->params[5], 0x7F800000u);   // +inf
    f->params[6] = -FLT_MAX;
    if (ckpt_save(f->path, &f->h, f->params, &err) != 0) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fixture *f = *state;
    nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f->params);
    free(f);
    return 0;
}

static unsigned char *slurp(const char *path, size_t *len) {
    unsigned char *buf;
    Error err;
    assert_int_equal(read_file(path, 1 << 24, &buf, len, &err), 0);
    return buf;
}

static void write_bytes(const char *path, const void *buf, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

static void assert_contains(const char *msg, const char *part) {
    if (!strstr(msg, part)) fail_msg("message \"%s\" lacks \"%s\"", msg, part);
}

// ckpt_load must refuse path with a message naming the file and containing
// `reason`, leave *params NULL, and not leak; ckpt_verify must refuse too.
static void expect_load_refused(const char *path, const char *reason) {
    CkptHeader h;
    float *params = (float *)&h; // must be reset to NULL on failure
    Error err = {{0}};
    assert_int_equal(ckpt_load(path, &h, &params, &err), -1);
    assert_null(params);
    assert_contains(err.msg, path);
    assert_contains(err.msg, reason);
    Error verr = {{0}};
    assert_int_equal(ckpt_verify(path, &h, &verr), -1);
    assert_string_equal(verr.msg, err.msg);
}

// Header-level damage: ckpt_read_header refuses with the same message.
static void expect_refused(const char *path, const char *reason) {
    expect_load_refused(path, reason);
    CkptHeader h;
    Error err = {{0}};
    assert_int_equal(ckpt_read_header(path, &h, &err), -1);
    assert_contains(err.msg, reason);
}

// Writes buf back to path after recomputing the header checksum, so that a
// forged field reaches the checks behind the checksum.
static void write_forged(const char *path, unsigned char *buf, size_t len) {
    put_u32(buf + 508, (uint32_t)crc32(0, buf, 508));
    write_bytes(path, buf, len);
}

// ---- Parameter layout -------------------------------------------------------

static void test_param_layout(void **state) {
    (void)state;
    GPTConfig c = small_config();
    assert_int_equal(gpt_num_params(&c), SMALL_NUM_PARAMS);
    size_t sizes[NUM_PARAMETER_TENSORS], total = 0;
    gpt_param_sizes(&c, sizes);
    const size_t expected[NUM_PARAMETER_TENSORS] = {44, 20, 8,  8, 96, 24, 32, 8, 8,
                                                    8,  128, 32, 128, 8, 4, 4, 4, 1};
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        assert_int_equal(sizes[i], expected[i]);
        size_t shape[3];
        int rank = gpt_param_shape(&c, i, shape);
        assert_true(rank >= 1 && rank <= 3);
        assert_int_equal(shape[0] * shape[1] * shape[2], sizes[i]);
        total += sizes[i];
    }
    assert_int_equal(total, SMALL_NUM_PARAMS);
    size_t shape[3];
    assert_int_equal(gpt_param_shape(&c, 4, shape), 3); // qkvw (L, 3C, C)
    assert_int_equal(shape[0], 2);
    assert_int_equal(shape[1], 12);
    assert_int_equal(shape[2], 4);
    assert_int_equal(gpt_param_shape(&c, 12, shape), 3); // fcprojw (L, C, 4C)
    assert_int_equal(shape[1], 4);
    assert_int_equal(shape[2], 16);
    assert_int_equal(gpt_param_shape(&c, NUM_PARAMETER_TENSORS, shape), 0);
    assert_string_equal(gpt_param_name(0), "wte");
    assert_string_equal(gpt_param_name(17), "headb");

    float mem[SMALL_NUM_PARAMS];
    ParameterTensors p;
    gpt_point_params(&p, mem, &c);
    assert_ptr_equal(p.wte, mem);
    assert_ptr_equal(p.wpe, mem + 44);
    assert_ptr_equal(p.fcprojw, mem + 416);
    assert_ptr_equal(p.headw, mem + 560);
    assert_ptr_equal(p.headb, mem + 564);

    // The general formula on a named configuration with a real vocabulary.
    GPTConfig tiny = {.vocab_size = 512};
    Error err;
    assert_int_equal(gpt_config_named(&tiny, "tiny", &err), 0);
    size_t C = 128, L = 4;
    assert_int_equal(gpt_num_params(&tiny),
                     512 * C + 128 * C + L * (12 * C * C + 13 * C) + 3 * C + 1);
}

// ---- Round trip ---------------------------------------------------------------

static void assert_headers_equal(const CkptHeader *a, const CkptHeader *b) {
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->kind, b->kind);
    assert_memory_equal(&a->config, &b->config, sizeof a->config);
    assert_true(a->num_params == b->num_params);
    assert_int_equal(a->tokenizer_fp, b->tokenizer_fp);
    assert_memory_equal(a->stage, b->stage, sizeof a->stage);
    assert_true(a->step == b->step);
    assert_int_equal(a->parent_fp, b->parent_fp);
    assert_memory_equal(a->parent_path, b->parent_path, sizeof a->parent_path);
    assert_memory_equal(&a->reward_mean, &b->reward_mean, 4);
    assert_memory_equal(&a->reward_std, &b->reward_std, 4);
    assert_int_equal(a->payload_crc, b->payload_crc);
    assert_int_equal(a->fingerprint, b->fingerprint);
}

static void test_round_trip_bit_exact(void **state) {
    Fixture *f = *state;
    Error err;
    CkptHeader h;
    float *params = NULL;
    assert_int_equal(ckpt_load(f->path, &h, &params, &err), 0);
    assert_headers_equal(&h, &f->h);
    assert_int_equal(h.version, 1);
    assert_int_equal(h.kind, CKPT_RM);
    assert_true(h.num_params == SMALL_NUM_PARAMS);
    assert_string_equal(h.stage, "train_rm");
    assert_string_equal(h.parent_path, "/runs/x/sft/model.bin");
    assert_true(h.step == 0x0123456789ABCDEFull);
    assert_true(h.reward_mean == -0.25f && h.reward_std == 3.5f);
    assert_memory_equal(params, f->params, PAYLOAD_BYTES); // -0.0, denormals, NaN bits
    free(params);

    CkptHeader only;
    assert_int_equal(ckpt_read_header(f->path, &only, &err), 0);
    assert_headers_equal(&only, &f->h);
    assert_int_equal(ckpt_verify(f->path, &only, &err), 0);
    assert_string_equal(ckpt_kind_name(CKPT_LM), "language-model");
    assert_string_equal(ckpt_kind_name(CKPT_RM), "reward-model");
    assert_string_equal(ckpt_kind_name(CKPT_POLICY), "policy");
}

// The bytes on disk follow docs/checkpoint-format.md, whatever the host.
static void test_layout_on_disk_matches_docs(void **state) {
    Fixture *f = *state;
    size_t len;
    unsigned char *b = slurp(f->path, &len);
    assert_int_equal(len, FILE_BYTES);
    assert_memory_equal(b, "MRLHFCKP", 8);
    assert_int_equal(get_u32(b + 8), 1);          // version
    assert_int_equal(get_u32(b + 12), 512);       // header size
    assert_int_equal(get_u32(b + 16), CKPT_RM);   // kind
    assert_int_equal(get_u32(b + 20), 0xA1B2C3D4u); // tokenizer fingerprint
    assert_int_equal(get_u32(b + 24), 11);        // vocab_size
    assert_int_equal(get_u32(b + 28), 5);         // max_seq_len
    assert_int_equal(get_u32(b + 32), 2);         // n_layer
    assert_int_equal(get_u32(b + 36), 2);         // n_head
    assert_int_equal(get_u32(b + 40), 4);         // n_embd
    assert_int_equal(get_u32(b + 44), 0xCAFEF00Du); // parent fingerprint
    assert_true(get_u64(b + 48) == SMALL_NUM_PARAMS);
    assert_true(get_u64(b + 56) == 0x0123456789ABCDEFull);
    assert_true(get_f32(b + 64) == -0.25f);
    assert_true(get_f32(b + 68) == 3.5f);
    assert_string_equal((char *)b + 72, "train_rm");
    assert_string_equal((char *)b + 88, "/runs/x/sft/model.bin");
    for (int i = 344; i < 504; i++) assert_int_equal(b[i], 0);
    assert_int_equal(get_u32(b + 504), (uint32_t)crc32(0, b + 512, PAYLOAD_BYTES));
    assert_int_equal(get_u32(b + 508), (uint32_t)crc32(0, b, 508));
    assert_int_equal(get_u32(b + 508), f->h.fingerprint);
    assert_int_equal(get_u32(b + 512), 0x80000000u); // first parameter, -0.0
    free(b);
}

// ---- Refusals ------------------------------------------------------------------

static void test_truncated_anywhere(void **state) {
    Fixture *f = *state;
    size_t len;
    unsigned char *b = slurp(f->path, &len);
    char cut[160];
    snprintf(cut, sizeof cut, "%s/cut.bin", f->dir);
    const size_t offsets[] = {1, 4, 7, 8, 11, 12, 100, 507, 511, 512, 513, 516,
                              512 + PAYLOAD_BYTES / 2, FILE_BYTES - 1};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        write_bytes(cut, b, offsets[i]);
        expect_refused(cut, "truncated");
    }
    write_bytes(cut, b, 1000);
    expect_refused(cut, "header says 565 parameters (2260 bytes of payload) but the file has "
                        "488 bytes after the header");
    write_bytes(cut, b, 0);
    expect_refused(cut, "empty file");
    free(b);
}

static void test_wrong_magic_and_version(void **state) {
    Fixture *f = *state;
    size_t len;
    unsigned char *b = slurp(f->path, &len);
    b[3] ^= 0x20;
    write_bytes(f->path, b, len);
    expect_refused(f->path, "not a minirlhf checkpoint");
    b[3] ^= 0x20;
    put_u32(b + 8, 2); // a future format: refused before its checksum is looked at
    write_bytes(f->path, b, len);
    expect_refused(f->path, "unsupported checkpoint format version 2 (this build reads version 1)");
    write_bytes(f->path, "hello\n", 6); // text shorter than the magic
    expect_refused(f->path, "not a minirlhf checkpoint");
    // An optimizer-state file is not a checkpoint and vice versa.
    memcpy(b, "MRLHFOPT", 8);
    write_bytes(f->path, b, len);
    expect_refused(f->path, "not a minirlhf checkpoint");
    free(b);
}

static void test_checksum_mismatches(void **state) {
    Fixture *f = *state;
    size_t len;
    unsigned char *b = slurp(f->path, &len);
    b[512 + 1000] ^= 0x01; // one bit of one parameter
    write_bytes(f->path, b, len);
    CkptHeader h;
    Error err;
    assert_int_equal(ckpt_read_header(f->path, &h, &err), 0); // the header alone is sound
    expect_load_refused(f->path, "payload checksum mismatch");
    b[512 + 1000] ^= 0x01;
    b[56] ^= 0x01; // the step, without fixing the header checksum
    write_bytes(f->path, b, len);
    expect_refused(f->path, "header checksum mismatch");
    b[56] ^= 0x01;
    b[300] = 'x'; // inside parent_path's padding
    write_bytes(f->path, b, len);
    expect_refused(f->path, "header checksum mismatch");
    free(b);
}

// Forges one change into a fresh copy of the saved checkpoint (with a valid
// header checksum) and expects the loader to refuse it for `reason`.
typedef void (*HeaderEdit)(unsigned char *header);

static void expect_forgery_refused(const Fixture *f, HeaderEdit edit, const char *reason) {
    size_t len;
    unsigned char *b = slurp(f->path, &len);
    char forged[160];
    snprintf(forged, sizeof forged, "%s/forged.bin", f->dir);
    edit(b);
    write_forged(forged, b, len);
    expect_refused(forged, reason);
    free(b);
}

static void one_param_more(unsigned char *b) { put_u64(b + 48, SMALL_NUM_PARAMS + 1); }
static void one_param_less(unsigned char *b) { put_u64(b + 48, SMALL_NUM_PARAMS - 1); }
static void max_num_params(unsigned char *b) { put_u64(b + 48, UINT64_MAX); }
static void wrapping_num_params(unsigned char *b) { put_u64(b + 48, 1ull << 62); } // *4 wraps to 0
static void huge_valid_config(unsigned char *b) {
    // The largest config the validator accepts: ~1.7e10 parameters (68 GB),
    // consistent with num_params, so only the file size can refuse it.
    GPTConfig c = {.vocab_size = 1 << 20, .max_seq_len = 8192, .n_layer = 64, .n_head = 64,
                   .n_embd = 4096};
    put_u32(b + 24, 1u << 20), put_u32(b + 28, 8192), put_u32(b + 32, 64);
    put_u32(b + 36, 64), put_u32(b + 40, 4096);
    put_u64(b + 48, gpt_num_params(&c));
}
static void n_embd_beyond_int(unsigned char *b) { put_u32(b + 40, 0xFFFFFFFFu); }
static void n_embd_beyond_limit(unsigned char *b) { put_u32(b + 40, 5000); }
static void vocab_zero(unsigned char *b) { put_u32(b + 24, 0); }
static void n_head_not_dividing(unsigned char *b) { put_u32(b + 36, 3); }
static void one_layer_more(unsigned char *b) { put_u32(b + 32, 3); }
static void kind_unknown(unsigned char *b) { put_u32(b + 16, 7); }
static void kind_zero(unsigned char *b) { put_u32(b + 16, 0); }
static void stage_unterminated(unsigned char *b) { memset(b + 72, 's', 16); }
static void parent_unterminated(unsigned char *b) { memset(b + 88, 'p', 256); }
static void reward_std_zero(unsigned char *b) { put_f32(b + 68, 0.0f); }
static void reward_std_negative(unsigned char *b) { put_f32(b + 68, -1.0f); }
static void reward_std_nan(unsigned char *b) { put_f32(b + 68, NAN); }
static void reward_std_tiny(unsigned char *b) { put_f32(b + 68, 1e-45f); }
static void reward_std_below_mean_bound(unsigned char *b) { put_f32(b + 64, 1e4f), put_f32(b + 68, 1e-3f); }
static void reward_mean_inf(unsigned char *b) { put_f32(b + 64, INFINITY); }
static void header_size_other(unsigned char *b) { put_u32(b + 12, 1024); }
static void reserved_nonzero(unsigned char *b) { b[400] = 1; }

static void test_forged_sizes_disagree_with_file(void **state) {
    Fixture *f = *state;
    expect_forgery_refused(f, one_param_more,
                           "truncated: header says 566 parameters (2264 bytes of payload) but "
                           "the file has 2260 bytes after the header");
    expect_forgery_refused(f, one_param_less, "4 unexpected bytes after the payload");
    expect_forgery_refused(f, max_num_params, "size overflows");
    expect_forgery_refused(f, wrapping_num_params, "size overflows");
    expect_forgery_refused(f, huge_valid_config,
                           "truncated: header says 17216843777 parameters (68867375108 bytes");
    expect_forgery_refused(f, header_size_other, "header size field says 1024 bytes");
}

static void test_forged_config_and_fields(void **state) {
    Fixture *f = *state;
    expect_forgery_refused(f, n_embd_beyond_int,
                           "n_embd = 4294967295 in the header is out of range");
    expect_forgery_refused(f, n_embd_beyond_limit,
                           "invalid model config: n_embd 5000 out of range");
    expect_forgery_refused(f, vocab_zero, "invalid model config: vocab_size 0");
    expect_forgery_refused(f, n_head_not_dividing, "n_head 3 must divide n_embd 4");
    expect_forgery_refused(f, one_layer_more,
                           "header says 565 parameters but its config (vocab_size=11 "
                           "max_seq_len=5 n_layer=3 n_head=2 n_embd=4) has 809");
    expect_forgery_refused(f, kind_unknown, "unknown checkpoint kind 7");
    expect_forgery_refused(f, kind_zero, "unknown checkpoint kind 0");
    expect_forgery_refused(f, stage_unterminated, "stage name is not NUL-terminated");
    expect_forgery_refused(f, parent_unterminated, "parent path is not NUL-terminated");
    expect_forgery_refused(f, reward_std_zero, "std 0: both must be finite and std at least 1e-06 (1e-6 of max(1, |mean|))");
    expect_forgery_refused(f, reward_std_tiny, "std 1.4013e-45");
    expect_forgery_refused(f, reward_std_below_mean_bound, "mean 10000, std 0.001: both must be finite and std at least 0.01");
    expect_forgery_refused(f, reward_std_negative, "std -1");
    expect_forgery_refused(f, reward_std_nan, "std nan");
    expect_forgery_refused(f, reward_mean_inf, "mean inf");
    expect_forgery_refused(f, reserved_nonzero, "reserved header bytes 344..503 are not zero");
}

static void test_not_a_file(void **state) {
    Fixture *f = *state;
    expect_refused(f->dir, "is a directory");
    char missing[160];
    snprintf(missing, sizeof missing, "%s/missing.bin", f->dir);
    expect_refused(missing, "cannot open: No such file or directory");
    expect_refused("/dev/null", "not a regular file");
}

// ---- Atomic writes -------------------------------------------------------------

static int count_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static void assert_file_is(const char *path, const unsigned char *expected, size_t len) {
    size_t got_len;
    unsigned char *got = slurp(path, &got_len);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, expected, len);
    free(got);
}

static void test_failed_save_leaves_old_file(void **state) {
    Fixture *f = *state;
    size_t len;
    unsigned char *before = slurp(f->path, &len);
    Error err;
    CkptHeader h = f->h;
    fill_bit_patterns(f->params, SMALL_NUM_PARAMS, 2); // what a failed save must not leave

    h.kind = 9; // refused before anything is written
    assert_int_equal(ckpt_save(f->path, &h, f->params, &err), -1);
    assert_contains(err.msg, "unknown checkpoint kind 9");
    h = f->h;
    memset(h.stage, 'x', sizeof h.stage);
    assert_int_equal(ckpt_save(f->path, &h, f->params, &err), -1);
    assert_contains(err.msg, "stage name is not NUL-terminated");

    // The write itself fails half-way: the file-size limit stops it at 1000
    // bytes (SIGXFSZ ignored, so write() reports EFBIG instead of killing us).
    struct rlimit old_limit, small_limit;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
    small_limit = old_limit;
    small_limit.rlim_cur = 1000;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small_limit), 0);
    h = f->h;
    int rc = ckpt_save(f->path, &h, f->params, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old_limit), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(rc, -1);
    assert_contains(err.msg, "write failed");
    assert_contains(err.msg, f->path);

    // The target is a folder: the rename fails, the folder stays.
    char folder[160], inside[200];
    snprintf(folder, sizeof folder, "%s/folder.bin", f->dir);
    snprintf(inside, sizeof inside, "%s/keep", folder);
    assert_int_equal(mkdir(folder, 0755), 0);
    write_bytes(inside, "k", 1);
    assert_int_equal(ckpt_save(folder, &h, f->params, &err), -1);
    assert_contains(err.msg, "cannot rename temporary file into place");
    assert_true(file_exists(inside));

    assert_file_is(f->path, before, len);
    assert_int_equal(count_temporaries(f->dir), 0);
    free(before);
}

static void test_save_into_missing_folder_fails_cleanly(void **state) {
    Fixture *f = *state;
    Error err;
    char path[200];
    snprintf(path, sizeof path, "%s/no/such/folder/model.bin", f->dir);
    assert_int_equal(ckpt_save(path, &f->h, f->params, &err), -1);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "No such file or directory");
    // A path through a regular file (as root, permissions would not stop us).
    snprintf(path, sizeof path, "%s/x.bin", f->path);
    assert_int_equal(ckpt_save(path, &f->h, f->params, &err), -1);
    assert_contains(err.msg, "Not a directory");
    assert_int_equal(count_temporaries(f->dir), 0);
    CkptHeader h;
    assert_int_equal(ckpt_verify(f->path, &h, &err), 0);
}

// ---- Fingerprints ----------------------------------------------------------------

static uint32_t fingerprint_of(const Fixture *f, CkptHeader h, const float *params) {
    Error err;
    assert_int_equal(ckpt_save(f->path, &h, params, &err), 0);
    CkptHeader back;
    assert_int_equal(ckpt_read_header(f->path, &back, &err), 0);
    assert_int_equal(back.fingerprint, h.fingerprint);
    return h.fingerprint;
}

static void test_fingerprint_tracks_content(void **state) {
    Fixture *f = *state;
    uint32_t base = fingerprint_of(f, f->h, f->params);
    assert_int_equal(fingerprint_of(f, f->h, f->params), base); // deterministic
    // One parameter in every tensor (its first and last), by the smallest change.
    GPTConfig c = small_config();
    size_t sizes[NUM_PARAMETER_TENSORS], offset = 0;
    gpt_param_sizes(&c, sizes);
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        size_t picks[2] = {offset, offset + sizes[t] - 1};
        for (int k = 0; k < 2; k++) {
            uint32_t bits;
            memcpy(&bits, &f->params[picks[k]], 4);
            set_bits(&f->params[picks[k]], bits ^ 1u);
            assert_int_not_equal(fingerprint_of(f, f->h, f->params), base);
            set_bits(&f->params[picks[k]], bits);
        }
        offset += sizes[t];
    }
    CkptHeader h = f->h;
    h.step++;
    assert_int_not_equal(fingerprint_of(f, h, f->params), base);
    h = f->h;
    h.tokenizer_fp ^= 1;
    assert_int_not_equal(fingerprint_of(f, h, f->params), base);
    assert_int_equal(fingerprint_of(f, f->h, f->params), base);
}

// ---- Kind and tokenizer checks -----------------------------------------------------

static void test_kind_and_tokenizer_checks(void **state) {
    Fixture *f = *state;
    Error err;
    assert_int_equal(ckpt_check_kind(f->path, &f->h, CKPT_RM, &err), 0);
    assert_int_equal(ckpt_check_kind(f->path, &f->h, CKPT_LM, &err), -1);
    assert_contains(err.msg, "is a reward-model checkpoint (written by train_rm), expected a "
                             "language-model");
    CkptTokenizer tok = {"tok.bin", 0xA1B2C3D4u, 11};
    assert_int_equal(ckpt_check_tokenizer(f->path, &f->h, &tok, &err), 0);
    tok.fingerprint = 0x12345678u;
    assert_int_equal(ckpt_check_tokenizer(f->path, &f->h, &tok, &err), -1);
    assert_contains(err.msg, "trained with tokenizer a1b2c3d4 but tok.bin has fingerprint 12345678");
    // Same fingerprint, another vocabulary: a header re-written with valid checksums.
    tok = (CkptTokenizer){"tok.bin", 0xA1B2C3D4u, 12};
    assert_int_equal(ckpt_check_tokenizer(f->path, &f->h, &tok, &err), -1);
    assert_contains(err.msg, "vocabulary of 11 tokens, but tokenizer tok.bin has 12");
    CkptHeader h;
    GPTConfig c = small_config();
    assert_int_equal(ckpt_header_init(&h, CKPT_LM, &c, "a-stage-name-too-long", &err), -1);
    char long_path[400];
    memset(long_path, 'a', sizeof long_path - 1);
    long_path[sizeof long_path - 1] = 0;
    assert_int_equal(ckpt_header_init(&h, CKPT_LM, &c, "pretrain", &err), 0);
    assert_true(h.reward_mean == 0.0f && h.reward_std == 1.0f && h.parent_fp == 0);
    // A path that does not fit is a hint left out, not an error: the
    // fingerprint is kept and parent_path is empty (issue 16).
    assert_int_equal(ckpt_set_parent(&h, long_path, 0xCAFEF00Du, &err), 0);
    assert_true(h.parent_fp == 0xCAFEF00Du && h.parent_path[0] == '\0');
}

// ---- Training state --------------------------------------------------------------

#define TS_FILE_BYTES (TRAINSTATE_HEADER_SIZE + 8 * SMALL_NUM_PARAMS + 4)

typedef struct {
    char path[160];
    TrainState s;
    float m[SMALL_NUM_PARAMS], v[SMALL_NUM_PARAMS];
} SavedState;

// Bit patterns of finite floats (the loader refuses NaN and infinite
// moments): any exponent but all ones; non-negative for a second moment.
static void fill_finite_patterns(float *x, size_t n, uint32_t seed, int non_negative) {
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        uint32_t bits = s;
        if (((bits >> 23) & 0xFF) == 0xFF) bits ^= 1u << 23;
        if (non_negative) bits &= 0x7FFFFFFFu;
        memcpy(&x[i], &bits, 4);
    }
}

static void save_state(const Fixture *f, SavedState *st) {
    Error err;
    assert_int_equal(trainstate_path_for(st->path, sizeof st->path, f->path, &err), 0);
    memset(&st->s, 0, sizeof st->s);
    st->s.step = 0x7EDCBA9876543210ull;
    st->s.rng_state = 0x9E3779B97F4A7C15ull;
    st->s.ckpt_fp = f->h.fingerprint;
    st->s.n_ranks = 1;
    st->s.shape = small_config();
    st->s.inputs = (TrainInputs){0x11111111u, 0x22222222u, 0x33333333u};
    st->s.stage.kl_beta = 0.2;
    fill_finite_patterns(st->m, SMALL_NUM_PARAMS, 3, 0);
    fill_finite_patterns(st->v, SMALL_NUM_PARAMS, 4, 1);
    set_bits(&st->m[0], 0x80000000u); // -0.0
    set_bits(&st->v[0], 0x00000001u); // the smallest denormal
    assert_int_equal(trainstate_save(st->path, &st->s, st->m, st->v, &err), 0);
}

static void test_trainstate_round_trip(void **state) {
    Fixture *f = *state;
    SavedState *st = calloc(1, sizeof *st), *back = calloc(1, sizeof *back);
    assert_non_null(st);
    assert_non_null(back);
    save_state(f, st);
    char expected_path[160];
    snprintf(expected_path, sizeof expected_path, "%s/model.opt", f->dir);
    assert_string_equal(st->path, expected_path);
    Error err;
    assert_int_equal(trainstate_load(st->path, f->h.fingerprint, &back->s, back->m, back->v,
                                     SMALL_NUM_PARAMS, &err),
                     0);
    assert_true(back->s.step == st->s.step && back->s.rng_state == st->s.rng_state);
    assert_int_equal(back->s.ckpt_fp, f->h.fingerprint);
    assert_int_equal(back->s.n_ranks, 1);
    assert_memory_equal(&back->s.shape, &st->s.shape, sizeof st->s.shape);
    assert_memory_equal(&back->s.inputs, &st->s.inputs, sizeof st->s.inputs);
    assert_true(back->s.stage.kl_beta == 0.2);
    assert_memory_equal(back->m, st->m, sizeof st->m); // -0.0 and denormal bits too
    assert_memory_equal(back->v, st->v, sizeof st->v);
    size_t len;
    unsigned char *b = slurp(st->path, &len);
    assert_int_equal(len, TS_FILE_BYTES);
    assert_memory_equal(b, "MRLHFOPT", 8);
    // The named fields at the offsets docs/checkpoint-format.md gives.
    assert_int_equal(get_u32(b + 8), 2);
    assert_int_equal(get_u32(b + 12), TRAINSTATE_HEADER_SIZE);
    assert_int_equal(get_u32(b + 16), f->h.fingerprint);
    assert_int_equal(get_u32(b + 20), 1);
    assert_true(get_u64(b + 24) == SMALL_NUM_PARAMS && get_u64(b + 32) == st->s.step);
    assert_true(get_u64(b + 40) == st->s.rng_state);
    assert_true(get_u32(b + 48) == 11 && get_u32(b + 52) == 5 && get_u32(b + 56) == 2 && get_u32(b + 60) == 2 &&
                get_u32(b + 64) == 4);
    assert_true(get_u32(b + 68) == 0x11111111u && get_u32(b + 72) == 0x22222222u && get_u32(b + 76) == 0x33333333u);
    uint64_t beta_bits;
    memcpy(&beta_bits, &st->s.stage.kl_beta, 8);
    assert_true(get_u64(b + 80) == beta_bits);
    assert_int_equal(get_u32(b + len - 4), (uint32_t)crc32(0, b, (uInt)len - 4));
    free(b);

    char path[64];
    assert_int_equal(trainstate_path_for(path, sizeof path, "run/rm/weights", &err), 0);
    assert_string_equal(path, "run/rm/weights.opt");
    assert_int_equal(trainstate_path_for(path, 8, "run/rm/model.bin", &err), -1);
    free(st);
    free(back);
}

static void expect_trainstate_refused(const char *path, uint32_t fp, size_t num_params,
                                      const char *reason) {
    TrainState s;
    float *m = calloc(SMALL_NUM_PARAMS, sizeof *m), *v = calloc(SMALL_NUM_PARAMS, sizeof *v);
    assert_non_null(m);
    assert_non_null(v);
    Error err = {{0}};
    assert_int_equal(trainstate_load(path, fp, &s, m, v, num_params, &err), -1);
    assert_contains(err.msg, path);
    assert_contains(err.msg, reason);
    free(m);
    free(v);
}

static void test_trainstate_refusals(void **state) {
    Fixture *f = *state;
    SavedState *st = calloc(1, sizeof *st);
    assert_non_null(st);
    save_state(f, st);
    uint32_t fp = f->h.fingerprint;
    expect_trainstate_refused(st->path, fp ^ 1, SMALL_NUM_PARAMS, "belongs to checkpoint");
    expect_trainstate_refused(st->path, fp, SMALL_NUM_PARAMS - 1,
                              "training state is for 565 parameters but the model has 564");
    expect_trainstate_refused(f->path, fp, SMALL_NUM_PARAMS, "not a minirlhf training state");
    expect_trainstate_refused(f->dir, fp, SMALL_NUM_PARAMS, "is a directory");

    size_t len;
    unsigned char *b = slurp(st->path, &len);
    const size_t cuts[] = {3, 8, 12, 255, 256, 257, 256 + 4 * SMALL_NUM_PARAMS, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_bytes(st->path, b, cuts[i]);
        expect_trainstate_refused(st->path, fp, SMALL_NUM_PARAMS, "truncated");
    }
    write_bytes(st->path, b, 0);
    expect_trainstate_refused(st->path, fp, SMALL_NUM_PARAMS, "empty file");
    b[len - 100] ^= 0x10; // one bit of v
    write_bytes(st->path, b, len);
    expect_trainstate_refused(st->path, fp, SMALL_NUM_PARAMS, "checksum mismatch");
    b[len - 100] ^= 0x10;
    b[16] ^= 0x01; // the checkpoint fingerprint: corruption, not a mismatched pair
    write_bytes(st->path, b, len);
    expect_trainstate_refused(st->path, fp, SMALL_NUM_PARAMS, "checksum mismatch");
    b[16] ^= 0x01;
    for (uint32_t version = 1; version <= 3; version += 2) { // the format before, and one after
        put_u32(b + 8, version);
        write_bytes(st->path, b, len);
        char reason[160];
        snprintf(reason, sizeof reason, "training state of format %u; this build reads format 2 (start the run "
                 "again, or resume it with the build that wrote it)", version);
        expect_trainstate_refused(st->path, fp, SMALL_NUM_PARAMS, reason);
    }
    put_u32(b + 8, 2);
    unsigned char *longer = calloc(1, len + 1);
    assert_non_null(longer);
    memcpy(longer, b, len);
    write_bytes(st->path, longer, len + 1);
    expect_trainstate_refused(st->path, fp, SMALL_NUM_PARAMS, "unexpected trailing bytes");
    free(longer);
    free(b);
    free(st);
}

// Rewrites bytes [off, off + n) of a saved state and its checksum, as a
// hostile writer would: every check but the field's own range passes.
static void forge_state(const char *path, size_t off, const void *bytes, size_t n) {
    size_t len;
    unsigned char *b = slurp(path, &len);
    memcpy(b + off, bytes, n);
    put_u32(b + len - 4, (uint32_t)crc32(0, b, (uInt)len - 4));
    write_bytes(path, b, len);
    free(b);
}

static void test_trainstate_fields_out_of_range(void **state) {
    Fixture *f = *state;
    SavedState *st = calloc(1, sizeof *st);
    assert_non_null(st);
    const size_t m_at = TRAINSTATE_HEADER_SIZE, v_at = TRAINSTATE_HEADER_SIZE + 4 * SMALL_NUM_PARAMS;
    struct {
        size_t off;
        uint64_t value;
        size_t n;
        const char *reason;
    } cases[] = {
        {32, 1ull << 63, 8, "step 9223372036854775808 is out of range"},
        {32, UINT64_MAX, 8, "step 18446744073709551615 is out of range"},
        {20, 0, 4, "rank count is 0"},
        {12, 128, 4, "header size field says 128 bytes"},
        {60, 3, 4, "invalid model shape"},          // n_head 3 does not divide n_embd 4
        {48, 0x80000000u, 4, "vocab_size = 2147483648"},
        {80, 0x7FF8000000000000ull, 8, "KL coefficient beta is nan"},
        {80, 0x7FF0000000000000ull, 8, "KL coefficient beta is inf"},
        {80, 0xBFF0000000000000ull, 8, "KL coefficient beta is -1"},
        {100, 1, 1, "reserved header bytes 88..255 are not zero"},
        {m_at + 4 * 50, 0x7FC00000u, 4, "AdamW first moment of wpe holds a NaN or infinity"},
        {v_at + 4 * 564, 0xFF800000u, 4, "AdamW second moment of headb holds a NaN, an infinity or a negative"},
        {v_at, 0xBF800000u, 4, "AdamW second moment of wte holds a NaN, an infinity or a negative"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        save_state(f, st);
        uint8_t bytes[8];
        if (cases[i].n == 8) put_u64(bytes, cases[i].value);
        else if (cases[i].n == 4) put_u32(bytes, (uint32_t)cases[i].value);
        else bytes[0] = (uint8_t)cases[i].value;
        forge_state(st->path, cases[i].off, bytes, cases[i].n);
        expect_trainstate_refused(st->path, f->h.fingerprint, SMALL_NUM_PARAMS, cases[i].reason);
    }
    free(st);
}

// The writer refuses what the loader would, and writes nothing.
static void test_trainstate_save_refuses_what_load_would(void **state) {
    Fixture *f = *state;
    SavedState *st = calloc(1, sizeof *st);
    assert_non_null(st);
    save_state(f, st);
    char path[200];
    snprintf(path, sizeof path, "%s/bad.opt", f->dir);
    Error err;
    TrainState s = st->s;
    s.stage.kl_beta = -0.01;
    assert_int_equal(trainstate_save(path, &s, st->m, st->v, &err), -1);
    assert_contains(err.msg, "KL coefficient beta is -0.01");
    s = st->s;
    s.step = 1ull << 63;
    assert_int_equal(trainstate_save(path, &s, st->m, st->v, &err), -1);
    assert_contains(err.msg, "out of range");
    st->v[7] = NAN;
    assert_int_equal(trainstate_save(path, &st->s, st->m, st->v, &err), -1);
    assert_contains(err.msg, "second moment of wte");
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0);
    free(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_param_layout),
        cmocka_unit_test_setup_teardown(test_round_trip_bit_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout_on_disk_matches_docs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_anywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_magic_and_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checksum_mismatches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_sizes_disagree_with_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_config_and_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_save_leaves_old_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_into_missing_folder_fails_cleanly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint_tracks_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kind_and_tokenizer_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trainstate_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trainstate_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trainstate_fields_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trainstate_save_refuses_what_load_would, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
