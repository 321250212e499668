// The run-folder guard every executable that writes a run folder (--out DIR)
// goes through before it writes anything there:
//  - one process per folder: a write lock (fcntl) on DIR/.lock, which the
//    kernel releases when the process dies, however it dies;
//  - a fresh run (no --resume) never writes over another run's files unless
//    --force is given, and then those files are removed first, so nothing of
//    the old run (samples.txt, a model.bin from further along) survives into
//    the new one;
//  - no input of the run (checkpoint, tokenizer, data file or folder) is one
//    of the folder's files or lies inside it, compared by device and inode so
//    that symlinks, hard links and spellings such as X/../X do not fool it;
//  - leftover temporary files (NAME.tmp.PID from atomic_open) of the run
//    files whose writer is dead are removed; one whose writer lives is kept.
#ifndef MODEL_RUN_FOLDER_H
#define MODEL_RUN_FOLDER_H

#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

typedef struct {
    const char *dir;            // the run folder (--out)
    int resuming;               // --resume: continue the run already there
    int force;                  // --force: a fresh run replaces the files there
    int resumable;              // the stage has --resume (only for the message)
    const char *const *inputs;  // paths the run reads; NULL entries are skipped
    int n_inputs;
    // --force leaves the old run files in place at the claim: the stage
    // removes them (run_folder_remove_run_files) just before it writes its
    // own, so that a run stopped before then leaves the folder as it was (prefs).
    int replace_at_end;
} RunFolderRequest;

typedef struct {
    int lock_fd; // -1 when nothing is held
} RunFolder;

// 1 if name is one of the files a stage writes into its run folder
// (config.txt, metrics.csv, model.bin, samples.txt, prefs.jsonl, ...).
int run_folder_is_run_file(const char *name);

// Every refusal run_folder_claim can make, made without creating or changing
// anything: a stage calls it before loading its inputs, so that it is
// refused at once; run_folder_claim checks again under the lock.
int run_folder_check(const RunFolderRequest *req, Error *err);

// Checks the request, creates the folder, takes its lock, and (fresh run with
// --force) removes the old run files; then removes dead writers' temporary
// files. On refusal nothing on disk has changed and the message names the
// folder or the input file. The lock lasts until run_folder_release or the
// end of the process.
int run_folder_claim(RunFolder *f, const RunFolderRequest *req, Error *err);
void run_folder_release(RunFolder *f);

// Removes the run files (run_folder_is_run_file) in dir; a missing one is fine.
int run_folder_remove_run_files(const char *dir, Error *err);

// The process holding the lock on dir, or 0 when none does (or dir has no
// lock file).
pid_t run_folder_holder(const char *dir);

// Drops the blocks of a log written in blocks that start with a line
// "== step N..." whose N is greater than step (samples.txt of a resumed run,
// like csv_truncate_after for metrics.csv). A missing file is fine.
int log_truncate_after_step(const char *path, uint64_t step, Error *err);

#endif
