// Checkpoint and training-state files; the layout is in docs/checkpoint-format.md.
// Every field is written and read explicitly as little-endian bytes (never a
// struct image), and nothing read from a file sizes an allocation or a read
// until it has been checked against the file's actual size.
#include "model/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common/bytes.h"
#include "common/fileio.h"
#include "model/gpt.h"

static const char CKPT_MAGIC[8] = {'M', 'R', 'L', 'H', 'F', 'C', 'K', 'P'};
static const char TRAINSTATE_MAGIC[8] = {'M', 'R', 'L', 'H', 'F', 'O', 'P', 'T'};

// Byte offsets of the checkpoint header fields (see the table in the docs).
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 8,
    OFF_HEADER_SIZE = 12,
    OFF_KIND = 16,
    OFF_TOKENIZER_FP = 20,
    OFF_VOCAB_SIZE = 24,
    OFF_MAX_SEQ_LEN = 28,
    OFF_N_LAYER = 32,
    OFF_N_HEAD = 36,
    OFF_N_EMBD = 40,
    OFF_PARENT_FP = 44,
    OFF_NUM_PARAMS = 48,
    OFF_STEP = 56,
    OFF_REWARD_MEAN = 64,
    OFF_REWARD_STD = 68,
    OFF_STAGE = 72,
    OFF_PARENT_PATH = OFF_STAGE + CKPT_STAGE_LEN, // 88
    OFF_RESERVED = OFF_PARENT_PATH + CKPT_PARENT_PATH_LEN, // 344
    OFF_PAYLOAD_CRC = CKPT_HEADER_SIZE - 8, // 504
    OFF_FINGERPRINT = CKPT_HEADER_SIZE - 4, // 508
};

// Byte offsets of the training-state header fields (format 2).
enum {
    TS_OFF_MAGIC = 0,
    TS_OFF_VERSION = 8,
    TS_OFF_HEADER_SIZE = 12,
    TS_OFF_CKPT_FP = 16,
    TS_OFF_N_RANKS = 20,
    TS_OFF_NUM_PARAMS = 24,
    TS_OFF_STEP = 32,
    TS_OFF_RNG_STATE = 40,
    TS_OFF_VOCAB_SIZE = 48,
    TS_OFF_MAX_SEQ_LEN = 52,
    TS_OFF_N_LAYER = 56,
    TS_OFF_N_HEAD = 60,
    TS_OFF_N_EMBD = 64,
    TS_OFF_TOKENIZER_FP = 68,
    TS_OFF_REF_FP = 72,
    TS_OFF_RM_FP = 76,
    TS_OFF_KL_BETA = 80,
    TS_OFF_RESERVED = 88,
};

// Floats are converted and checksummed in chunks of this many, so that no
// second copy of a whole model is ever needed.
#define FLOAT_CHUNK 16384

const char *ckpt_kind_name(CkptKind kind) {
    switch (kind) {
    case CKPT_LM: return "language-model";
    case CKPT_RM: return "reward-model";
    case CKPT_POLICY: return "policy";
    }
    return "unknown";
}

int ckpt_header_init(CkptHeader *h, CkptKind kind, const GPTConfig *config, const char *stage,
                     Error *err) {
    memset(h, 0, sizeof *h);
    if (strlen(stage) >= sizeof h->stage)
        return error_set(err, "stage name '%s' is longer than %zu bytes", stage,
                         sizeof h->stage - 1);
    h->version = CKPT_FORMAT_VERSION;
    h->kind = (uint32_t)kind;
    h->config = *config;
    h->num_params = gpt_num_params(config);
    snprintf(h->stage, sizeof h->stage, "%s", stage);
    h->reward_std = 1.0f;
    return 0;
}

int ckpt_set_parent(CkptHeader *h, const char *parent_path, uint32_t parent_fp, Error *err) {
    (void)err;
    // The path is a hint and the fingerprint the identity: a path that does
    // not fit is left out (a cut one would point somewhere else), and a valid
    // --init under a deep folder is not refused for it. It is recorded
    // absolute, so that lineage can follow it from any folder.
    char *absolute = path_absolute(parent_path);
    const char *recorded = absolute ? absolute : parent_path;
    if (strlen(recorded) < sizeof h->parent_path)
        snprintf(h->parent_path, sizeof h->parent_path, "%s", recorded);
    else
        memset(h->parent_path, 0, sizeof h->parent_path);
    free(absolute);
    h->parent_fp = parent_fp;
    return 0;
}

