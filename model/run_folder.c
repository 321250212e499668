#include "model/run_folder.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"

// Every file a stage writes into its run folder. A fresh run refuses to start
// over any of them without --force, and --force removes exactly these (never
// a file the user put there, nor the pipeline's log.txt).
static const char *const RUN_FILES[] = {
    "config.txt", "metrics.csv", "model.bin", "model.opt", "model.opt.next", "samples.txt",
    "prefs.jsonl", "prefs_val.jsonl", "eval.json", "heldout.json", "heldout.csv", NULL,
};

// And the checkpoints ppo --keep-every keeps: model_step<digits>.bin.
static int is_kept_checkpoint(const char *name) {
    const char *prefix = "model_step", *digits = name + strlen(prefix);
    if (strncmp(name, prefix, strlen(prefix)) || !isdigit((unsigned char)*digits)) return 0;
    while (isdigit((unsigned char)*digits)) digits++;
    return !strcmp(digits, ".bin");
}

static const char LOCK_NAME[] = ".lock";

int run_folder_is_run_file(const char *name) {
    for (const char *const *r = RUN_FILES; *r; r++)
        if (!strcmp(name, *r)) return 1;
    return is_kept_checkpoint(name);
}

static int same_file(const struct stat *a, const struct stat *b) {
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

// 1 if a folder above the resolved path (symlinks and ".." undone) is `folder`.
static int lies_inside(const char *path, const struct stat *folder) {
    char *real = realpath(path, NULL);
    if (!real) return 0;
    int inside = 0;
    for (char *slash = strrchr(real, '/'); slash && !inside; slash = strrchr(real, '/')) {
        struct stat st;
        if (slash == real) {
            inside = stat("/", &st) == 0 && same_file(&st, folder);
            break;
        }
        *slash = '\0';
        inside = stat(real, &st) == 0 && same_file(&st, folder);
    }
    free(real);
    return inside;
}

// Refuses an input that is the output folder, lies inside it, or is (through
// a hard link or a symlink in the folder) one of the folder's files.
static int check_input(const char *input, const char *dir, const struct stat *out, Error *err) {
    struct stat st;
    if (stat(input, &st) != 0) return 0; // a missing input is reported by its reader
    if (same_file(&st, out))
        return error_set(err, "%s: is the output folder %s; a run must not write into its own input", input, dir);
    if (lies_inside(input, out))
        return error_set(err, "%s: lies inside the output folder %s; a run must not write over its own input", input,
                         dir);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        struct stat es;
        if (fstatat(dirfd(d), e->d_name, &es, 0) == 0 && S_ISREG(es.st_mode) && same_file(&es, &st))
            rc = error_set(err, "%s: is the same file as %s/%s in the output folder; a run must not write over its "
                           "own input", input, dir, e->d_name);
    }
    closedir(d);
    return rc;
}

// Comma-separated names of the run files in dir (empty when there are none).
static void present_run_files(const char *dir, char *names, size_t n) {
    names[0] = '\0';
    for (const char *const *r = RUN_FILES; *r; r++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, *r);
        struct stat st;
        if (lstat(path, &st) != 0) continue;
        size_t used = strlen(names);
        snprintf(names + used, n - used, "%s%s", used ? ", " : "", *r);
    }
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t used = strlen(names);
        if (is_kept_checkpoint(e->d_name)) snprintf(names + used, n - used, "%s%s", used ? ", " : "", e->d_name);
    }
    if (d) closedir(d);
}

static int refuse_other_run(const RunFolderRequest *req, Error *err) {
    char names[512];
    present_run_files(req->dir, names, sizeof names);
    if (!names[0]) return 0;
    if (req->resumable)
        return error_set(err, "%s: holds another run's files (%s); continue it with --resume %s, or pass --force to "
                         "start a fresh run over them", req->dir, names, req->dir);
    return error_set(err, "%s: holds another run's files (%s); pass --force to replace them", req->dir, names);
}

int run_folder_remove_run_files(const char *dir, Error *err) {
    for (const char *const *r = RUN_FILES; *r; r++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, *r);
        if (unlink(path) != 0 && errno != ENOENT)
            return error_set(err, "%s: cannot remove the old run's file: %s", path, strerror(errno));
    }
    DIR *d = opendir(dir);
    int rc = 0;
    for (struct dirent *e; rc == 0 && d && (e = readdir(d));) {
        if (!is_kept_checkpoint(e->d_name)) continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0 && errno != ENOENT)
            rc = error_set(err, "%s: cannot remove the old run's file: %s", path, strerror(errno));
    }
    if (d) closedir(d);
    return rc;
}

