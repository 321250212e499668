// Following a checkpoint's parents back to pretraining, for `ckpt lineage`
// and `ckpt info`. Each header names its parent by fingerprint and by the
// path it had when the child's run started; the path is only a hint, the
// fingerprint decides whether the file found there really is the parent.
// When the recorded path is gone (the runs were moved), the parent is looked
// for beside the child: the recorded path's trailing components under the
// child's folder and its parents (LINEAGE_BESIDE_DEPTH of each), so that a
// parent recorded as /old/run/sft/model.bin is found as ../sft/model.bin
// from /new/run/ppo; a candidate counts only with the recorded fingerprint.
#ifndef INSPECT_LINEAGE_H
#define INSPECT_LINEAGE_H

#include "common/error.h"
#include "model/checkpoint.h"

typedef enum {
    LINEAGE_COMPLETE,   // reached a checkpoint trained from scratch (parent_fp 0)
    LINEAGE_MISSING,    // a parent file does not exist
    LINEAGE_UNREADABLE, // a parent file exists but is not a valid checkpoint
    LINEAGE_MISMATCH,   // the file at parent_path has another fingerprint
    LINEAGE_TOO_LONG,   // more links than LINEAGE_MAX_LINKS (a cycle of copies?)
    LINEAGE_UNRECORDED, // the parent's path did not fit in the header: known by fingerprint only
} LineageEnd;

#define LINEAGE_MAX_LINKS 64

#define LINEAGE_BESIDE_DEPTH 4

typedef struct {
    CkptHeader h;
    char *path;     // as given (the first), as recorded in the child's header, or where found beside the child
    char *recorded; // the path recorded in the child's header when the file was found beside it; else NULL
} LineageLink;

typedef struct {
    LineageLink *links; // links[0] is the checkpoint asked about, then its parent, ...
    int n;
    LineageEnd end;
    char problem[1400]; // why the chain stops early; empty when complete
} Lineage;

// Reads the headers along the chain (no payloads). Returns -1 only when the
// first file cannot be read; a broken chain further up is reported in
// out->end and out->problem. Relative parent paths are used as written,
// i.e. relative to the current folder, as the stages that wrote them saw them
// (stages record them absolute since issue 17).
int lineage_follow(const char *path, Lineage *out, Error *err);
void lineage_free(Lineage *l);

// "complete", "missing", "unreadable", "mismatch", "too-long", "unrecorded".
const char *lineage_end_name(LineageEnd end);

#endif