// zlib's crc32 takes a 32-bit length; chunking keeps any size safe.
static uint32_t crc_update(uint32_t crc, const uint8_t *data, size_t n) {
    while (n > 0) {
        uInt part = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, data, part);
        data += part;
        n -= part;
    }
    return crc;
}

// ---- Float streams -----------------------------------------------------------

// Encodes n floats as little-endian, folds them into *crc and, if af is not
// NULL, appends them to af (af == NULL computes the checksum only).
static int write_floats(AtomicFile *af, const float *src, size_t n, uint32_t *crc, Error *err) {
    uint8_t chunk[4 * FLOAT_CHUNK];
    while (n > 0) {
        size_t k = n < FLOAT_CHUNK ? n : FLOAT_CHUNK;
        for (size_t i = 0; i < k; i++) put_f32(chunk + 4 * i, src[i]);
        *crc = crc_update(*crc, chunk, 4 * k);
        if (af && atomic_write(af, chunk, 4 * k, err) != 0) return -1;
        src += k;
        n -= k;
    }
    return 0;
}

// Reads n little-endian floats from fp into dst (or only checksums them if dst
// is NULL), folding the bytes into *crc.
static int read_floats(FILE *fp, const char *path, float *dst, size_t n, uint32_t *crc,
                       Error *err) {
    uint8_t chunk[4 * FLOAT_CHUNK];
    while (n > 0) {
        size_t k = n < FLOAT_CHUNK ? n : FLOAT_CHUNK;
        if (fread(chunk, 4, k, fp) != k)
            return error_set(err, "%s: read failed: %s", path,
                             ferror(fp) ? strerror(errno) : "file shrank while being read");
        *crc = crc_update(*crc, chunk, 4 * k);
        if (dst) {
            for (size_t i = 0; i < k; i++) dst[i] = get_f32(chunk + 4 * i);
            dst += k;
        }
        n -= k;
    }
    return 0;
}

// Opens path for reading if it is a regular file (without blocking on a
// FIFO: open_input) and reports its size.
static FILE *open_regular_file(const char *path, uint64_t *size, Error *err) {
    unsigned long long n = 0;
    FILE *fp = open_input(path, &n, err);
    if (fp) *size = (uint64_t)n;
    return fp;
}

// Reads up to want bytes of a header; *got tells how many the file had.
static int read_header_bytes(FILE *fp, const char *path, uint8_t *buf, size_t want,
                             uint64_t file_size, size_t *got, Error *err) {
    size_t expect = file_size < want ? (size_t)file_size : want;
    *got = fread(buf, 1, expect, fp);
    if (*got != expect)
        return error_set(err, "%s: read failed: %s", path,
                         ferror(fp) ? strerror(errno) : "file shrank while being read");
    return 0;
}

// Checks what precedes the fields of any of our files: not empty, the magic,
// a known version, and a whole header. A file shorter than the magic whose
// bytes match it is reported as truncated, not as foreign.
static int check_preamble(const char *path, const uint8_t *buf, size_t got, const char magic[8],
                          const char *what, uint32_t version, size_t header_size, Error *err) {
    if (got == 0) return error_set(err, "%s: empty file (0 bytes), not a %s", path, what);
    size_t magic_len = got < 8 ? got : 8;
    if (memcmp(buf, magic, magic_len) != 0)
        return error_set(err, "%s: not a minirlhf %s (the file does not start with \"%.8s\")",
                         path, what, magic);
    if (got >= 12 && get_u32(buf + 8) != version)
        return error_set(err,
                         "%s: unsupported %s format version %" PRIu32
                         " (this build reads version %" PRIu32 ")",
                         path, what, get_u32(buf + 8), version);
    if (got < header_size)
        return error_set(err,
                         "%s: truncated: the file has %zu bytes, less than the %zu-byte header",
                         path, got, header_size);
    return 0;
}

static int all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

// ---- Checkpoint header -------------------------------------------------------

// The model shape as five consecutive u32 fields, in the same order in both
// headers: vocab_size, max_seq_len, n_layer, n_head, n_embd.
static void put_shape(uint8_t *at, const GPTConfig *c) {
    const int fields[5] = {c->vocab_size, c->max_seq_len, c->n_layer, c->n_head, c->n_embd};
    for (int i = 0; i < 5; i++) put_u32(at + 4 * i, (uint32_t)fields[i]);
}


