#include "inspect/lineage.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"

const char *lineage_end_name(LineageEnd end) {
    switch (end) {
    case LINEAGE_COMPLETE: return "complete";
    case LINEAGE_MISSING: return "missing";
    case LINEAGE_UNREADABLE: return "unreadable";
    case LINEAGE_MISMATCH: return "mismatch";
    case LINEAGE_TOO_LONG: return "too-long";
    case LINEAGE_UNRECORDED: return "unrecorded";
    }
    return "unknown";
}

// path and recorded (NULL: found where recorded) may point into l->links (a
// parent_path), so they are copied before the array moves.
static int add_link(Lineage *l, const char *path, const char *recorded, const CkptHeader *h, Error *err) {
    char *copy = strdup(path), *recorded_copy = recorded ? strdup(recorded) : NULL;
    LineageLink *grown = copy && (recorded_copy || !recorded) ? realloc(l->links, (size_t)(l->n + 1) * sizeof *grown)
                                                              : NULL;
    if (!grown) {
        free(copy);
        free(recorded_copy);
        return error_set(err, "out of memory");
    }
    l->links = grown;
    l->links[l->n++] = (LineageLink){*h, copy, recorded_copy};
    return 0;
}

// The last k '/'-separated components of path, or NULL when it has fewer.
static const char *trailing_components(const char *path, int k) {
    const char *at = path + strlen(path);
    while (at > path) {
        at--;
        if (*at == '/' && --k == 0) return at + 1;
    }
    return k == 1 && *path != '/' ? path : NULL;
}

// Looks for the parent recorded at h->parent_path (gone) beside the child at
// child_path; on success, found (size n) holds its absolute path and *parent
// its header. Returns 1 when found, 0 otherwise.
static int find_beside(const char *child_path, const CkptHeader *h, char *found, size_t n, CkptHeader *parent) {
    char folder[4096];
    snprintf(folder, sizeof folder, "%s", child_path);
    char *slash = strrchr(folder, '/');
    if (slash) *slash = '\0';
    else snprintf(folder, sizeof folder, ".");
    for (int up = 0; up < LINEAGE_BESIDE_DEPTH; up++) {
        for (int k = 1; k <= LINEAGE_BESIDE_DEPTH; k++) {
            const char *tail = trailing_components(h->parent_path, k);
            char candidate[8192];
            Error e;
            if (!tail) break;
            snprintf(candidate, sizeof candidate, "%s/%s", folder, tail);
            if (!file_exists(candidate) || ckpt_read_header(candidate, parent, &e) ||
                parent->fingerprint != h->parent_fp)
                continue;
            char *absolute = path_absolute(candidate);
            snprintf(found, n, "%s", absolute ? absolute : candidate);
            free(absolute);
            return 1;
        }
        if (strlen(folder) + 4 >= sizeof folder) break;
        strcat(folder, "/..");
    }
    return 0;
}

// Reads the parent of `child` into *parent, or records why it cannot.
// Returns 1 when a parent was read, 0 when the chain stops here; *beside is
// filled (size n) when the parent was found beside the child, else emptied.
static int read_parent(Lineage *l, const LineageLink *child, CkptHeader *parent, char *beside, size_t n) {
    const CkptHeader *h = &child->h;
    Error e;
    if (h->parent_fp == 0) {
        l->end = LINEAGE_COMPLETE;
        return 0;
    }
    if (h->parent_path[0] == '\0') {
        l->end = LINEAGE_UNRECORDED;
        snprintf(l->problem, sizeof l->problem,
                 "parent of %s has fingerprint %08" PRIx32 "; its path was not recorded (longer than the %zu bytes "
                 "a checkpoint header holds), so the chain is not followed further", child->path, h->parent_fp,
                 sizeof h->parent_path - 1);
        return 0;
    }
    beside[0] = '\0';
    if (!file_exists(h->parent_path) && find_beside(child->path, h, beside, n, parent)) return 1;
    if (!file_exists(h->parent_path)) {
        l->end = LINEAGE_MISSING;
        snprintf(l->problem, sizeof l->problem,
                 "parent of %s is missing: no file at %s, nor beside it (it had fingerprint %08" PRIx32 ")",
                 child->path, h->parent_path[0] ? h->parent_path : "(no path recorded)", h->parent_fp);
        return 0;
    }
    if (ckpt_read_header(h->parent_path, parent, &e)) {
        l->end = LINEAGE_UNREADABLE;
        snprintf(l->problem, sizeof l->problem, "parent of %s cannot be read: %s", child->path, e.msg);
        return 0;
    }
    if (parent->fingerprint != h->parent_fp) {
        l->end = LINEAGE_MISMATCH;
        snprintf(l->problem, sizeof l->problem,
                 "parent of %s is not at %s any more: that file has fingerprint %08" PRIx32
                 ", the parent had %08" PRIx32 " (overwritten or replaced since)",
                 child->path, h->parent_path, parent->fingerprint, h->parent_fp);
        return 0;
    }
    return 1;
}

int lineage_follow(const char *path, Lineage *out, Error *err) {
    memset(out, 0, sizeof *out);
    CkptHeader h;
    if (ckpt_read_header(path, &h, err) || add_link(out, path, NULL, &h, err)) {
        lineage_free(out);
        return -1;
    }
    for (;;) {
        const LineageLink *child = &out->links[out->n - 1];
        char beside[8192];
        if (!read_parent(out, child, &h, beside, sizeof beside)) return 0;
        if (out->n == LINEAGE_MAX_LINKS) {
            out->end = LINEAGE_TOO_LONG;
            snprintf(out->problem, sizeof out->problem, "stopped after %d checkpoints", out->n);
            return 0;
        }
        const char *recorded = child->h.parent_path;
        if (add_link(out, beside[0] ? beside : recorded, beside[0] ? recorded : NULL, &h, err)) {
            lineage_free(out);
            return -1;
        }
    }
}

void lineage_free(Lineage *l) {
    for (int i = 0; i < l->n; i++) free(l->links[i].path), free(l->links[i].recorded);
    free(l->links);
    l->links = NULL;
    l->n = 0;
}
