#include "data/prefs_io.h"

#include <stdlib.h>
#include <string.h>

void prefs_pair_clear(PrefPair *p) {
    free(p->prompt), free(p->chosen), free(p->rejected);
    p->prompt = p->chosen = p->rejected = NULL;
}

void prefs_free(PrefPair *pairs, size_t n) {
    for (size_t i = 0; pairs && i < n; i++) prefs_pair_clear(&pairs[i]);
    free(pairs);
}

int prefs_pair_read(const JsonlReader *r, const cJSON *o, PrefPair *p, Error *err) {
    p->prompt = p->chosen = p->rejected = NULL;
    p->line = r->line;
    const char *prompt = jsonl_string(r, o, "prompt", err);
    const char *chosen = prompt ? jsonl_string(r, o, "chosen", err) : NULL;
    const char *rejected = chosen ? jsonl_string(r, o, "rejected", err) : NULL;
    if (!rejected) return -1;
    int absent_c = jsonl_number(r, o, "gold_chosen", 1, &p->gold_chosen, err);
    if (absent_c < 0) return -1;
    int absent_r = jsonl_number(r, o, "gold_rejected", 1, &p->gold_rejected, err);
    if (absent_r < 0) return -1;
    if (absent_c != absent_r)
        return error_set(err, "%s:%ld: \"%s\" without \"%s\" (give both gold scores or neither)",
                         r->path, r->line, absent_c ? "gold_rejected" : "gold_chosen",
                         absent_c ? "gold_chosen" : "gold_rejected");
    p->has_gold = !absent_c;
    p->prompt = strdup(prompt);
    p->chosen = strdup(chosen);
    p->rejected = strdup(rejected);
    if (!p->prompt || !p->chosen || !p->rejected) {
        prefs_pair_clear(p);
        return error_set(err, "out of memory reading %s", r->path);
    }
    return 0;
}

int prefs_load(const char *path, PrefPair **pairs, size_t *n, Error *err) {
    *pairs = NULL;
    *n = 0;
    JsonlReader r;
    if (jsonl_open(&r, path, err)) return -1;
    PrefPair *out = NULL;
    size_t count = 0, cap = 0;
    cJSON *o;
    int rc;
    while ((rc = jsonl_next(&r, &o, err)) == 1) {
        if (count == cap) {
            size_t grown_cap = cap ? 2 * cap : 256;
            PrefPair *grown = realloc(out, grown_cap * sizeof *grown);
            if (!grown) rc = error_set(err, "out of memory reading %s", path);
            else out = grown, cap = grown_cap;
        }
        PrefPair p = {0};
        if (rc == 1) rc = prefs_pair_read(&r, o, &p, err) ? -1 : 1;
        cJSON_Delete(o);
        if (rc < 0) break;
        out[count++] = p;
    }
    jsonl_close(&r);
    if (rc < 0) {
        prefs_free(out, count);
        return -1;
    }
    *pairs = out;
    *n = count;
    return 0;
}