// Serialises h into buf and returns the fingerprint: the crc32 of every header
// byte before it, which covers payload_crc and therefore the parameters too.
static uint32_t encode_ckpt_header(const CkptHeader *h, uint8_t buf[CKPT_HEADER_SIZE]) {
    memset(buf, 0, CKPT_HEADER_SIZE);
    memcpy(buf + OFF_MAGIC, CKPT_MAGIC, sizeof CKPT_MAGIC);
    put_u32(buf + OFF_VERSION, h->version);
    put_u32(buf + OFF_HEADER_SIZE, CKPT_HEADER_SIZE);
    put_u32(buf + OFF_KIND, h->kind);
    put_u32(buf + OFF_TOKENIZER_FP, h->tokenizer_fp);
    put_shape(buf + OFF_VOCAB_SIZE, &h->config);
    put_u32(buf + OFF_PARENT_FP, h->parent_fp);
    put_u64(buf + OFF_NUM_PARAMS, h->num_params);
    put_u64(buf + OFF_STEP, h->step);
    put_f32(buf + OFF_REWARD_MEAN, h->reward_mean);
    put_f32(buf + OFF_REWARD_STD, h->reward_std);
    memcpy(buf + OFF_STAGE, h->stage, CKPT_STAGE_LEN);
    memcpy(buf + OFF_PARENT_PATH, h->parent_path, CKPT_PARENT_PATH_LEN);
    put_u32(buf + OFF_PAYLOAD_CRC, h->payload_crc);
    uint32_t fingerprint = crc_update(0, buf, OFF_FINGERPRINT);
    put_u32(buf + OFF_FINGERPRINT, fingerprint);
    return fingerprint;
}

// Reads a config field, refusing values that do not fit an int.
static int read_config_field(ByteReader *br, const char *path, const char *name, int *out,
                             Error *err) {
    uint32_t v = br_u32(br);
    if (v > INT32_MAX)
        return error_set(err, "%s: %s = %" PRIu32 " in the header is out of range", path, name, v);
    *out = (int)v;
    return 0;
}

// Fills h from a header whose magic, version and checksum have been checked.
static int decode_ckpt_header(const char *path, const uint8_t buf[CKPT_HEADER_SIZE],
                              CkptHeader *h, Error *err) {
    memset(h, 0, sizeof *h);
    ByteReader br;
    br_init(&br, buf + OFF_VERSION, CKPT_HEADER_SIZE - OFF_VERSION);
    h->version = br_u32(&br);
    br_u32(&br); // header size, checked by the caller
    h->kind = br_u32(&br);
    h->tokenizer_fp = br_u32(&br);
    GPTConfig *c = &h->config;
    if (read_config_field(&br, path, "vocab_size", &c->vocab_size, err) != 0 ||
        read_config_field(&br, path, "max_seq_len", &c->max_seq_len, err) != 0 ||
        read_config_field(&br, path, "n_layer", &c->n_layer, err) != 0 ||
        read_config_field(&br, path, "n_head", &c->n_head, err) != 0 ||
        read_config_field(&br, path, "n_embd", &c->n_embd, err) != 0)
        return -1;
    h->parent_fp = br_u32(&br);
    h->num_params = br_u64(&br);
    h->step = br_u64(&br);
    h->reward_mean = br_f32(&br);
    h->reward_std = br_f32(&br);
    const uint8_t *stage = br_bytes(&br, CKPT_STAGE_LEN);
    const uint8_t *parent_path = br_bytes(&br, CKPT_PARENT_PATH_LEN);
    if (!br.ok || OFF_VERSION + br.pos != OFF_RESERVED) // the table and this code must agree
        return error_set(err, "%s: internal error: header layout mismatch", path);
    memcpy(h->stage, stage, CKPT_STAGE_LEN);
    memcpy(h->parent_path, parent_path, CKPT_PARENT_PATH_LEN);
    h->payload_crc = get_u32(buf + OFF_PAYLOAD_CRC);
    h->fingerprint = get_u32(buf + OFF_FINGERPRINT);
    return 0;
}

