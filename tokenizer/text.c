#include "tokenizer/text.h"

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

// Length of the well-formed sequence at s (Unicode Table 3-7), or 0 with
// *bad_len set to the length of its maximal ill-formed prefix (at least 1).
static size_t utf8_sequence_len(const uint8_t *s, size_t n, size_t *bad_len) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) need = 2, lo = 0xA0;
    else if (c == 0xED) need = 2, hi = 0x9F; // no surrogates
    else if (c >= 0xE1 && c <= 0xEF) need = 2;
    else if (c == 0xF0) need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) need = 3, hi = 0x8F; // nothing above U+10FFFF
    else {
        *bad_len = 1;
        return 0;
    }
    for (size_t k = 1; k <= need; k++) {
        uint8_t b = k < n ? s[k] : 0;
        int ok = k < n && (k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF));
        if (!ok) {
            *bad_len = k;
            return 0;
        }
    }
    return need + 1;
}

size_t utf8_first_invalid(const uint8_t *s, size_t len) {
    size_t i = 0, bad;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_sequence_len(s + i, len - i, &bad);
        if (n == 0) return i;
        i += n;
    }
    return len;
}

uint8_t *utf8_replace_invalid(const uint8_t *s, size_t len, size_t *out_len) {
    uint8_t *out = malloc(len * 3 + 1); // each bad byte grows to at most 3
    if (!out) return NULL;
    size_t i = 0, o = 0, bad;
    while (i < len) {
        size_t n = utf8_sequence_len(s + i, len - i, &bad);
        if (n) {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += bad;
        }
    }
    out[o] = 0;
    *out_len = o;
    return out;
}

// Every character below U+0300 is its own NFC form and composes with nothing
// before it, and such characters never use a lead byte of 0xCC or more: text
// without those bytes is already NFC, which skips utf8proc for most English.
static int surely_nfc(const uint8_t *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (s[i] >= 0xCC) return 0;
    return 1;
}

int nfc_text_make(NfcText *out, const char *text, size_t len, int lossy, Error *err) {
    memset(out, 0, sizeof *out);
    const uint8_t *s = (const uint8_t *)text;
    uint8_t *repaired = NULL;
    size_t bad = utf8_first_invalid(s, len);
    if (bad < len) {
        if (!lossy) return error_set(err, "invalid UTF-8 at byte offset %zu", bad);
        repaired = utf8_replace_invalid(s, len, &len);
        if (!repaired) return error_set(err, "out of memory");
        s = repaired;
    }
    if (surely_nfc(s, len)) {
        out->data = len ? s : (const uint8_t *)"";
        out->len = len;
        out->owned = repaired;
        return 0;
    }
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t n = utf8proc_map(s, (utf8proc_ssize_t)len, &nfc,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    free(repaired);
    if (n < 0) {
        free(nfc);
        return error_set(err, "cannot normalise text to NFC: %s", utf8proc_errmsg(n));
    }
    out->data = nfc;
    out->len = (size_t)n;
    out->owned = nfc;
    return 0;
}

void nfc_text_free(NfcText *t) {
    free(t->owned);
    memset(t, 0, sizeof *t);
}

typedef enum { CLASS_LETTER, CLASS_NUMBER, CLASS_SPACE, CLASS_OTHER } CharClass;

// Combining marks count as letters so that a mark left after NFC (one with no
// precomposed form) stays in its word instead of splitting it.
static CharClass class_of_codepoint(utf8proc_int32_t cp) {
    if (cp == 0x85) return CLASS_SPACE;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
        return CLASS_LETTER;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return CLASS_NUMBER;
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
        return CLASS_SPACE;
    default:
        return CLASS_OTHER;
    }
}

static CharClass class_of_ascii(uint8_t c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CLASS_LETTER;
    if (c >= '0' && c <= '9') return CLASS_NUMBER;
    if (c == ' ' || (c >= '\t' && c <= '\r')) return CLASS_SPACE;
    return CLASS_OTHER;
}

// Class of the character at pos and its length in bytes.
static CharClass class_at(const uint8_t *s, size_t len, size_t pos, size_t *n) {
    if (s[pos] < 0x80) {
        *n = 1;
        return class_of_ascii(s[pos]);
    }
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t k = utf8proc_iterate(s + pos, (utf8proc_ssize_t)(len - pos), &cp);
    if (k <= 0) { // cannot happen on checked text; keep going byte by byte
        *n = 1;
        return CLASS_OTHER;
    }
    *n = (size_t)k;
    return class_of_codepoint(cp);
}

// GPT-2's contractions: 's 't 'm 'd 're 've 'll, lower case only.
static size_t contraction_len(const uint8_t *s, size_t len, size_t pos) {
    if (s[pos] != '\'' || pos + 1 >= len) return 0;
    uint8_t a = s[pos + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= len) return 0;
    uint8_t b = s[pos + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

// The rules of GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// written out as a scanner, with runs capped at PRETOKEN_MAX_BYTES.
size_t pretoken_end(const uint8_t *s, size_t len, size_t pos) {
    size_t limit = len - pos > PRETOKEN_MAX_BYTES ? pos + PRETOKEN_MAX_BYTES : len;
    size_t n = contraction_len(s, len, pos);
    if (n) return pos + n;
    CharClass cls = class_at(s, len, pos, &n);
    size_t run_start = pos;
    if (cls == CLASS_SPACE) {
        size_t end = pos + n, last = pos;
        while (end < len) {
            if (class_at(s, len, end, &n) != CLASS_SPACE) break;
            if (end + n > limit) return end;
            last = end;
            end += n;
        }
        if (end == len) return end;
        if (last > pos) return last; // the last space may prefix the next word
        if (s[pos] != ' ') return end;
        run_start = end; // a single ' ' joins the run after it
        cls = class_at(s, len, run_start, &n);
    }
    size_t end = run_start + n;
    while (end < len) {
        size_t k;
        if (class_at(s, len, end, &k) != cls || end + k > limit) break;
        end += k;
    }
    return end;
}
