#include "data/annotator_json.h"

#include "common/jsonl.h"

// A flat list, one line per field of AnnotatorParts (data/annotator.h).
void annotator_parts_to_json(cJSON *o, const AnnotatorParts *p, const Annotator *a) {
    const char *category = annotator_category_name(a, p->category);
    jsonl_add_number(o, "gold", p->gold);
    if (category) cJSON_AddStringToObject(o, "category", category);
    else cJSON_AddNullToObject(o, "category");
    jsonl_add_number(o, "words", (double)p->n_words);
    jsonl_add_number(o, "context_words", p->context_words);
    jsonl_add_number(o, "valence_mean", p->valence_mean);
    jsonl_add_number(o, "valence", p->valence);
    jsonl_add_number(o, "topic_raw", p->topic_raw);
    jsonl_add_number(o, "topic", p->topic);
    jsonl_add_number(o, "fluency", p->fluency);
    jsonl_add_number(o, "slor", p->slor);
    jsonl_add_number(o, "unseen_words", (double)p->unseen_words);
    jsonl_add_number(o, "length", p->length);
    jsonl_add_number(o, "repetition", p->repetition);
    cJSON_AddBoolToObject(o, "ended", p->ended);
}