// Checks the fields that describe the model; shared by the writer (which must
// never produce a file the reader refuses) and the reader.
static int check_ckpt_fields(const char *path, const CkptHeader *h, Error *err) {
    if (h->kind < CKPT_LM || h->kind > CKPT_POLICY)
        return error_set(err,
                         "%s: unknown checkpoint kind %" PRIu32
                         " (expected 1 language-model, 2 reward-model or 3 policy)",
                         path, h->kind);
    Error config_err;
    if (gpt_config_validate(&h->config, &config_err) != 0)
        return error_set(err, "%s: invalid model config: %s", path, config_err.msg);
    size_t expected = gpt_num_params(&h->config);
    const GPTConfig *c = &h->config;
    if (h->num_params != (uint64_t)expected)
        return error_set(err,
                         "%s: header says %" PRIu64 " parameters but its config (vocab_size=%d "
                         "max_seq_len=%d n_layer=%d n_head=%d n_embd=%d) has %zu",
                         path, h->num_params, c->vocab_size, c->max_seq_len, c->n_layer,
                         c->n_head, c->n_embd, expected);
    if (!memchr(h->stage, 0, sizeof h->stage))
        return error_set(err, "%s: stage name is not NUL-terminated within its %zu bytes", path,
                         sizeof h->stage);
    if (!memchr(h->parent_path, 0, sizeof h->parent_path))
        return error_set(err, "%s: parent path is not NUL-terminated within its %zu bytes", path,
                         sizeof h->parent_path);
    double std_min = CKPT_REWARD_STD_MIN_REL * fmax(1.0, fabs((double)h->reward_mean));
    if (!isfinite(h->reward_mean) || !isfinite(h->reward_std) || !(h->reward_std >= std_min))
        return error_set(err,
                         "%s: reward normalisation mean %g, std %g: both must be finite "
                         "and std at least %g (1e-6 of max(1, |mean|))",
                         path, (double)h->reward_mean, (double)h->reward_std, std_min);
    return 0;
}

// The file must hold exactly the header plus num_params floats. The product
// is checked for overflow before it is formed.
static int check_ckpt_size(const char *path, uint64_t num_params, uint64_t file_size,
                           Error *err) {
    if (num_params > (UINT64_MAX - CKPT_HEADER_SIZE) / 4 || num_params > SIZE_MAX / 4)
        return error_set(err,
                         "%s: header says %" PRIu64
                         " parameters, more than any file can hold (the size overflows)",
                         path, num_params);
    uint64_t payload_bytes = num_params * 4;
    uint64_t after_header = file_size - CKPT_HEADER_SIZE; // file_size >= header, checked before
    if (after_header < payload_bytes)
        return error_set(err,
                         "%s: truncated: header says %" PRIu64 " parameters (%" PRIu64
                         " bytes of payload) but the file has %" PRIu64
                         " bytes after the header",
                         path, num_params, payload_bytes, after_header);
    if (after_header > payload_bytes)
        return error_set(err,
                         "%s: %" PRIu64 " unexpected bytes after the payload: header says %" PRIu64
                         " parameters (%" PRIu64 " bytes of payload) but the file has %" PRIu64
                         " bytes after the header",
                         path, after_header - payload_bytes, num_params, payload_bytes,
                         after_header);
    return 0;
}

// Checks a header read from a file of file_size bytes and fills h.
static int parse_ckpt_header(const char *path, const uint8_t *buf, size_t got,
                             uint64_t file_size, CkptHeader *h, Error *err) {
    if (check_preamble(path, buf, got, CKPT_MAGIC, "checkpoint", CKPT_FORMAT_VERSION,
                       CKPT_HEADER_SIZE, err) != 0)
        return -1;
    uint32_t header_size = get_u32(buf + OFF_HEADER_SIZE);
    if (header_size != CKPT_HEADER_SIZE)
        return error_set(err,
                         "%s: header size field says %" PRIu32
                         " bytes, but format version 1 has %d-byte headers",
                         path, header_size, CKPT_HEADER_SIZE);
    uint32_t stored = get_u32(buf + OFF_FINGERPRINT);
    uint32_t computed = crc_update(0, buf, OFF_FINGERPRINT);
    if (stored != computed)
        return error_set(err,
                         "%s: header checksum mismatch (stored %08" PRIx32 ", computed %08" PRIx32
                         "): the header is corrupt",
                         path, stored, computed);
    if (!all_zero(buf + OFF_RESERVED, OFF_PAYLOAD_CRC - OFF_RESERVED))
        return error_set(err, "%s: reserved header bytes %d..%d are not zero", path,
                         OFF_RESERVED, OFF_PAYLOAD_CRC - 1);
    if (decode_ckpt_header(path, buf, h, err) != 0) return -1;
    if (check_ckpt_size(path, h->num_params, file_size, err) != 0) return -1;
    return check_ckpt_fields(path, h, err);
}

