// What a prompt calls each fortune category, and the phrasings of prompts.
// The one table of categories: prepare_data refuses a fortune file whose
// category is not listed here, so every category in the shipped data has a
// topic and every prompt template can be filled for it.
#ifndef DATA_TOPICS_H
#define DATA_TOPICS_H

#include <stddef.h>

typedef struct {
    const char *category; // the fortune file's name in the Debian package
    const char *topic;    // how a user would name it: "linuxcookie" -> "Linux"
} FortuneTopic;

size_t fortune_topic_count(void);
const FortuneTopic *fortune_topic_at(size_t i);
// The entry for a category, or NULL if the category is unknown.
const FortuneTopic *fortune_topic_find(const char *category);

// Categories left out of the corpus altogether, with the reason in topics.c.
int fortune_category_excluded(const char *category);

// Training phrasings are used for SFT pairs and prompts_train.jsonl; the
// held-out phrasings only for prompts_eval.jsonl, so evaluation measures
// whether a policy generalises beyond the wordings it was tuned on.
typedef enum { PROMPTS_TRAIN, PROMPTS_EVAL } PromptSet;

size_t prompt_template_count(PromptSet set);
// A template with one "{topic}" placeholder.
const char *prompt_template(PromptSet set, size_t i);
// The template filled with topic, malloc'ed; NULL when out of memory.
char *prompt_format(const char *tmpl, const char *topic);

#endif
