// Reading Debian fortune files: splitting a file into raw entries, cleaning an
// entry into one line of text, and the rules every stage shares about a
// fortune (train/validation split, which fortunes fit an SFT pair).
#ifndef DATA_FORTUNE_TEXT_H
#define DATA_FORTUNE_TEXT_H

#include <stddef.h>
#include <stdint.h>

// A fortune goes to validation when crc32(text) % FORTUNE_VAL_MODULUS == 0
// (5%). Hashing the text, not its position, keeps a fortune on the same side
// when files are reordered or other fortunes are added or removed.
#define FORTUNE_VAL_MODULUS 20

// Longest SFT response, in characters (Unicode code points). The model's
// context is 128 tokens; a byte-level BPE with a 4096 vocabulary averages
// about 3.5-4 characters a token on English, so 280 characters are 70-80
// tokens, leaving room for the prompt (at most ~15 tokens) and the three
// special tokens of the chat template well inside 128.
#define SFT_MAX_RESPONSE_CHARS 280

// One raw entry of a fortune file: the bytes between two "%" lines.
typedef struct {
    const char *start;
    size_t len;
    long first_line; // 1-based line number of the entry's first line
} RawEntry;

// Walks a fortune file: entries are separated by lines that hold only "%".
// Start with *pos = 0 and *line = 1; returns 1 with the next entry (possibly
// empty), 0 at the end.
int fortune_next_entry(const char *data, size_t len, size_t *pos, long *line, RawEntry *entry);

typedef enum {
    FORTUNE_OK,       // *text holds the cleaned fortune
    FORTUNE_EMPTY,    // nothing but whitespace and control characters
    FORTUNE_BAD_UTF8, // not valid UTF-8; *bad_offset is the byte offset in the entry
    FORTUNE_NO_MEMORY
} FortuneStatus;

// Cleans a raw entry into one line: overstrikes ("_\bX" underlining, "X\bX"
// bold, "___\b\b\bword") are resolved the way a terminal would show them,
// other control characters (bells) are dropped, and every run of whitespace,
// newlines and tabs included, becomes one space, trimmed at both ends. An
// attribution ("\n\t\t-- Author") so ends up as " -- Author" on the same line.
// The text is in Unicode NFC, so that texts differing only in normalisation
// are one fortune. *text is malloc'ed when the status is FORTUNE_OK.
FortuneStatus fortune_clean(const char *raw, size_t len, char **text, size_t *bad_offset);

// Decodes one code point of valid UTF-8 (no overlongs, surrogates or values
// above U+10FFFF) at s[*pos], advancing *pos; -1 if the bytes there are invalid.
int utf8_decode(const unsigned char *s, size_t len, size_t *pos, uint32_t *cp);
// Number of code points in a valid UTF-8 string.
size_t utf8_length(const char *s);

// 1 if the fortune belongs to the validation split (see FORTUNE_VAL_MODULUS).
int fortune_is_val(const char *text);
// 1 if the fortune is short enough to be an SFT response (SFT_MAX_RESPONSE_CHARS).
int fortune_fits_sft(const char *text);

#endif