// Opens a checkpoint and validates its header; the returned stream is
// positioned at the start of the payload.
static FILE *open_checkpoint(const char *path, CkptHeader *h, Error *err) {
    uint64_t file_size;
    FILE *fp = open_regular_file(path, &file_size, err);
    if (!fp) return NULL;
    uint8_t buf[CKPT_HEADER_SIZE];
    size_t got;
    if (read_header_bytes(fp, path, buf, sizeof buf, file_size, &got, err) != 0 ||
        parse_ckpt_header(path, buf, got, file_size, h, err) != 0) {
        fclose(fp);
        return NULL;
    }
    return fp;
}

// ---- Checkpoint API ------------------------------------------------------------

int ckpt_save_prepare(CkptHeader *h, const float *params, Error *err) {
    h->version = CKPT_FORMAT_VERSION;
    h->num_params = gpt_num_params(&h->config);
    if (check_ckpt_fields("checkpoint", h, err) != 0) return -1;
    uint32_t crc = 0;
    write_floats(NULL, params, (size_t)h->num_params, &crc, err);
    h->payload_crc = crc;
    uint8_t header[CKPT_HEADER_SIZE];
    h->fingerprint = encode_ckpt_header(h, header);
    return 0;
}

int ckpt_save(const char *path, CkptHeader *h, const float *params, Error *err) {
    if (!params) return error_set(err, "%s: no parameters to save", path);
    h->version = CKPT_FORMAT_VERSION;
    h->num_params = gpt_num_params(&h->config);
    if (check_ckpt_fields(path, h, err) != 0) return -1;
    // The header carries the payload checksum, so the payload is encoded
    // twice: once to checksum it, once to write it.
    if (ckpt_save_prepare(h, params, err) != 0) return -1;
    uint32_t crc = h->payload_crc;
    uint8_t header[CKPT_HEADER_SIZE];
    encode_ckpt_header(h, header);

    AtomicFile af;
    if (atomic_open(&af, path, err) != 0) return -1;
    uint32_t written_crc = 0;
    if (atomic_write(&af, header, sizeof header, err) != 0 ||
        write_floats(&af, params, (size_t)h->num_params, &written_crc, err) != 0) {
        atomic_abort(&af);
        return -1;
    }
    if (written_crc != crc) { // params changed under us: the header would lie
        atomic_abort(&af);
        return error_set(err, "%s: parameters changed while being saved", path);
    }
    return atomic_commit(&af, err);
}

int ckpt_read_header(const char *path, CkptHeader *h, Error *err) {
    FILE *fp = open_checkpoint(path, h, err);
    if (!fp) return -1;
    fclose(fp);
    return 0;
}

// Reads the payload of an opened checkpoint into dst (or only checksums it if
// dst is NULL) and compares the checksum with the header's.
static int read_ckpt_payload(FILE *fp, const char *path, const CkptHeader *h, float *dst,
                             Error *err) {
    uint32_t crc = 0;
    if (read_floats(fp, path, dst, (size_t)h->num_params, &crc, err) != 0) return -1;
    if (crc != h->payload_crc)
        return error_set(err,
                         "%s: payload checksum mismatch (header says %08" PRIx32
                         ", the parameters give %08" PRIx32 "): the file is corrupt",
                         path, h->payload_crc, crc);
    return 0;
}

int ckpt_load(const char *path, CkptHeader *h, float **params, Error *err) {
    *params = NULL;
    FILE *fp = open_checkpoint(path, h, err);
    if (!fp) return -1;
    // num_params now matches both the config and the file's size.
    float *buf = malloc((size_t)h->num_params * sizeof *buf);
    if (!buf) {
        fclose(fp);
        return error_set(err, "%s: out of memory for %" PRIu64 " parameters", path,
                         h->num_params);
    }
    int rc = read_ckpt_payload(fp, path, h, buf, err);
    fclose(fp);
    if (rc != 0) {
        free(buf);
        return -1;
    }
    *params = buf;
    return 0;
}

int ckpt_verify(const char *path, CkptHeader *h, Error *err) {
    FILE *fp = open_checkpoint(path, h, err);
    if (!fp) return -1;
    int rc = read_ckpt_payload(fp, path, h, NULL, err);
    fclose(fp);
    return rc;
}

