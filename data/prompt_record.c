#include "data/prompt_record.h"

#include <utf8proc.h>

int prompt_record_category(const Annotator *a, const JsonlReader *r, const cJSON *o,
                           const char *text, int *category, Error *err) {
    const cJSON *field = cJSON_GetObjectItemCaseSensitive(o, "category");
    if (!field) {
        *category = annotator_category_of_prompt(a, text);
        return 0;
    }
    if (!cJSON_IsString(field) || !field->valuestring)
        return error_set(err, "%s:%ld: field \"category\" must be a string", r->path, r->line);
    *category = annotator_category_index(a, field->valuestring);
    if (*category < 0)
        return error_set(err, "%s:%ld: unknown category \"%.200s\"", r->path, r->line,
                         field->valuestring);
    return 0;
}

char *prompt_compare_key(const char *text) {
    return (char *)utf8proc_NFC((const utf8proc_uint8_t *)text);
}
