// The one chat template of minirlhf. SFT, preference sampling, reward
// scoring, PPO and evaluation all format a (prompt, response) pair here, so a
// model always sees exactly the layout it was tuned on:
//
//     [TOK_USER] prompt tokens [TOK_ASSISTANT] response tokens [TOK_ENDOFTEXT]
//
// Prompt and response are encoded separately (no BPE merge crosses a special
// token), with no added spaces or newlines.
#ifndef DATA_CHAT_TEMPLATE_H
#define DATA_CHAT_TEMPLATE_H

#include <stddef.h>

#include "common/error.h"
#include "tokenizer/tokenizer.h"

// Formats prompt and response into *ids (malloc'ed, *n_ids long). With
// response NULL the ids stop after TOK_ASSISTANT, ready for generation.
// *response_start (may be NULL) is the index of the first response token,
// just after TOK_ASSISTANT: a loss on the response covers
// ids[*response_start .. *n_ids), the response tokens and the end token.
// Invalid UTF-8 in either text is an error naming which one.
int chat_format(const Tokenizer *tok, const char *prompt, const char *response, int **ids,
                size_t *n_ids, size_t *response_start, Error *err);

// Number of leading ids of a generated response before the token that ends
// the turn (TOK_ENDOFTEXT, or TOK_USER if a model starts a new turn): n if
// there is none.
size_t chat_response_length(const Tokenizer *tok, const int *ids, size_t n);

// The text of a generated response: ids (those after TOK_ASSISTANT) decoded
// up to the token that ends the turn, invalid UTF-8 replaced by U+FFFD
// (tokenizer_decode_text). *text is malloc'ed and NUL-terminated. This text is
// the response, for every stage: the annotator judges it, and the reward
// model reads it encoded again (rm_encode_generated), whichever ids were drawn.
int chat_response_text(const Tokenizer *tok, const int *ids, size_t n, char **text, Error *err);

#endif