// The writer's pid of a temporary file NAME.tmp.PID of a run file, or 0 when
// name is not one.
static pid_t temporary_writer(const char *name) {
    const char *tmp = strstr(name, ".tmp.");
    if (!tmp || !tmp[5]) return 0;
    for (const char *p = tmp + 5; *p; p++)
        if (!isdigit((unsigned char)*p)) return 0;
    char base[256];
    size_t len = (size_t)(tmp - name);
    if (len >= sizeof base) return 0;
    memcpy(base, name, len);
    base[len] = '\0';
    if (!run_folder_is_run_file(base)) return 0;
    long pid = strtol(tmp + 5, NULL, 10);
    return pid > 0 && pid <= INT_MAX ? (pid_t)pid : 0;
}

// Removes NAME.tmp.PID files whose writer no longer exists (kill(pid, 0)
// fails with ESRCH); a live writer's (EPERM included) are kept.
static int remove_dead_temporaries(const char *dir, Error *err) {
    DIR *d = opendir(dir);
    if (!d) return error_set(err, "%s: cannot list: %s", dir, strerror(errno));
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        pid_t pid = temporary_writer(e->d_name);
        if (pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH) continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT)
            rc = error_set(err, "%s/%s: cannot remove a dead writer's temporary file: %s", dir, e->d_name,
                           strerror(errno));
    }
    closedir(d);
    return rc;
}

static pid_t holder_of(int fd) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_GETLK, &fl) != 0 || fl.l_type == F_UNLCK) return 0;
    return fl.l_pid;
}

// Closing any descriptor of a file drops this process's fcntl locks on it, so
// this must not be called on a folder the caller holds.
pid_t run_folder_holder(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, LOCK_NAME);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return 0;
    pid_t pid = holder_of(fd);
    close(fd);
    return pid;
}

static int in_use(const char *dir, pid_t pid, Error *err) {
    return error_set(err, "%s: in use by another run (process %ld)", dir, (long)pid);
}

static int take_lock(RunFolder *f, const char *dir, Error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, LOCK_NAME);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return error_set(err, "%s: cannot open the run folder's lock file: %s", path, strerror(errno));
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        int e = errno;
        pid_t pid = holder_of(fd);
        close(fd);
        if (e == EACCES || e == EAGAIN) return in_use(dir, pid, err);
        return error_set(err, "%s: cannot lock: %s", path, strerror(e));
    }
    f->lock_fd = fd;
    return 0;
}

int run_folder_check(const RunFolderRequest *req, Error *err) {
    struct stat out;
    if (stat(req->dir, &out) != 0) return 0; // a new folder: nothing in it to protect
    if (!S_ISDIR(out.st_mode)) return error_set(err, "%s: exists and is not a folder", req->dir);
    for (int i = 0; i < req->n_inputs; i++)
        if (req->inputs[i] && check_input(req->inputs[i], req->dir, &out, err)) return -1;
    pid_t pid = run_folder_holder(req->dir);
    if (pid) return in_use(req->dir, pid, err);
    if (!req->resuming && !req->force) return refuse_other_run(req, err);
    return 0;
}

int run_folder_claim(RunFolder *f, const RunFolderRequest *req, Error *err) {
    f->lock_fd = -1;
    if (run_folder_check(req, err) || make_dirs(req->dir, err) || take_lock(f, req->dir, err)) return -1;
    // Checked again under the lock: another run may have started and written
    // its files between the first check and the lock.
    int rc = 0;
    if (!req->resuming && !req->force) rc = refuse_other_run(req, err);
    if (!req->resuming && req->force && !req->replace_at_end) rc = run_folder_remove_run_files(req->dir, err);
    if (rc == 0) rc = remove_dead_temporaries(req->dir, err);
    if (rc) run_folder_release(f);
    return rc;
}

void run_folder_release(RunFolder *f) {
    if (f->lock_fd >= 0) close(f->lock_fd);
    f->lock_fd = -1;
}

int log_truncate_after_step(const char *path, uint64_t step, Error *err) {
    if (!file_exists(path)) return 0;
    unsigned char *buf;
    size_t len;
    if (read_file(path, (size_t)1 << 30, &buf, &len, err)) return -1;
    const char *text = (const char *)buf, *marker = "== step ";
    size_t keep = len, mlen = strlen(marker);
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) + 1 : len;
        if (end - pos > mlen && !memcmp(text + pos, marker, mlen) && isdigit((unsigned char)text[pos + mlen]) &&
            strtoull(text + pos + mlen, NULL, 10) > step) {
            keep = pos;
            break;
        }
        pos = end;
    }
    int rc = keep < len ? write_file_atomic(path, text, keep, err) : 0;
    free(buf);
    return rc;
}
