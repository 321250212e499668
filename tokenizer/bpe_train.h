// Everything beyond the interface in tokenizer.h: the id layout, learning
// merges from a corpus, writing tokenizer files and looking inside a tokenizer.
#ifndef TOKENIZER_BPE_TRAIN_H
#define TOKENIZER_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "tokenizer/tokenizer.h"

// Id layout: 0..255 are the bytes, then the special tokens in TokSpecial
// order, then one id per merge in the order the merges were learned (which is
// also their priority when encoding).
#define TOK_FIRST_SPECIAL 256
#define TOK_FIRST_MERGE (TOK_FIRST_SPECIAL + TOK_NUM_SPECIAL)
// Largest vocabulary a file may declare.
#define TOK_MAX_VOCAB (1 << 22)

// --- Training ---------------------------------------------------------------

typedef struct {
    int vocab_size;    // bytes + specials + merges; at least TOK_FIRST_MERGE
    int min_frequency; // a pair seen fewer times than this is never merged
    int lossy;         // replace invalid UTF-8 with U+FFFD instead of failing
} BpeTrainConfig;

typedef struct BpeTrainer BpeTrainer;

int bpe_trainer_new(BpeTrainer **trainer, const BpeTrainConfig *cfg, Error *err);
void bpe_trainer_free(BpeTrainer *trainer);
// Adds one document. `source` names it in messages (e.g. "corpus.txt").
int bpe_trainer_add_text(BpeTrainer *trainer, const char *text, size_t len, const char *source,
                         Error *err);
// Adds a whole file as plain text (jsonl_field NULL) or, with jsonl_field,
// each record's string field of that name from a JSON Lines file.
int bpe_trainer_add_file(BpeTrainer *trainer, const char *path, const char *jsonl_field,
                         Error *err);
// Counts gathered so far.
size_t bpe_trainer_pretokens(const BpeTrainer *trainer); // all pre-tokens
size_t bpe_trainer_distinct(const BpeTrainer *trainer);  // distinct ones
// Learns merges until the vocabulary is full or no pair is frequent enough,
// so the result may be smaller than asked for. Ties between equally frequent
// pairs go to the lowest (left id, right id), which makes training repeatable.
int bpe_trainer_train(BpeTrainer *trainer, Tokenizer **tok, Error *err);

// --- Building, files --------------------------------------------------------

// A tokenizer from merges (2 ids each: left, right); merge i makes id
// TOK_FIRST_MERGE + i. The merges are checked as when loading a file.
int tokenizer_from_merges(Tokenizer **tok, const uint32_t *merges, int n_merges, Error *err);
// The file image of a tokenizer (malloc'ed); identical tokenizers give
// identical bytes.
int tokenizer_serialize(const Tokenizer *tok, uint8_t **buf, size_t *len, Error *err);
// Parses a file image; `name` prefixes error messages.
int tokenizer_parse(Tokenizer **tok, const uint8_t *buf, size_t len, const char *name,
                    Error *err);
int tokenizer_save(const Tokenizer *tok, const char *path, Error *err);

// --- Inspection -------------------------------------------------------------

int tokenizer_num_merges(const Tokenizer *tok);
// Merge i's left and right ids.
void tokenizer_merge(const Tokenizer *tok, int i, uint32_t *left, uint32_t *right);
// The bytes id decodes to (none for a special token); NULL if out of range.
const uint8_t *tokenizer_token_bytes(const Tokenizer *tok, int id, size_t *len);
// The special token's name, e.g. "<|endoftext|>".
const char *tokenizer_special_name(const Tokenizer *tok, TokSpecial which);

#endif
