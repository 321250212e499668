// peak_rss FILE COMMAND [ARG...]: runs COMMAND, then writes its peak resident
// memory in KiB (ru_maxrss of the finished process, as getrusage reports it)
// to FILE, and exits with COMMAND's status (128 + N if signal N ended it).
//
// scripts/pipeline.sh runs every stage through it, so each stage's peak
// memory is measured the same way without any stage having to report it. If
// COMMAND is itself a wrapper that runs the stage in its own process (valgrind
// does), the figure is that process's: the stage plus the wrapper.
//
// While COMMAND runs, SIGINT and SIGQUIT are ignored here (a terminal sends
// them to COMMAND as well, which decides what to do) and SIGTERM and SIGHUP are
// passed on to it, so an interrupted stage still gets to write its checkpoint
// and its peak memory is still recorded.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/version.h"

static volatile sig_atomic_t child_pid = 0;

static void forward_signal(int sig) {
    if (child_pid > 0) kill((pid_t)child_pid, sig);
}

int main(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: peak_rss FILE COMMAND [ARG...]\n"
               "Runs COMMAND and writes its peak resident memory in KiB to FILE; exits with COMMAND's status.\n\n"
               "options:\n  --help     show this help and exit\n  --version  show the version and commit and exit\n");
        return stdout_finish("peak_rss", 0);
    }
    if (argc == 2 && !strcmp(argv[1], "--version")) {
        version_print(stdout, "peak_rss");
        return stdout_finish("peak_rss", 0);
    }
    if (argc < 3) {
        fprintf(stderr, "peak_rss: expected FILE COMMAND [ARG...] (see peak_rss --help)\n");
        return EXIT_USAGE;
    }
    // Dispositions to give back to COMMAND: ignoring a signal survives exec.
    struct sigaction ignore = {.sa_handler = SIG_IGN}, forward = {.sa_handler = forward_signal};
    struct sigaction old_int, old_quit, old_term, old_hup;
    sigemptyset(&ignore.sa_mask);
    sigemptyset(&forward.sa_mask);
    sigaction(SIGINT, &ignore, &old_int);
    sigaction(SIGQUIT, &ignore, &old_quit);
    sigaction(SIGTERM, &forward, &old_term);
    sigaction(SIGHUP, &forward, &old_hup);
    pid_t pid = fork();
    if (pid < 0) {
        perror("peak_rss: fork");
        return 1;
    }
    if (pid == 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGHUP, &old_hup, NULL);
        execvp(argv[2], argv + 2);
        fprintf(stderr, "peak_rss: cannot run %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    child_pid = pid;
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("peak_rss: wait4");
            return 1;
        }
    }
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", ru.ru_maxrss);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    Error err;
    if (write_file_atomic(argv[1], text, (size_t)n, &err)) {
        fprintf(stderr, "peak_rss: %s\n", err.msg);
        return rc ? rc : 1;
    }
    return rc;
}
