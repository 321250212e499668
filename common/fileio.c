#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int atomic_open(AtomicFile *af, const char *path, Error *err) {
    memset(af, 0, sizeof *af);
    if (strcmp(path, "-") == 0) // a file called "-" is almost surely a mistake: ./- names one
        return error_set(err, "-: standard output cannot take this file; name a file (./- for one called -)");
    if (strlen(path) >= sizeof af->path)
        return error_set(err, "%s: path too long", path);
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp_path, sizeof af->tmp_path, "%s.tmp.%ld", path, (long)getpid());
    af->fp = fopen(af->tmp_path, "wb");
    if (!af->fp)
        return error_set(err, "%s: cannot create temporary file %s: %s", path, af->tmp_path,
                         strerror(errno));
    return 0;
}

int atomic_write(AtomicFile *af, const void *buf, size_t n, Error *err) {
    if (af->failed) return -1;
    if (n && fwrite(buf, 1, n, af->fp) != n) {
        af->failed = errno ? errno : EIO;
        return error_set(err, "%s: write failed: %s", af->path, strerror(af->failed));
    }
    return 0;
}

static void fsync_parent_dir(const char *path) {
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int atomic_commit(AtomicFile *af, Error *err) {
    int rc = 0;
    if (af->failed) {
        rc = error_set(err, "%s: write failed: %s", af->path, strerror(af->failed));
    } else if (fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0) {
        rc = error_set(err, "%s: write failed: %s", af->path, strerror(errno));
    }
    if (fclose(af->fp) != 0 && rc == 0)
        rc = error_set(err, "%s: write failed: %s", af->path, strerror(errno));
    af->fp = NULL;
    if (rc == 0 && rename(af->tmp_path, af->path) != 0)
        rc = error_set(err, "%s: cannot rename temporary file into place: %s", af->path,
                       strerror(errno));
    if (rc != 0) {
        unlink(af->tmp_path);
        return rc;
    }
    fsync_parent_dir(af->path);
    return 0;
}

void atomic_abort(AtomicFile *af) {
    if (af->fp) fclose(af->fp);
    af->fp = NULL;
    unlink(af->tmp_path);
}

int write_file_atomic(const char *path, const void *buf, size_t n, Error *err) {
    AtomicFile af;
    if (atomic_open(&af, path, err) != 0) return -1;
    if (atomic_write(&af, buf, n, err) != 0) {
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af, err);
}

static const char *file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "is a directory, not a file";
    if (S_ISFIFO(mode)) return "not a regular file (a FIFO)";
    if (S_ISCHR(mode)) return "not a regular file (a character device)";
    if (S_ISBLK(mode)) return "not a regular file (a block device)";
    if (S_ISSOCK(mode)) return "not a regular file (a socket)";
    return "not a regular file";
}

int open_input_fd(const char *path, unsigned long long *size, Error *err) {
    // "-" is standard input only where a reader takes it on purpose (see fileio.h).
    if (strcmp(path, "-") == 0)
        return error_set(err, "-: standard input is not read here; name a file (./- for one called -)");
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        error_set(err, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        error_set(err, "%s: %s", path, file_kind(st.st_mode));
        close(fd);
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        error_set(err, "%s: cannot clear O_NONBLOCK: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (size) *size = (unsigned long long)st.st_size;
    return fd;
}

FILE *open_input(const char *path, unsigned long long *size, Error *err) {
    int fd = open_input_fd(path, size, err);
    if (fd < 0) return NULL;
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        error_set(err, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
    }
    return fp;
}

int read_file(const char *path, size_t max_bytes, unsigned char **buf, size_t *len, Error *err) {
    *buf = NULL;
    *len = 0;
    unsigned long long file_size = 0;
    FILE *fp = open_input(path, &file_size, err);
    if (!fp) return -1;
    if (file_size > max_bytes) {
        fclose(fp);
        return error_set(err, "%s: file too large (%llu bytes, limit %zu)", path, file_size,
                         max_bytes);
    }
    size_t n = (size_t)file_size;
    unsigned char *data = malloc(n + 1);
    if (!data) {
        fclose(fp);
        return error_set(err, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = fread(data, 1, n, fp);
    int read_error = ferror(fp);
    fclose(fp);
    if (got != n || read_error) {
        free(data);
        return error_set(err, "%s: read failed (got %zu of %zu bytes)", path, got, n);
    }
    data[n] = 0;
    *buf = data;
    *len = n;
    return 0;
}

int make_dirs(const char *path, Error *err) {
    char buf[4096];
    if (strlen(path) >= sizeof buf) return error_set(err, "%s: path too long", path);
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return error_set(err, "%s: cannot create folder: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return error_set(err, "%s: cannot create folder: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return error_set(err, "%s: exists and is not a folder", buf);
    return 0;
}

int path_join(char *out, size_t n, const char *dir, const char *name, Error *err) {
    int w = snprintf(out, n, "%s/%s", dir, name);
    if (w < 0 || (size_t)w >= n) return error_set(err, "%s/%s: path too long", dir, name);
    return 0;
}

int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

char *path_absolute(const char *path) {
    char *real = realpath(path, NULL);
    if (real || path[0] == '/') return real ? real : strdup(path);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) return strdup(path);
    size_t n = strlen(cwd) + strlen(path) + 2;
    char *joined = malloc(n);
    if (joined) snprintf(joined, n, "%s/%s", cwd, path);
    return joined;
}

// Length of the leading folders two absolute paths share, ending at a '/'
// of both (or at the end of dir), so that /a/run2 does not share /a/run.
static size_t shared_prefix(const char *path, const char *dir) {
    size_t shared = 0, i = 0;
    for (; path[i] && path[i] == dir[i]; i++)
        if (path[i] == '/') shared = i;
    if (dir[i] == '\0' && path[i] == '/') shared = i;
    return shared;
}

char *path_relocate(const char *recorded, const char *old_dir, const char *new_dir) {
    if (recorded[0] != '/' || old_dir[0] != '/') return NULL;
    size_t shared = shared_prefix(recorded, old_dir);
    int up = 0;
    for (const char *c = old_dir + shared; *c; c++)
        if (*c == '/' && c[1] != '\0' && c[1] != '/') up++;
    const char *tail = recorded + shared + 1;
    size_t n = strlen(new_dir) + 3 * (size_t)up + strlen(tail) + 2;
    char *out = malloc(n);
    if (!out) return NULL;
    size_t w = (size_t)snprintf(out, n, "%s", new_dir);
    for (int i = 0; i < up; i++) w += (size_t)snprintf(out + w, n - w, "/..");
    snprintf(out + w, n - w, "/%s", tail);
    return out;
}
