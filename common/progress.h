// Progress for long work: a redrawn line with step/total and ETA on a
// terminal, plain log lines (every `log_every` steps) when not on one.
#ifndef COMMON_PROGRESS_H
#define COMMON_PROGRESS_H

#include <stdio.h>

double now_seconds(void); // monotonic clock

typedef struct {
    FILE *fp;
    const char *label;
    long total, log_every;
    int tty;
    double t0, last_draw;
    long first_step; // step at which timing started (resume-aware ETA)
} Progress;

void progress_init(Progress *p, FILE *fp, const char *label, long first_step, long total,
                   long log_every);
// Reports step (1-based) with extra text such as "loss 3.21 | 1.2k tok/s".
void progress_update(Progress *p, long step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
// Ends the redrawn line so later output starts on a fresh line.
void progress_done(Progress *p);

#endif
