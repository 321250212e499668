// The one way numbers are written wherever they are read back (config.txt,
// JSONL, CSV): the shortest decimal that reads back to the same value bit for
// bit, so "0.1" stays "0.1" and 0.1234567f does not come back as 0.123457;
// a whole number below 2^53 is written as a plain integer ("10", "1234567").
#ifndef COMMON_NUMFMT_H
#define COMMON_NUMFMT_H

#include <stddef.h>

// Largest text either function writes, with its NUL ("-1.2345678901234567e-308").
#define NUMFMT_MAX 32

// Writes v into buf (at least NUMFMT_MAX bytes): strtof (fmt_float) or strtod
// (fmt_double) of the text gives v again; "nan", "inf" and "-inf" for the
// non-finite values. Returns buf.
char *fmt_float(char *buf, float v);
char *fmt_double(char *buf, double v);

#endif
