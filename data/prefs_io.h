// Reading preference-pair files: JSON Lines of {"prompt", "chosen",
// "rejected"} with optional "gold_chosen" and "gold_rejected" numbers, as
// written by prefs or brought by a user (the field names of the common public
// preference sets). Other fields are ignored: among them the ones prefs also
// writes, "ended_chosen", "ended_rejected" (booleans) and "category", which
// score --gold reads to recompute the gold scores.
#ifndef DATA_PREFS_IO_H
#define DATA_PREFS_IO_H

#include <stddef.h>

#include "common/error.h"
#include "common/jsonl.h"

typedef struct {
    char *prompt, *chosen, *rejected; // malloc'ed
    int has_gold;                     // 1 when both gold scores are present
    double gold_chosen, gold_rejected;
    long line; // the pair's line in its file, for messages about it
} PrefPair;

// Reads every pair of the file into *pairs (malloc'ed, *n long; NULL and 0
// for a file without pairs). A malformed line, a missing or non-string text
// field, a non-number gold score or only one of the two gold scores is an
// error naming the file and line; nothing is returned then.
int prefs_load(const char *path, PrefPair **pairs, size_t *n, Error *err);
void prefs_free(PrefPair *pairs, size_t n);

// One parsed line o of r (line r->line) as a pair, checked as prefs_load
// checks each line, into *p (its strings malloc'ed: prefs_pair_clear frees
// them). On an error p holds no strings.
int prefs_pair_read(const JsonlReader *r, const cJSON *o, PrefPair *p, Error *err);
void prefs_pair_clear(PrefPair *p);

#endif
