// Checkpoint files (*.bin) that stages hand each other, and the training-state
// file beside each one so that any stage can resume. The byte layout is
// documented in docs/checkpoint-format.md; every loader here checks each
// header field against the file's size before trusting or allocating anything.
#ifndef MODEL_CHECKPOINT_H
#define MODEL_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "model/config.h"

#define CKPT_FORMAT_VERSION 1
#define CKPT_HEADER_SIZE 512
#define CKPT_STAGE_LEN 16
#define CKPT_PARENT_PATH_LEN 256

typedef enum {
    CKPT_LM = 1,     // language model (pretrain, sft)
    CKPT_RM = 2,     // reward model: scalar head read at the last token
    CKPT_POLICY = 3, // PPO policy: language model with a value head
} CkptKind;

// "language-model", "reward-model", "policy", or "unknown".
const char *ckpt_kind_name(CkptKind kind);

typedef struct {
    uint32_t version;     // format version; ckpt_save sets CKPT_FORMAT_VERSION
    uint32_t kind;        // CkptKind
    GPTConfig config;
    uint64_t num_params;  // ckpt_save sets gpt_num_params(&config)
    uint32_t tokenizer_fp; // fingerprint of the tokenizer the model was trained with
    char stage[CKPT_STAGE_LEN]; // "pretrain", "sft", "train_rm", "ppo"; NUL-terminated
    uint64_t step;        // optimiser steps taken when written
    uint32_t parent_fp;   // fingerprint of the checkpoint this run started from; 0 = none
    char parent_path[CKPT_PARENT_PATH_LEN]; // where that checkpoint was (a hint); NUL-terminated
    // Reward normalisation of a reward model, r = (raw - mean) / std;
    // 0 and 1 for the other kinds.
    float reward_mean, reward_std;
    uint32_t payload_crc; // zlib crc32 of the payload bytes; set by ckpt_save
    uint32_t fingerprint; // crc32 of the header bytes before it; set by ckpt_save
} CkptHeader;

// Zeroes h and fills kind, config, stage, reward_std = 1. Returns -1 if the
// stage name does not fit.
int ckpt_header_init(CkptHeader *h, CkptKind kind, const GPTConfig *config, const char *stage,
                     Error *err);
// Records the checkpoint a run was initialised from: its fingerprint, and its
// absolute path (path_absolute) as a hint when that fits in parent_path (255
// bytes); a longer path
// is not recorded (a cut path would point somewhere else) and parent_path is
// left empty. Returns 0.
int ckpt_set_parent(CkptHeader *h, const char *parent_path, uint32_t parent_fp, Error *err);

// Writes header and params (gpt_num_params(&h->config) floats) atomically:
// temporary file, fsync, rename; an existing file at path is untouched on
// failure. Sets h->version, num_params, payload_crc and fingerprint.
int ckpt_save(const char *path, CkptHeader *h, const float *params, Error *err);
// Sets the fields ckpt_save derives (version, num_params, payload_crc,
// fingerprint) without writing anything: the fingerprint a save would give.
int ckpt_save_prepare(CkptHeader *h, const float *params, Error *err);

// Reads and validates the header alone, including against the file's size.
int ckpt_read_header(const char *path, CkptHeader *h, Error *err);

// Reads header and payload and checks both checksums. *params is malloc'ed
// (the caller frees it) and is NULL on failure.
int ckpt_load(const char *path, CkptHeader *h, float **params, Error *err);

// Like ckpt_load but only recomputes the payload checksum, streaming the file
// without holding the parameters in memory.
int ckpt_verify(const char *path, CkptHeader *h, Error *err);

// The tokenizer a checkpoint is checked against: the file it came from (for
// messages), its fingerprint and its vocabulary size.
typedef struct {
    const char *path;
    uint32_t fingerprint;
    int vocab_size;
} CkptTokenizer;

// Checks for the stages: the checkpoint at path (header h) is of the expected
// kind / was trained with the given tokenizer (same fingerprint and the same
// vocabulary size: a header re-written with another vocab_size is refused).
int ckpt_check_kind(const char *path, const CkptHeader *h, CkptKind expected, Error *err);
int ckpt_check_tokenizer(const char *path, const CkptHeader *h, const CkptTokenizer *tok, Error *err);

// A reward model's normalisation std must be at least this fraction of
// max(1, |mean|): raw rewards are float32 (about 7 significant digits), so
// rewards that differ by less are told apart by rounding noise, and dividing
// by such a std turns them into huge or infinite scores.
#define CKPT_REWARD_STD_MIN_REL 1e-6

// ---- Training state: beside model.bin lives model.opt ----------------------

#define TRAINSTATE_FORMAT_VERSION 2
#define TRAINSTATE_HEADER_SIZE 256

// The files a run reads from its first step to its last, by fingerprint: a
// resumed run must be given the same ones. 0 where a stage has none.
typedef struct {
    uint32_t tokenizer_fp; // tokenizer.bin
    uint32_t ref_fp;       // PPO's reference model
    uint32_t rm_fp;        // PPO's reward model
} TrainInputs;

// Values a stage carries over a resume besides the model and the optimizer.
typedef struct {
    double kl_beta; // PPO's KL coefficient (the adaptive controller moves it); 0 in other stages
} TrainStageValues;

typedef struct {
    uint32_t ckpt_fp;      // fingerprint of the checkpoint this state belongs to
    uint32_t n_ranks;      // processes the run was split over (1: this build has no MPI)
    uint64_t step;         // optimiser steps taken, < 2^63
    uint64_t rng_state;    // the stage's RNG, so a resumed run draws what it would have
    GPTConfig shape;       // the model's shape
    TrainInputs inputs;
    TrainStageValues stage;
} TrainState;

// The training-state path for a checkpoint path: "x/model.bin" -> "x/model.opt"
// (".opt" is appended if the name does not end in ".bin").
int trainstate_path_for(char *out, size_t n, const char *ckpt_path, Error *err);

// Writes state and the AdamW moments m and v (gpt_num_params(&s->shape)
// floats each) atomically. Write the checkpoint first and put its fingerprint
// in s->ckpt_fp, so that a crash between the two writes leaves a pair that is
// refused. Refuses (writing nothing) a state the loader would refuse.
int trainstate_save(const char *path, const TrainState *s, const float *m, const float *v, Error *err);

// Reads a training state into s, m and v (num_params floats each, allocated by
// the caller). Refuses, with a message naming the file: another format
// version, a file for another checkpoint (ckpt_fp differs), another parameter
// count, truncation, trailing bytes, a bad checksum, and any field out of its
// range: step >= 2^63, n_ranks 0, an invalid shape, a NaN, infinite or
// negative kl_beta, a NaN or infinite moment or a negative second moment.
// On failure the contents of m and v are unspecified.
int trainstate_load(const char *path, uint32_t ckpt_fp, TrainState *s, float *m, float *v,
                    size_t num_params, Error *err);

#endif
