// Tests of the shipped data files (data/*.jsonl), of the rules that made them
// (cleaning, split, length limit, prompt phrasings), and that prepare_data
// regenerates them byte for byte from Debian's fortunes package.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "common/fileio.h"
#include "common/jsonl.h"
#include "data/fortune_text.h"
#include "data/topics.h"

#define FORTUNES_DIR "/usr/share/games/fortunes"

static const char *const DATA_FILES[] = {"fortunes.jsonl", "sft.jsonl", "sft_val.jsonl",
                                         "prompts_train.jsonl", "prompts_eval.jsonl"};
#define N_DATA_FILES (sizeof DATA_FILES / sizeof DATA_FILES[0])

static void shipped_path(char *out, size_t n, const char *name) {
    const char *root = getenv("MINIRLHF_ROOT");
    assert_non_null(root);
    snprintf(out, n, "%s/data/%s", root, name);
}

// ---------------------------------------------------------------- the rules

static char *clean(const char *raw) {
    char *text = NULL;
    assert_int_equal(fortune_clean(raw, strlen(raw), &text, NULL), FORTUNE_OK);
    return text;
}

static void test_entries_split_on_percent_lines(void **state) {
    (void)state;
    const char file[] = "one\n%\ntwo\n%DCL not a separator\n%\n\n%\nlast";
    size_t pos = 0;
    long line = 1;
    RawEntry e;
    assert_int_equal(fortune_next_entry(file, strlen(file), &pos, &line, &e), 1);
    assert_int_equal(e.len, 4);
    assert_memory_equal(e.start, "one\n", 4);
    assert_int_equal(e.first_line, 1);
    assert_int_equal(fortune_next_entry(file, strlen(file), &pos, &line, &e), 1);
    assert_memory_equal(e.start, "two\n%DCL not a separator\n", e.len);
    assert_int_equal(e.first_line, 3);
    assert_int_equal(fortune_next_entry(file, strlen(file), &pos, &line, &e), 1);
    assert_int_equal(e.len, 1); // the empty entry between two "%" lines
    assert_int_equal(fortune_next_entry(file, strlen(file), &pos, &line, &e), 1);
    assert_memory_equal(e.start, "last", 4); // no "%" after the last entry
    assert_int_equal(e.first_line, 8);
    assert_int_equal(fortune_next_entry(file, strlen(file), &pos, &line, &e), 0);
}

static void test_clean_folds_whitespace_and_keeps_attribution(void **state) {
    (void)state;
    char *t = clean("  Absence diminishes mediocre passions,\n\tas the wind  blows.\n"
                    "\t\t-- La Rochefoucauld\n");
    assert_string_equal(t, "Absence diminishes mediocre passions, as the wind blows. -- La Rochefoucauld");
    free(t);
    char *empty = NULL;
    assert_int_equal(fortune_clean(" \n\t\a\n", 5, &empty, NULL), FORTUNE_EMPTY);
    assert_null(empty);
}

static void test_clean_resolves_overstrikes_and_drops_controls(void **state) {
    (void)state;
    char *t = clean("_\bI said *____\b\b\b\bonly* ones\a\a and B\bBold");
    assert_string_equal(t, "I said *only* ones and Bold");
    free(t);
    t = clean("caf\xc3\xa9 \xe2\x80\x94 ok"); // UTF-8 passes through unchanged
    assert_string_equal(t, "caf\xc3\xa9 \xe2\x80\x94 ok");
    assert_int_equal(utf8_length(t), 9);
    free(t);
}

static void test_clean_refuses_invalid_utf8(void **state) {
    (void)state;
    const char *bad[] = {"caf\xe9 au lait", "ab\xc0\xafx", "x\xed\xa0\x80", "tail\xe2\x82"};
    const size_t offsets[] = {3, 2, 1, 4};
    for (size_t i = 0; i < 4; i++) {
        char *text = NULL;
        size_t at = 99;
        assert_int_equal(fortune_clean(bad[i], strlen(bad[i]), &text, &at), FORTUNE_BAD_UTF8);
        assert_int_equal(at, offsets[i]);
        assert_null(text);
    }
}

