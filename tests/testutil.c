#include "tests/testutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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