int ckpt_check_kind(const char *path, const CkptHeader *h, CkptKind expected, Error *err) {
    if (h->kind != (uint32_t)expected)
        return error_set(err, "%s: is a %s checkpoint (written by %s), expected a %s", path,
                         ckpt_kind_name((CkptKind)h->kind), h->stage, ckpt_kind_name(expected));
    return 0;
}

int ckpt_check_tokenizer(const char *path, const CkptHeader *h, const CkptTokenizer *tok, Error *err) {
    if (h->tokenizer_fp != tok->fingerprint)
        return error_set(err,
                         "%s: trained with tokenizer %08" PRIx32 " but %s has fingerprint %08" PRIx32
                         "; use the tokenizer.bin of the same run",
                         path, h->tokenizer_fp, tok->path, tok->fingerprint);
    if (h->config.vocab_size != tok->vocab_size)
        return error_set(err, "%s: vocabulary of %d tokens, but tokenizer %s has %d; the checkpoint does not "
                         "belong to this tokenizer", path, h->config.vocab_size, tok->path, tok->vocab_size);
    return 0;
}

// ---- Training state ------------------------------------------------------------

static void put_f64(uint8_t *p, double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    put_u64(p, u);
}

static double get_f64(const uint8_t *p) {
    uint64_t u = get_u64(p);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

int trainstate_path_for(char *out, size_t n, const char *ckpt_path, Error *err) {
    size_t len = strlen(ckpt_path);
    size_t stem = (len >= 4 && strcmp(ckpt_path + len - 4, ".bin") == 0) ? len - 4 : len;
    int w = snprintf(out, n, "%.*s.opt", (int)stem, ckpt_path);
    if (w < 0 || (size_t)w >= n) return error_set(err, "%s: path too long", ckpt_path);
    return 0;
}

// The first tensor of a parameter-shaped buffer that holds a NaN or an
// infinity, or with no_negative a value below zero; NULL if there is none.
static const char *first_bad_tensor(const GPTConfig *c, const float *buf, int no_negative) {
    size_t sizes[NUM_PARAMETER_TENSORS], off = 0;
    gpt_param_sizes(c, sizes);
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        for (size_t i = off; i < off + sizes[k]; i++)
            if (!isfinite(buf[i]) || (no_negative && buf[i] < 0.0f)) return gpt_param_name(k);
        off += sizes[k];
    }
    return NULL;
}

// Every field of a state in its range; shared by the writer (which must never
// produce a file the loader refuses) and the loader.
static int check_trainstate_fields(const char *path, const TrainState *s, Error *err) {
    if (s->step > (uint64_t)INT64_MAX)
        return error_set(err, "%s: step %" PRIu64 " is out of range (at most 2^63 - 1)", path, s->step);
    if (s->n_ranks == 0) return error_set(err, "%s: rank count is 0", path);
    Error config_err;
    if (gpt_config_validate(&s->shape, &config_err) != 0)
        return error_set(err, "%s: invalid model shape: %s", path, config_err.msg);
    if (!isfinite(s->stage.kl_beta) || s->stage.kl_beta < 0)
        return error_set(err, "%s: KL coefficient beta is %g; it must be finite and >= 0", path,
                         s->stage.kl_beta);
    return 0;
}

static int check_trainstate_moments(const char *path, const GPTConfig *shape, const float *m, const float *v,
                                    Error *err) {
    const char *bad = first_bad_tensor(shape, m, 0);
    if (bad) return error_set(err, "%s: AdamW first moment of %s holds a NaN or infinity", path, bad);
    bad = first_bad_tensor(shape, v, 1);
    if (bad)
        return error_set(err, "%s: AdamW second moment of %s holds a NaN, an infinity or a negative value",
                         path, bad);
    return 0;
}

static void encode_trainstate_header(const TrainState *s, uint64_t num_params, uint8_t buf[TRAINSTATE_HEADER_SIZE]) {
    memset(buf, 0, TRAINSTATE_HEADER_SIZE);
    memcpy(buf + TS_OFF_MAGIC, TRAINSTATE_MAGIC, sizeof TRAINSTATE_MAGIC);
    put_u32(buf + TS_OFF_VERSION, TRAINSTATE_FORMAT_VERSION);
    put_u32(buf + TS_OFF_HEADER_SIZE, TRAINSTATE_HEADER_SIZE);
    put_u32(buf + TS_OFF_CKPT_FP, s->ckpt_fp);
    put_u32(buf + TS_OFF_N_RANKS, s->n_ranks);
    put_u64(buf + TS_OFF_NUM_PARAMS, num_params);
    put_u64(buf + TS_OFF_STEP, s->step);
    put_u64(buf + TS_OFF_RNG_STATE, s->rng_state);
    put_shape(buf + TS_OFF_VOCAB_SIZE, &s->shape);
    put_u32(buf + TS_OFF_TOKENIZER_FP, s->inputs.tokenizer_fp);
    put_u32(buf + TS_OFF_REF_FP, s->inputs.ref_fp);
    put_u32(buf + TS_OFF_RM_FP, s->inputs.rm_fp);
    put_f64(buf + TS_OFF_KL_BETA, s->stage.kl_beta);
}

