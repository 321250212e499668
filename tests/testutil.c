#include "tests/testutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int run_cmd(char *out, size_t n, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *fp = popen(cmd, "r");
    if (!fp) return -1;
    size_t len = 0;
    int c;
    while ((c = fgetc(fp)) != EOF)
        if (len + 1 < n) out[len++] = (char)c;
    if (n) out[len] = '\0';
    int status = pclose(fp);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void bin_path(char *out, size_t n, const char *name) {
    const char *bin = getenv("MINIRLHF_BIN");
    snprintf(out, n, "%s/%s", bin ? bin : "bin", name);
}

void src_path(char *out, size_t n, const char *rel) {
    const char *root = getenv("MINIRLHF_ROOT");
    snprintf(out, n, "%s/%s", root ? root : ".", rel);
}

void make_temp_dir(char *out, size_t n) {
    snprintf(out, n, "/tmp/minirlhf_test_XXXXXX");
    if (!mkdtemp(out)) out[0] = '\0';
}

int read_csv_column(const char *path, const char *col, double *values, int max) {
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    char line[4096];
    int idx = -1, count = 0;
    if (fgets(line, sizeof line, fp)) {
        int i = 0;
        for (char *tok = strtok(line, ",\n"); tok; tok = strtok(NULL, ",\n"), i++)
            if (!strcmp(tok, col)) idx = i;
    }
    while (idx >= 0 && count < max && fgets(line, sizeof line, fp)) {
        char *p = line;
        for (int i = 0; i < idx && p; i++) {
            p = strchr(p, ',');
            if (p) p++;
        }
        if (p && *p != ',' && *p != '\n' && *p != '\0') values[count++] = strtod(p, NULL);
    }
    fclose(fp);
    return count;
}

// Whether the text written so far to fd (a regular file) holds marker.
static int file_holds(int fd, const char *marker, char *scratch, size_t n) {
    ssize_t got = pread(fd, scratch, n - 1, 0);
    scratch[got > 0 ? got : 0] = '\0';
    return strstr(scratch, marker) != NULL;
}

static void read_back(int fd, char *buf, size_t n) {
    if (!n) return;
    ssize_t got = pread(fd, buf, n - 1, 0);
    buf[got > 0 ? got : 0] = '\0';
}

int run_split_signal(const char *cmd, const char *marker, int sig, int timeout_s, char *out, size_t n_out,
                     char *err, size_t n_err, int *sent) {
    char out_path[] = "/tmp/minirlhf_out_XXXXXX", err_path[] = "/tmp/minirlhf_err_XXXXXX";
    int out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
    if (sent) *sent = 0;
    if (out_fd < 0 || err_fd < 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        int in_fd = open("/dev/null", O_RDONLY);
        dup2(in_fd, 0);
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status = 0, rc = -1, signalled = 0;
    if (pid > 0) {
        setpgid(pid, pid);
        size_t scratch_n = 1 << 20;
        char *scratch = marker ? malloc(scratch_n) : NULL;
        struct timespec tick = {0, 2 * 1000 * 1000};
        long waited_us = 0;
        pid_t done;
        while ((done = waitpid(pid, &status, WNOHANG)) == 0 && waited_us < timeout_s * 1000000L) {
            if (!signalled && scratch && file_holds(out_fd, marker, scratch, scratch_n)) {
                kill(-pid, sig);
                signalled = 1;
            }
            nanosleep(&tick, NULL);
            waited_us += 2000;
        }
        free(scratch);
        if (done == 0) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            rc = -2;
        } else {
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
    }
    if (sent) *sent = signalled;
    read_back(out_fd, out, n_out);
    read_back(err_fd, err, n_err);
    close(out_fd);
    close(err_fd);
    unlink(out_path);
    unlink(err_path);
    return rc;
}

int run_split(const char *cmd, int timeout_s, char *out, size_t n_out, char *err, size_t n_err) {
    return run_split_signal(cmd, NULL, 0, timeout_s, out, n_out, err, n_err, NULL);
}

int vrun_in_dir(const char *dir, int timeout_s, char *out, size_t n_out, char *err, size_t n_err, const char *fmt,
                va_list ap) {
    char body[8192], cmd[8704];
    vsnprintf(body, sizeof body, fmt, ap);
    snprintf(cmd, sizeof cmd, "cd %s && exec %s", dir, body);
    return run_split(cmd, timeout_s, out, n_out, err, n_err);
}

int run_in_dir(const char *dir, int timeout_s, char *out, size_t n_out, char *err, size_t n_err, const char *fmt,
               ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun_in_dir(dir, timeout_s, out, n_out, err, n_err, fmt, ap);
    va_end(ap);
    return rc;
}

char *dir_snapshot_at(const char *dir, const char *rel) {
    char path[4608];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    return dir_snapshot(path);
}

char *dir_snapshot(const char *dir) {
    char cmd[4608];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && find . -printf '%%y %%p %%s\\n' | LC_ALL=C sort && "
             "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum", dir);
    size_t cap = 1 << 20;
    char *buf = malloc(cap), err[256];
    if (buf && run_split(cmd, 60, buf, cap, err, sizeof err) != 0) snprintf(buf, cap, "snapshot of %s failed: %s", dir, err);
    return buf;
}

int is_one_line(const char *s) {
    size_t n = strlen(s);
    return n > 1 && s[n - 1] == '\n' && memchr(s, '\n', n - 1) == NULL;
}

int make_smoke_chain(const char *dir, const char *upto) {
    static const char *const names[] = {"tok", "pre", "sft", "prefs", "rm"};
    char bin[512], data[512];
    bin_path(bin, sizeof bin, "");
    src_path(data, sizeof data, "data");
    char cmds[5][2048];
    snprintf(cmds[0], sizeof cmds[0], "%sbpe train --input %s/fortunes.jsonl --jsonl-field text --vocab 300 --out tok.bin", bin, data);
    snprintf(cmds[1], sizeof cmds[1], "%spretrain --config smoke --steps 60 --tokenizer tok.bin --data %s/fortunes.jsonl --out pre", bin, data);
    snprintf(cmds[2], sizeof cmds[2], "%ssft --config smoke --eval-prompts 2 --init pre/model.bin --tokenizer tok.bin "
             "--data %s/sft.jsonl --val %s/sft_val.jsonl --out sft", bin, data, data);
    snprintf(cmds[3], sizeof cmds[3], "%sprefs --policy sft/model.bin --tokenizer tok.bin --prompts %s/prompts_train.jsonl "
             "--data-dir %s --pairs 64 --out prefs", bin, data, data);
    snprintf(cmds[4], sizeof cmds[4], "%strain_rm --config smoke --init sft/model.bin --tokenizer tok.bin "
             "--pairs prefs/prefs.jsonl --val prefs/prefs_val.jsonl --out rm", bin);
    for (int i = 0; i < 5; i++) {
        char out[16384];
        int rc = run_cmd(out, sizeof out, "cd '%s' && %s", dir, cmds[i]);
        if (rc) {
            printf("in %s: %s\n%s\n", dir, cmds[i], out);
            return rc;
        }
        if (!strcmp(names[i], upto)) return 0;
    }
    return 0;
}
