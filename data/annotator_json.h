// The simulated annotator's gold score and its parts as JSON fields: the one
// place that names them (score --gold prints them), so that a new part of
// AnnotatorParts is added here once.
#ifndef DATA_ANNOTATOR_JSON_H
#define DATA_ANNOTATOR_JSON_H

#include <cjson/cJSON.h>

#include "data/annotator.h"

// Adds one field to o per member of AnnotatorParts, in this order: "gold",
// "category" (the category's name, or null when the response was scored
// against none), "words", "valence_mean", "valence", "topic_raw", "topic",
// "length", "repetition", "ended" (true or false, as score reads it back).
// Numbers go through jsonl_add_number, so they read back bit for bit. o must
// not hold these names already. a names the category.
void annotator_parts_to_json(cJSON *o, const AnnotatorParts *p, const Annotator *a);

#endif