int trainstate_save(const char *path, const TrainState *s, const float *m, const float *v, Error *err) {
    if (check_trainstate_fields(path, s, err) != 0) return -1;
    size_t num_params = gpt_num_params(&s->shape);
    if (check_trainstate_moments(path, &s->shape, m, v, err) != 0) return -1;
    uint8_t header[TRAINSTATE_HEADER_SIZE];
    encode_trainstate_header(s, num_params, header);

    AtomicFile af;
    if (atomic_open(&af, path, err) != 0) return -1;
    uint32_t crc = crc_update(0, header, sizeof header);
    uint8_t trailer[4];
    int rc = atomic_write(&af, header, sizeof header, err);
    if (rc == 0) rc = write_floats(&af, m, num_params, &crc, err);
    if (rc == 0) rc = write_floats(&af, v, num_params, &crc, err);
    put_u32(trailer, crc);
    if (rc == 0) rc = atomic_write(&af, trailer, sizeof trailer, err);
    if (rc != 0) {
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af, err);
}

// Another format version gets a message of its own: resuming across versions
// is not supported, and the user should know what to do instead.
static int check_trainstate_version(const char *path, const uint8_t *buf, size_t got, Error *err) {
    if (got < 12 || memcmp(buf, TRAINSTATE_MAGIC, sizeof TRAINSTATE_MAGIC) != 0) return 0;
    uint32_t version = get_u32(buf + TS_OFF_VERSION);
    if (version == TRAINSTATE_FORMAT_VERSION) return 0;
    return error_set(err,
                     "%s: training state of format %" PRIu32 "; this build reads format %d (start the run again, "
                     "or resume it with the build that wrote it)",
                     path, version, TRAINSTATE_FORMAT_VERSION);
}

// Checks a training-state header against the file's size and the caller's
// parameter count (which sizes the caller's m and v buffers).
static int check_trainstate_header(const char *path, const uint8_t *buf, size_t got,
                                   uint64_t file_size, size_t num_params, Error *err) {
    if (check_trainstate_version(path, buf, got, err) != 0 ||
        check_preamble(path, buf, got, TRAINSTATE_MAGIC, "training state", TRAINSTATE_FORMAT_VERSION,
                       TRAINSTATE_HEADER_SIZE, err) != 0)
        return -1;
    uint32_t header_size = get_u32(buf + TS_OFF_HEADER_SIZE);
    if (header_size != TRAINSTATE_HEADER_SIZE)
        return error_set(err, "%s: header size field says %" PRIu32 " bytes, but format %d has %d-byte headers",
                         path, header_size, TRAINSTATE_FORMAT_VERSION, TRAINSTATE_HEADER_SIZE);
    uint64_t file_params = get_u64(buf + TS_OFF_NUM_PARAMS);
    if (file_params != (uint64_t)num_params)
        return error_set(err,
                         "%s: training state is for %" PRIu64
                         " parameters but the model has %zu",
                         path, file_params, num_params);
    // 8 bytes per parameter (m and v) and a 4-byte checksum after the header.
    uint64_t body_max = UINT64_MAX - TRAINSTATE_HEADER_SIZE - 4;
    if (file_params > body_max / 8)
        return error_set(err, "%s: %" PRIu64 " parameters overflow the file size", path,
                         file_params);
    uint64_t expected = TRAINSTATE_HEADER_SIZE + 8 * file_params + 4;
    if (file_size != expected)
        return error_set(err,
                         "%s: %s: %" PRIu64 " parameters need a %" PRIu64
                         "-byte file but it has %" PRIu64 " bytes",
                         path, file_size < expected ? "truncated" : "unexpected trailing bytes",
                         file_params, expected, file_size);
    if (!all_zero(buf + TS_OFF_RESERVED, TRAINSTATE_HEADER_SIZE - TS_OFF_RESERVED))
        return error_set(err, "%s: reserved header bytes %d..%d are not zero", path,
                         TS_OFF_RESERVED, TRAINSTATE_HEADER_SIZE - 1);
    return 0;
}

