#include "common/jsonl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "common/fileio.h"
#include "common/numfmt.h"

int jsonl_open(JsonlReader *r, const char *path, Error *err) {
    memset(r, 0, sizeof *r);
    if (strlen(path) >= sizeof r->path) return error_set(err, "%s: path too long", path);
    snprintf(r->path, sizeof r->path, "%s", path);
    return read_file(path, JSONL_MAX_BYTES, &r->data, &r->len, err);
}

int jsonl_open_stream(JsonlReader *r, FILE *fp, const char *name, Error *err) {
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", name);
    size_t cap = 1 << 16;
    r->data = malloc(cap + 1);
    while (r->data) {
        r->len += fread(r->data + r->len, 1, cap - r->len, fp);
        if (r->len < cap) break;
        if (cap >= JSONL_MAX_BYTES) {
            jsonl_close(r);
            return error_set(err, "%s: more than %zu bytes", name, JSONL_MAX_BYTES);
        }
        cap *= 2;
        unsigned char *grown = realloc(r->data, cap + 1);
        if (!grown) jsonl_close(r);
        r->data = grown;
    }
    if (!r->data) return error_set(err, "%s: out of memory", name);
    if (ferror(fp)) {
        jsonl_close(r);
        return error_set(err, "%s: read error", name);
    }
    r->data[r->len] = 0;
    return 0;
}

static int is_json_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static int compare_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// The first key that appears twice in one object of the tree (nested objects
// included), or NULL. cJSON keeps every member and returns the first, so a
// repeated key would silently lose its later value.
static const char *find_duplicate_key(const cJSON *node, Error *err, int *failed) {
    size_t n = 0;
    for (const cJSON *c = node->child; c; c = c->next) n++;
    if (cJSON_IsObject(node) && n > 1) {
        const char **names = malloc(n * sizeof *names);
        if (!names) {
            *failed = error_set(err, "out of memory");
            return NULL;
        }
        size_t k = 0;
        for (const cJSON *c = node->child; c; c = c->next) names[k++] = c->string ? c->string : "";
        qsort(names, n, sizeof *names, compare_names);
        const char *dup = NULL;
        for (size_t i = 1; i < n && !dup; i++)
            if (strcmp(names[i - 1], names[i]) == 0) dup = names[i];
        free(names);
        if (dup) return dup;
    }
    for (const cJSON *c = node->child; c; c = c->next) {
        const char *dup = find_duplicate_key(c, err, failed);
        if (dup || *failed) return dup;
    }
    return NULL;
}

// Byte offset of a \u0000 escape in the raw text of a parsed line, or -1.
// Every backslash in valid JSON starts an escape, so skipping two bytes per
// backslash keeps "\\u0000" (an escaped backslash, then "u0000") legitimate.
static long find_nul_escape(const char *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && i + 6 <= n && memcmp(s + i + 2, "0000", 4) == 0) return (long)i;
        i++;
    }
    return -1;
}

// The strict checks cJSON does not make: nothing but whitespace after the
// object, no \u0000 (cJSON would cut the string there), no repeated key.
static int check_record(const JsonlReader *r, const char *start, size_t n, const char *end,
                        const cJSON *o, Error *err) {
    const char *p = end;
    while (p < start + n && is_json_space(*p)) p++;
    if (p < start + n)
        return error_set(err, "%s:%ld: text after the JSON object at column %ld (one object a line)",
                         r->path, r->line, (long)(p - start) + 1);
    long nul = find_nul_escape(start, n);
    if (nul >= 0)
        return error_set(err, "%s:%ld: a string contains \\u0000 at column %ld (NUL is not allowed)",
                         r->path, r->line, nul + 1);
    int failed = 0;
    const char *dup = find_duplicate_key(o, err, &failed);
    if (failed) return -1;
    if (dup) return error_set(err, "%s:%ld: duplicate key \"%.200s\"", r->path, r->line, dup);
    return 0;
}