static void test_split_and_length_rules(void **state) {
    (void)state;
    // The split is crc32(text) % 20 == 0, nothing else.
    const char *texts[] = {"a", "Yow!", "Beware of a tall black man with one blond shoe."};
    for (size_t i = 0; i < 3; i++) {
        uLong crc = crc32(0L, (const Bytef *)texts[i], (uInt)strlen(texts[i]));
        assert_int_equal(fortune_is_val(texts[i]), crc % 20 == 0);
    }
    char text[SFT_MAX_RESPONSE_CHARS + 2];
    memset(text, 'x', sizeof text - 1);
    text[SFT_MAX_RESPONSE_CHARS] = '\0';
    assert_true(fortune_fits_sft(text));
    text[SFT_MAX_RESPONSE_CHARS] = 'x';
    text[SFT_MAX_RESPONSE_CHARS + 1] = '\0';
    assert_false(fortune_fits_sft(text));
}

static void test_topics_and_templates(void **state) {
    (void)state;
    assert_true(fortune_topic_count() >= 40);
    assert_string_equal(fortune_topic_find("linuxcookie")->topic, "Linux");
    assert_null(fortune_topic_find("no-such-category"));
    assert_true(fortune_category_excluded("ascii-art"));
    assert_true(prompt_template_count(PROMPTS_TRAIN) >= 8);
    assert_true(prompt_template_count(PROMPTS_EVAL) >= 4);
    for (int set = PROMPTS_TRAIN; set <= PROMPTS_EVAL; set++)
        for (size_t i = 0; i < prompt_template_count((PromptSet)set); i++) {
            const char *tmpl = prompt_template((PromptSet)set, i);
            assert_non_null(strstr(tmpl, "{topic}"));
            // No phrasing is both a training and an evaluation one.
            for (size_t j = 0; set == PROMPTS_EVAL && j < prompt_template_count(PROMPTS_TRAIN); j++)
                assert_string_not_equal(tmpl, prompt_template(PROMPTS_TRAIN, j));
        }
    char *p = prompt_format("Tell me a fortune about {topic}.", "Star Trek");
    assert_string_equal(p, "Tell me a fortune about Star Trek.");
    free(p);
}

// ------------------------------------------------------ the shipped files

typedef struct {
    char *text, *category;
    int is_val;
} Record;

typedef struct {
    Record *records;
    size_t n;
} Corpus;

static int compare_records(const void *a, const void *b) {
    return strcmp(((const Record *)a)->text, ((const Record *)b)->text);
}

static const Record *corpus_find(const Corpus *c, const char *text) {
    Record key = {(char *)text, NULL, 0};
    return bsearch(&key, c->records, c->n, sizeof key, compare_records);
}

static void corpus_free(Corpus *c) {
    for (size_t i = 0; i < c->n; i++) {
        free(c->records[i].text);
        free(c->records[i].category);
    }
    free(c->records);
}

// Opens a shipped file; every line must parse (jsonl_next fails otherwise).
static void open_shipped(JsonlReader *r, const char *name) {
    char path[4096];
    Error err;
    shipped_path(path, sizeof path, name);
    if (jsonl_open(r, path, &err) != 0) fail_msg("%s", err.msg);
}

static cJSON *next_object(JsonlReader *r) {
    cJSON *obj = NULL;
    Error err;
    int rc = jsonl_next(r, &obj, &err);
    if (rc < 0) fail_msg("%s", err.msg);
    return rc == 1 ? obj : NULL;
}

static const char *field(const JsonlReader *r, const cJSON *obj, const char *name) {
    Error err;
    const char *s = jsonl_string(r, obj, name, &err);
    if (!s) fail_msg("%s", err.msg);
    return s;
}