// Reads m, v and the trailing checksum of an opened training-state file.
static int read_trainstate_body(FILE *fp, const char *path, const uint8_t *header, float *m,
                                float *v, size_t num_params, Error *err) {
    uint32_t crc = crc_update(0, header, TRAINSTATE_HEADER_SIZE);
    if (read_floats(fp, path, m, num_params, &crc, err) != 0 ||
        read_floats(fp, path, v, num_params, &crc, err) != 0)
        return -1;
    uint8_t trailer[4];
    if (fread(trailer, 1, sizeof trailer, fp) != sizeof trailer)
        return error_set(err, "%s: read failed: file shrank while being read", path);
    if (get_u32(trailer) != crc)
        return error_set(err,
                         "%s: checksum mismatch (stored %08" PRIx32 ", computed %08" PRIx32
                         "): the training state is corrupt",
                         path, get_u32(trailer), crc);
    return 0;
}

// Fills s from a header whose size, checksum and parameter count have been
// checked; the shape fields are refused if they do not fit an int.
static int decode_trainstate_header(const char *path, const uint8_t *buf, TrainState *s, Error *err) {
    memset(s, 0, sizeof *s);
    s->ckpt_fp = get_u32(buf + TS_OFF_CKPT_FP);
    s->n_ranks = get_u32(buf + TS_OFF_N_RANKS);
    s->step = get_u64(buf + TS_OFF_STEP);
    s->rng_state = get_u64(buf + TS_OFF_RNG_STATE);
    ByteReader br;
    br_init(&br, buf + TS_OFF_VOCAB_SIZE, TS_OFF_TOKENIZER_FP - TS_OFF_VOCAB_SIZE);
    GPTConfig *c = &s->shape;
    if (read_config_field(&br, path, "vocab_size", &c->vocab_size, err) != 0 ||
        read_config_field(&br, path, "max_seq_len", &c->max_seq_len, err) != 0 ||
        read_config_field(&br, path, "n_layer", &c->n_layer, err) != 0 ||
        read_config_field(&br, path, "n_head", &c->n_head, err) != 0 ||
        read_config_field(&br, path, "n_embd", &c->n_embd, err) != 0)
        return -1;
    s->inputs.tokenizer_fp = get_u32(buf + TS_OFF_TOKENIZER_FP);
    s->inputs.ref_fp = get_u32(buf + TS_OFF_REF_FP);
    s->inputs.rm_fp = get_u32(buf + TS_OFF_RM_FP);
    s->stage.kl_beta = get_f64(buf + TS_OFF_KL_BETA);
    return 0;
}

int trainstate_load(const char *path, uint32_t ckpt_fp, TrainState *s, float *m, float *v,
                    size_t num_params, Error *err) {
    uint64_t file_size;
    FILE *fp = open_regular_file(path, &file_size, err);
    if (!fp) return -1;
    uint8_t header[TRAINSTATE_HEADER_SIZE];
    size_t got;
    int rc = read_header_bytes(fp, path, header, sizeof header, file_size, &got, err);
    if (rc == 0) rc = check_trainstate_header(path, header, got, file_size, num_params, err);
    if (rc == 0) rc = read_trainstate_body(fp, path, header, m, v, num_params, err);
    fclose(fp);
    if (rc != 0) return -1;
    // Checked after the checksum, so a corrupt file is not mistaken for a
    // mismatched pair.
    uint32_t file_fp = get_u32(header + TS_OFF_CKPT_FP);
    if (file_fp != ckpt_fp)
        return error_set(err,
                         "%s: training state belongs to checkpoint %08" PRIx32
                         ", not to %08" PRIx32
                         " (the pair was not written together; resume from a matching pair)",
                         path, file_fp, ckpt_fp);
    if (decode_trainstate_header(path, header, s, err) != 0 || check_trainstate_fields(path, s, err) != 0)
        return -1;
    if (gpt_num_params(&s->shape) != num_params)
        return error_set(err, "%s: its model shape has %zu parameters, but the file holds %zu", path,
                         gpt_num_params(&s->shape), num_params);
    return check_trainstate_moments(path, &s->shape, m, v, err);
}
