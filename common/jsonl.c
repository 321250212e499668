#include "common/jsonl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"

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

int jsonl_next(JsonlReader *r, cJSON **obj, Error *err) {
    *obj = NULL;
    while (r->pos < r->len) {
        const char *start = (const char *)r->data + r->pos;
        const char *nl = memchr(start, '\n', r->len - r->pos);
        size_t n = nl ? (size_t)(nl - start) : r->len - r->pos;
        r->pos += n + (nl ? 1 : 0);
        r->line++;
        size_t blank = 0;
        while (blank < n && (start[blank] == ' ' || start[blank] == '\t' || start[blank] == '\r'))
            blank++;
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

int jsonl_write(FILE *fp, const cJSON *obj) {
    char *s = cJSON_PrintUnformatted(obj);
    if (!s) return -1;
    int rc = (fputs(s, fp) < 0 || fputc('\n', fp) == EOF) ? -1 : 0;
    cJSON_free(s);
    return rc;
}
