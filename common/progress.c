#include "common/progress.h"

#include <stdarg.h>
#include <time.h>
#include <unistd.h>

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_init(Progress *p, FILE *fp, const char *label, long first_step, long total,
                   long log_every) {
    p->fp = fp;
    p->label = label;
    p->total = total;
    p->log_every = log_every > 0 ? log_every : 1;
    p->tty = isatty(fileno(fp));
    p->t0 = now_seconds();
    p->last_draw = 0;
    p->first_step = first_step;
}

static void format_duration(char *buf, size_t n, double s) {
    if (s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

void progress_update(Progress *p, long step, const char *fmt, ...) {
    double now = now_seconds();
    int last = step >= p->total;
    if (p->tty) {
        if (!last && now - p->last_draw < 0.1) return;
    } else if (!last && step % p->log_every != 0) {
        return;
    }
    p->last_draw = now;
    double elapsed = now - p->t0;
    long done = step - p->first_step;
    double eta = done > 0 ? elapsed / (double)done * (double)(p->total - step) : 0;
    char e1[32], e2[32], extra[512];
    format_duration(e1, sizeof e1, elapsed);
    format_duration(e2, sizeof e2, eta);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(extra, sizeof extra, fmt, ap);
    va_end(ap);
    fprintf(p->fp, "%s%s %ld/%ld | %s | %s elapsed, ETA %s%s", p->tty ? "\r\033[K" : "", p->label,
            step, p->total, extra, e1, e2, p->tty ? "" : "\n");
    fflush(p->fp);
}

void progress_done(Progress *p) {
    if (p->tty) fputc('\n', p->fp);
    fflush(p->fp);
}
