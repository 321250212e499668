#include "tests/signal_run.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// Whether the first n bytes of fd (a regular file being written) hold marker.
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
    char out_path[] = "/tmp/minirlhf_sig_out_XXXXXX", err_path[] = "/tmp/minirlhf_sig_err_XXXXXX";
    int out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
    *sent = 0;
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
    int status = 0, rc = -1;
    if (pid > 0) {
        setpgid(pid, pid);
        size_t scratch_n = 1 << 20;
        char *scratch = malloc(scratch_n);
        struct timespec tick = {0, 2 * 1000 * 1000};
        long waited_us = 0;
        pid_t done;
        while ((done = waitpid(pid, &status, WNOHANG)) == 0 && waited_us < timeout_s * 1000000L) {
            if (!*sent && scratch && file_holds(out_fd, marker, scratch, scratch_n)) {
                kill(-pid, sig);
                *sent = 1;
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
    read_back(out_fd, out, n_out);
    read_back(err_fd, err, n_err);
    close(out_fd), close(err_fd);
    unlink(out_path), unlink(err_path);
    return rc;
}