int jsonl_next(JsonlReader *r, cJSON **obj, Error *err) {
    *obj = NULL;
    while (r->pos < r->len) {
        const char *start = (const char *)r->data + r->pos;
        const char *nl = memchr(start, '\n', r->len - r->pos);
        size_t n = nl ? (size_t)(nl - start) : r->len - r->pos;
        r->pos += n + (nl ? 1 : 0);
        r->line++;
        size_t blank = 0;
        while (blank < n && is_json_space(start[blank])) blank++;
        if (blank == n) continue;
        if (memchr(start, '\0', n))
            return error_set(err, "%s:%ld: line contains a NUL byte", r->path, r->line);
        const char *end = NULL;
        cJSON *o = cJSON_ParseWithLengthOpts(start, n, &end, 0);
        if (!o) {
            long col = end ? (long)(end - start) + 1 : 1;
            return error_set(err, "%s:%ld: malformed JSON near column %ld", r->path, r->line, col);
        }
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            return error_set(err, "%s:%ld: expected a JSON object", r->path, r->line);
        }
        if (check_record(r, start, n, end, o, err)) {
            cJSON_Delete(o);
            return -1;
        }
        *obj = o;
        return 1;
    }
    return 0;
}

void jsonl_close(JsonlReader *r) {
    free(r->data);
    r->data = NULL;
    r->len = r->pos = 0;
}

const char *jsonl_string(const JsonlReader *r, const cJSON *obj, const char *name, Error *err) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!f) {
        error_set(err, "%s:%ld: missing field \"%s\"", r->path, r->line, name);
        return NULL;
    }
    if (!cJSON_IsString(f) || !f->valuestring) {
        error_set(err, "%s:%ld: field \"%s\" must be a string", r->path, r->line, name);
        return NULL;
    }
    return f->valuestring;
}

int jsonl_number(const JsonlReader *r, const cJSON *obj, const char *name, int optional,
                 double *out, Error *err) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!f || cJSON_IsNull(f)) {
        if (optional) return 1;
        return error_set(err, "%s:%ld: missing field \"%s\"", r->path, r->line, name);
    }
    if (!cJSON_IsNumber(f))
        return error_set(err, "%s:%ld: field \"%s\" must be a number", r->path, r->line, name);
    *out = f->valuedouble;
    return 0;
}

int jsonl_bool(const JsonlReader *r, const cJSON *obj, const char *name, int optional, int *out,
               Error *err) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!f || cJSON_IsNull(f)) {
        if (optional) return 1;
        return error_set(err, "%s:%ld: missing field \"%s\"", r->path, r->line, name);
    }
    if (!cJSON_IsBool(f))
        return error_set(err, "%s:%ld: field \"%s\" must be true or false", r->path, r->line, name);
    *out = cJSON_IsTrue(f) ? 1 : 0;
    return 0;
}

int jsonl_write(FILE *fp, const cJSON *obj) {
    char *s = cJSON_PrintUnformatted(obj);
    if (!s) return -1;
    int rc = (fputs(s, fp) < 0 || fputc('\n', fp) == EOF) ? -1 : 0;
    cJSON_free(s);
    return rc;
}

cJSON *jsonl_number_item(double v) {
    if (!isfinite(v)) return cJSON_CreateNull();
    char text[NUMFMT_MAX];
    return cJSON_CreateRaw(fmt_double(text, v));
}

int jsonl_exact_numbers(cJSON *obj) {
    for (cJSON *item = obj ? obj->child : NULL, *next; item; item = next) {
        next = item->next;
        if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
            if (jsonl_exact_numbers(item)) return -1;
        } else if (cJSON_IsNumber(item)) {
            cJSON *exact = jsonl_number_item(item->valuedouble);
            if (!exact) return -1;
            exact->string = item->string; // the key moves over (NULL in an array)
            exact->type |= item->type & cJSON_StringIsConst;
            item->string = NULL;
            cJSON_ReplaceItemViaPointer(obj, item, exact); // cannot fail: item is in obj
        }
    }
    return 0;
}

cJSON *jsonl_add_number(cJSON *obj, const char *name, double v) {
    cJSON *item = jsonl_number_item(v);
    if (!item) return NULL;
    if (!cJSON_AddItemToObject(obj, name, item)) {
        cJSON_Delete(item);
        return NULL;
    }
    return item;
}

cJSON *jsonl_add_text(cJSON *obj, const char *name, const char *text) {
    size_t len = strlen(text), o = 0;
    char *valid = malloc(3 * len + 1);
    if (!valid) return NULL;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)text + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n > 0) {
            memcpy(valid + o, text + i, (size_t)n);
            o += (size_t)n, i += (size_t)n;
        } else {
            memcpy(valid + o, "\xEF\xBF\xBD", 3);
            o += 3, i++;
        }
    }
    valid[o] = 0;
    cJSON *item = cJSON_AddStringToObject(obj, name, valid);
    free(valid);
    return item;
}