// Loads data/fortunes.jsonl, checking every record on the way: fields, a
// known category with a topic, the split recomputed from the text, and text
// that is already clean (cleaning it again changes nothing).
static void load_corpus(Corpus *c) {
    JsonlReader r;
    open_shipped(&r, "fortunes.jsonl");
    size_t cap = 0;
    c->records = NULL;
    c->n = 0;
    cJSON *obj;
    while ((obj = next_object(&r)) != NULL) {
        const char *text = field(&r, obj, "text"), *category = field(&r, obj, "category");
        const char *split = field(&r, obj, "split");
        assert_non_null(fortune_topic_find(category));
        assert_false(fortune_category_excluded(category));
        assert_true(strcmp(split, "train") == 0 || strcmp(split, "val") == 0);
        assert_int_equal(strcmp(split, "val") == 0, fortune_is_val(text));
        char *again = clean(text);
        assert_string_equal(again, text);
        free(again);
        if (c->n == cap) {
            cap = cap ? 2 * cap : 16384;
            c->records = realloc(c->records, cap * sizeof *c->records);
            assert_non_null(c->records);
        }
        c->records[c->n++] = (Record){strdup(text), strdup(category), strcmp(split, "val") == 0};
        cJSON_Delete(obj);
    }
    jsonl_close(&r);
    qsort(c->records, c->n, sizeof *c->records, compare_records);
}

static void test_fortunes_file(void **state) {
    (void)state;
    Corpus c;
    load_corpus(&c);
    assert_true(c.n > 15000);
    size_t n_val = 0, n_categories = 0;
    for (size_t i = 0; i < c.n; i++) {
        n_val += (size_t)c.records[i].is_val;
        if (i > 0) assert_string_not_equal(c.records[i - 1].text, c.records[i].text); // no duplicates
    }
    // 5% of a few thousand hashes: well inside 3.5% .. 6.5%.
    assert_true(n_val > c.n * 35 / 1000 && n_val < c.n * 65 / 1000);
    for (size_t k = 0; k < fortune_topic_count(); k++) {
        int seen = 0;
        for (size_t i = 0; i < c.n && !seen; i++)
            seen = strcmp(c.records[i].category, fortune_topic_at(k)->category) == 0;
        n_categories += (size_t)seen;
    }
    assert_int_equal(n_categories, fortune_topic_count()); // every listed category has fortunes
    corpus_free(&c);
}

// 1 if prompt is one of the set's phrasings filled with the category's topic.
static int prompt_matches(PromptSet set, const char *prompt, const char *category) {
    const FortuneTopic *topic = fortune_topic_find(category);
    int found = 0;
    for (size_t i = 0; topic && !found && i < prompt_template_count(set); i++) {
        char *p = prompt_format(prompt_template(set, i), topic->topic);
        found = strcmp(p, prompt) == 0;
        free(p);
    }
    return found;
}

// Every pair's response is a fortune of the right split that obeys the length
// rule, asked for with a training phrasing of its own category; and every
// such fortune has a pair.
static void check_sft_file(const Corpus *c, const char *name, int want_val) {
    JsonlReader r;
    open_shipped(&r, name);
    size_t n_pairs = 0, n_eligible = 0;
    cJSON *obj;
    while ((obj = next_object(&r)) != NULL) {
        const char *prompt = field(&r, obj, "prompt"), *response = field(&r, obj, "response");
        const Record *f = corpus_find(c, response);
        if (!f) fail_msg("%s:%ld: response is not a fortune of fortunes.jsonl", name, r.line);
        assert_int_equal(f->is_val, want_val);
        assert_true(fortune_fits_sft(response));
        if (!prompt_matches(PROMPTS_TRAIN, prompt, f->category))
            fail_msg("%s:%ld: prompt '%s' is no training phrasing for '%s'", name, r.line, prompt,
                     f->category);
        n_pairs++;
        cJSON_Delete(obj);
    }
    jsonl_close(&r);
    for (size_t i = 0; i < c->n; i++)
        n_eligible += c->records[i].is_val == want_val && fortune_fits_sft(c->records[i].text);
    assert_int_equal(n_pairs, n_eligible);
}

