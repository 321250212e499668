#include "data/fortune_text.h"

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>
#include <zlib.h>

int fortune_next_entry(const char *data, size_t len, size_t *pos, long *line, RawEntry *entry) {
    if (*pos >= len) return 0;
    size_t p = *pos;
    entry->start = data + p;
    entry->first_line = *line;
    while (p < len) {
        const char *nl = memchr(data + p, '\n', len - p);
        size_t line_end = nl ? (size_t)(nl - data) : len;
        size_t next = nl ? line_end + 1 : len;
        if (nl) (*line)++;
        if (line_end - p == 1 && data[p] == '%') {
            entry->len = p - *pos;
            *pos = next;
            return 1;
        }
        p = next;
    }
    // The last entry of a file need not be followed by a "%" line.
    entry->len = len - *pos;
    *pos = len;
    return 1;
}

int utf8_decode(const unsigned char *s, size_t len, size_t *pos, uint32_t *cp) {
    size_t p = *pos;
    unsigned char b = s[p];
    int extra;
    uint32_t v, min;
    if (b < 0x80) {
        *cp = b;
        *pos = p + 1;
        return 0;
    } else if ((b & 0xe0) == 0xc0) {
        extra = 1, v = b & 0x1f, min = 0x80;
    } else if ((b & 0xf0) == 0xe0) {
        extra = 2, v = b & 0x0f, min = 0x800;
    } else if ((b & 0xf8) == 0xf0) {
        extra = 3, v = b & 0x07, min = 0x10000;
    } else {
        return -1;
    }
    if (len - p <= (size_t)extra) return -1;
    for (int i = 1; i <= extra; i++) {
        if ((s[p + i] & 0xc0) != 0x80) return -1;
        v = (v << 6) | (s[p + i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return -1;
    *cp = v;
    *pos = p + 1 + (size_t)extra;
    return 0;
}

static size_t utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t utf8_length(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) n++;
    return n;
}

// Puts a code point on the current line the way a terminal prints it: a
// backspace steps back one column and the next character overstrikes.
static void place_code_point(uint32_t *cols, size_t *n_cols, size_t *col, uint32_t cp) {
    if (cp == '\b') {
        if (*col > 0) (*col)--;
        return;
    }
    if (cp == '\t' || cp == '\r' || cp == '\v' || cp == '\f' || cp == 0xa0) {
        cp = ' ';
    } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
        return; // bells and other control characters print nothing
    }
    if (*col < *n_cols) {
        uint32_t old = cols[*col];
        // "_\bX" and "X\b_" both underline X: the character wins over the line.
        if (!((cp == '_' || cp == ' ') && old != ' ')) cols[*col] = cp;
    } else {
        cols[(*n_cols)++] = cp;
    }
    (*col)++;
}

// Appends a finished line to out, folding every whitespace run into one space
// and never starting the text with one; a space is only written when a
// non-space character follows, so the text never ends with one either.
static void flush_line(const uint32_t *cols, size_t n_cols, char *out, size_t *n_out,
                       int *pending_space) {
    for (size_t i = 0; i < n_cols; i++) {
        if (cols[i] == ' ') {
            *pending_space = 1;
            continue;
        }
        if (*pending_space && *n_out > 0) out[(*n_out)++] = ' ';
        *pending_space = 0;
        *n_out += utf8_encode(cols[i], out + *n_out);
    }
    *pending_space = 1; // the line break itself
}

FortuneStatus fortune_clean(const char *raw, size_t len, char **text, size_t *bad_offset) {
    const unsigned char *s = (const unsigned char *)raw;
    // Every output character is an input character or replaces input
    // whitespace, so the output is never longer than the input.
    uint32_t *cols = malloc((len + 1) * sizeof *cols);
    char *out = malloc(len + 1);
    if (!cols || !out) {
        free(cols);
        free(out);
        return FORTUNE_NO_MEMORY;
    }
    size_t pos = 0, n_cols = 0, col = 0, n_out = 0;
    int pending_space = 0;
    while (pos <= len) {
        if (pos == len || s[pos] == '\n') {
            flush_line(cols, n_cols, out, &n_out, &pending_space);
            n_cols = col = 0;
            pos++;
            continue;
        }
        size_t at = pos;
        uint32_t cp;
        if (utf8_decode(s, len, &pos, &cp) != 0) {
            if (bad_offset) *bad_offset = at;
            free(cols);
            free(out);
            return FORTUNE_BAD_UTF8;
        }
        place_code_point(cols, &n_cols, &col, cp);
    }
    free(cols);
    out[n_out] = '\0';
    if (n_out == 0) {
        free(out);
        return FORTUNE_EMPTY;
    }
    // NFC, the form the tokenizer reads: a fortune and its NFD twin are then
    // one text, dropped as a duplicate and never split across train and val.
    char *nfc = (char *)utf8proc_NFC((const utf8proc_uint8_t *)out);
    free(out);
    if (!nfc) return FORTUNE_NO_MEMORY;
    *text = nfc;
    return FORTUNE_OK;
}

int fortune_is_val(const char *text) {
    uLong crc = crc32(0L, (const Bytef *)text, (uInt)strlen(text));
    return crc % FORTUNE_VAL_MODULUS == 0;
}

int fortune_fits_sft(const char *text) {
    return utf8_length(text) <= SFT_MAX_RESPONSE_CHARS;
}
