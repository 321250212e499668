// What every reader of prompt files (prefs, ppo, evaluate) checks the same
// way: the optional "category" field, and the form in which two prompts are
// compared.
#ifndef DATA_PROMPT_RECORD_H
#define DATA_PROMPT_RECORD_H

#include <cjson/cJSON.h>

#include "common/error.h"
#include "common/jsonl.h"
#include "data/annotator.h"

// The category of the prompt record o (line r->line of r->path) whose text is
// `text`: its "category" field when present, which must be a string naming a
// category the annotator knows ("FILE:LINE: field \"category\" must be a
// string", "FILE:LINE: unknown category \"x\""), else the one derived from the
// text (-1 when the text names none). Returns 0 or -1.
int prompt_record_category(const Annotator *a, const JsonlReader *r, const cJSON *o,
                           const char *text, int *category, Error *err);

// The prompt text in Unicode NFC (malloc'ed), the form in which prompts are
// compared: texts that differ only in normalisation are the same prompt to
// the tokenizer, so they must land on the same side of a held-out split.
// NULL when out of memory or the text is not valid UTF-8.
char *prompt_compare_key(const char *text);

#endif