static void test_sft_files(void **state) {
    (void)state;
    Corpus c;
    load_corpus(&c);
    check_sft_file(&c, "sft.jsonl", 0);
    check_sft_file(&c, "sft_val.jsonl", 1);
    corpus_free(&c);
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Checks every prompt of a prompt file against the set's phrasings and
// returns the prompts, sorted (the caller frees them).
static char **check_prompt_file(const char *name, PromptSet set, size_t *n) {
    JsonlReader r;
    open_shipped(&r, name);
    char **prompts = NULL;
    size_t cap = 0;
    *n = 0;
    cJSON *obj;
    while ((obj = next_object(&r)) != NULL) {
        const char *prompt = field(&r, obj, "prompt"), *category = field(&r, obj, "category");
        if (!prompt_matches(set, prompt, category))
            fail_msg("%s:%ld: prompt '%s' is not a phrasing of this set for '%s'", name, r.line,
                     prompt, category);
        if (*n == cap) {
            cap = cap ? 2 * cap : 512;
            prompts = realloc(prompts, cap * sizeof *prompts);
            assert_non_null(prompts);
        }
        prompts[(*n)++] = strdup(prompt);
        cJSON_Delete(obj);
    }
    jsonl_close(&r);
    qsort(prompts, *n, sizeof *prompts, compare_strings);
    for (size_t i = 1; i < *n; i++) assert_string_not_equal(prompts[i - 1], prompts[i]);
    return prompts;
}

static void free_strings(char **s, size_t n) {
    for (size_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

static void test_prompt_files(void **state) {
    (void)state;
    size_t n_train, n_eval;
    char **train = check_prompt_file("prompts_train.jsonl", PROMPTS_TRAIN, &n_train);
    char **eval = check_prompt_file("prompts_eval.jsonl", PROMPTS_EVAL, &n_eval);
    assert_true(n_train >= 200 && n_train <= 2000);
    assert_true(n_eval >= 200 && n_eval <= 2000);
    // Evaluation prompts are held out: none of them is a training prompt.
    for (size_t i = 0; i < n_eval; i++)
        assert_null(bsearch(&eval[i], train, n_train, sizeof *train, compare_strings));
    free_strings(train, n_train);
    free_strings(eval, n_eval);
}

// ---------------------------------------------------------- regeneration

static uLong file_crc(const char *path, size_t *len) {
    unsigned char *data;
    Error err;
    if (read_file(path, (size_t)1 << 30, &data, len, &err) != 0) fail_msg("%s", err.msg);
    uLong crc = crc32(0L, data, (uInt)*len);
    free(data);
    return crc;
}

static void test_prepare_data_regenerates_shipped_files(void **state) {
    (void)state;
    if (!file_exists(FORTUNES_DIR "/love")) {
        print_message("skipped: %s is absent (install the Debian package 'fortunes')\n",
                      FORTUNES_DIR);
        skip();
    }
    const char *bin = getenv("MINIRLHF_BIN");
    assert_non_null(bin);
    char out_dir[] = "/tmp/minirlhf_test_data_XXXXXX";
    assert_non_null(mkdtemp(out_dir));
    char command[8192];
    snprintf(command, sizeof command, "'%s/prepare_data' --fortunes-dir %s --out-dir '%s' >/dev/null",
             bin, FORTUNES_DIR, out_dir);
    assert_int_equal(system(command), 0);
    for (size_t i = 0; i < N_DATA_FILES; i++) {
        char made[4096], shipped[4096];
        size_t made_len, shipped_len;
        snprintf(made, sizeof made, "%s/%s", out_dir, DATA_FILES[i]);
        shipped_path(shipped, sizeof shipped, DATA_FILES[i]);
        uLong made_crc = file_crc(made, &made_len), shipped_crc = file_crc(shipped, &shipped_len);
        if (made_crc != shipped_crc || made_len != shipped_len)
            fail_msg("%s differs from the regenerated file (%zu bytes, crc32 %08lx vs %zu bytes, "
                     "crc32 %08lx): run scripts/prepare_data.sh", shipped, shipped_len,
                     shipped_crc, made_len, made_crc);
        unlink(made);
    }
    rmdir(out_dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries_split_on_percent_lines),
        cmocka_unit_test(test_clean_folds_whitespace_and_keeps_attribution),
        cmocka_unit_test(test_clean_resolves_overstrikes_and_drops_controls),
        cmocka_unit_test(test_clean_refuses_invalid_utf8),
        cmocka_unit_test(test_split_and_length_rules),
        cmocka_unit_test(test_topics_and_templates),
        cmocka_unit_test(test_fortunes_file),
        cmocka_unit_test(test_sft_files),
        cmocka_unit_test(test_prompt_files),
        cmocka_unit_test(test_prepare_data_regenerates_shipped_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
