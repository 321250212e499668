// Issue 18: `score --gold` and `score` on preference files.
//   - score --gold on prompt/response records prints the gold score and every
//     part exactly as annotator_gold computes them in this process, with
//     "ended": false and a "category" field honoured, and the record's own
//     fields kept;
//   - on preference pairs it recomputes gold_chosen/gold_rejected (a file
//     written here with annotator_gold's values comes back the same), and the
//     summary line on stderr counts the labels that follow the gold order
//     (3 of 4 constructed to -> 75.0% (3/4)) and the ties left out;
//   - score --rm on pairs (the smoke chain's reward model): each pair's
//     rewards are what score prints for the same texts as prompt/response
//     records, and the summary's counts are what the printed rewards give;
//   - bad input (not JSON, a missing field, a non-boolean "ended", an unknown
//     category, a record of the other kind, a data folder without the
//     annotator's tables) ends with one line on stderr naming the file (and
//     line) and exit status 1; usage errors exit 2.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonl.h"
#include "data/annotator.h"
#include "data/annotator_json.h"
#include "tests/testutil.h"

enum { OUT_N = 1 << 20, ERR_N = 1 << 14 };

typedef struct {
    char dir[256];  // inputs made here; for the reward-model tests also the smoke chain
    char bin[512];  // MINIRLHF_BIN with a trailing slash
    char data[512]; // the source tree's data/
    Annotator *a;   // loaded here from data/, to compute what score should print
    char out[OUT_N], err[ERR_N];
} Fixture;

static int setup_bare(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    *state = f;
    make_temp_dir(f->dir, sizeof f->dir);
    bin_path(f->bin, sizeof f->bin, "");
    src_path(f->data, sizeof f->data, "data");
    Error err;
    if (annotator_load(&f->a, f->data, &err)) {
        printf("%s\n", err.msg);
        return -1;
    }
    return f->dir[0] ? 0 : -1;
}

static int setup_chain(void **state) {
    if (setup_bare(state)) return -1;
    Fixture *f = *state;
    return make_smoke_chain(f->dir, "rm") == 0 ? 0 : -1;
}

static int teardown(void **state) {
    Fixture *f = *state;
    char out[256];
    if (f->dir[0]) run_cmd(out, sizeof out, "rm -rf '%s'", f->dir);
    annotator_free(f->a);
    free(f);
    return 0;
}

static void write_input(const Fixture *f, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

// Runs `score ARGS` in the fixture folder; stdout and stderr into f->out, f->err.
static int score(Fixture *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int score(Fixture *f, const char *fmt, ...) {
    char args[4096], cmd[4700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%sscore %s", f->bin, args);
    return run_in_dir(f->dir, 300, f->out, sizeof f->out, f->err, sizeof f->err, "%s", cmd);
}

// Runs score and requires exit status 0.
static void score_ok(Fixture *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void score_ok(Fixture *f, const char *fmt, ...) {
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int rc = score(f, "%s", args);
    if (rc != 0) fail_msg("score %s: exit %d\n%s", args, rc, f->err);
}

// The lines of text, each parsed; *n of them (the caller frees with free_lines).
static cJSON **parse_lines(const char *text, int *n) {
    int cap = 16;
    cJSON **lines = malloc(cap * sizeof *lines);
    *n = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl); // every line ends with a newline
        if (*n == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
        lines[*n] = cJSON_ParseWithLength(p, (size_t)(nl - p));
        if (!lines[*n]) fail_msg("not JSON: %.*s", (int)(nl - p), p);
        (*n)++;
        p = nl + 1;
    }
    return lines;
}

static void free_lines(cJSON **lines, int n) {
    for (int i = 0; i < n; i++) cJSON_Delete(lines[i]);
    free(lines);
}

static double number(const cJSON *o, const char *name) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(f)) fail_msg("field \"%s\" is not a number", name);
    return f->valuedouble;
}

static const char *string(const cJSON *o, const char *name) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(f)) fail_msg("field \"%s\" is not a string", name);
    return f->valuestring;
}

// The gold score's fields in o are exactly p's: each part by name against
// the AnnotatorParts member, then every field annotator_parts_to_json writes
// (so parts added later are checked too) against o, read back through JSON.
static void assert_parts(const Fixture *f, const cJSON *o, const AnnotatorParts *p) {
    assert_true(number(o, "gold") == p->gold);
    const cJSON *category = cJSON_GetObjectItemCaseSensitive(o, "category");
    if (p->category < 0) assert_true(cJSON_IsNull(category));
    else assert_string_equal(string(o, "category"), annotator_category_name(f->a, p->category));
    assert_true(number(o, "words") == (double)p->n_words);
    assert_true(number(o, "valence_mean") == p->valence_mean);
    assert_true(number(o, "valence") == p->valence);
    assert_true(number(o, "topic_raw") == p->topic_raw);
    assert_true(number(o, "topic") == p->topic);
    assert_true(number(o, "length") == p->length);
    assert_true(number(o, "repetition") == p->repetition);
    assert_true(number(o, "context_words") == p->context_words);
    assert_true(number(o, "fluency") == p->fluency);
    assert_true(number(o, "slor") == p->slor);
    assert_true(number(o, "unseen_words") == (double)p->unseen_words);
    const cJSON *ended = cJSON_GetObjectItemCaseSensitive(o, "ended");
    assert_true(cJSON_IsBool(ended));
    assert_int_equal(cJSON_IsTrue(ended), p->ended);
    cJSON *want = cJSON_CreateObject();
    annotator_parts_to_json(want, p, f->a);
    char *text = cJSON_PrintUnformatted(want);
    cJSON *back = cJSON_Parse(text);
    for (const cJSON *w = back->child; w; w = w->next) {
        const cJSON *got = cJSON_GetObjectItemCaseSensitive(o, w->string);
        if (!got) fail_msg("field \"%s\" missing", w->string);
        if (cJSON_IsNumber(w) ? !(cJSON_IsNumber(got) && got->valuedouble == w->valuedouble)
                              : !cJSON_Compare(w, got, 1))
            fail_msg("field \"%s\" differs", w->string);
    }
    cJSON_Delete(back), cJSON_Delete(want), free(text);
}

static int field_count(const cJSON *o) {
    int n = 0;
    for (const cJSON *c = o->child; c; c = c->next) n++;
    return n;
}

// Number of fields annotator_parts_to_json writes.
static int parts_field_count(const Fixture *f) {
    AnnotatorParts p;
    annotator_gold(f->a, "Tell me a fortune.", "A fortune.", 1, &p);
    cJSON *o = cJSON_CreateObject();
    annotator_parts_to_json(o, &p, f->a);
    int n = field_count(o);
    cJSON_Delete(o);
    return n;
}

// ------------------------------------------------------------ --gold, records

static const char *const LOVE = "Tell me a fortune about love.";
static const char *const UPBEAT = "Love is wonderful and kind to every happy heart.";
static const char *const GLOOMY = "New systems generate new problems.";
static const char *const MONEY = "Money can buy you a good job at work, and money is nice.";
static const char *const NEUTRAL = "The cat sat on the mat all day long and then it went away.";

static void test_gold_of_records(void **state) {
    Fixture *f = *state;
    write_input(f, "records.jsonl",
                "{\"id\":1,\"prompt\":\"Tell me a fortune about love.\",\"response\":\"Love is wonderful and kind "
                "to every happy heart.\"}\n"
                "{\"id\":2,\"prompt\":\"Tell me a fortune about love.\",\"response\":\"New systems generate new "
                "problems.\",\"ended\":false}\n"
                "\n"
                "{\"id\":3,\"prompt\":\"Tell me a fortune about love.\",\"response\":\"Money can buy you a good job "
                "at work, and money is nice.\",\"category\":\"work\"}\n"
                "{\"id\":4,\"prompt\":\"Hello there.\",\"response\":\"The cat sat on the mat all day long and then "
                "it went away.\",\"gold\":99,\"ended\":true}\n");
    struct {
        const char *prompt, *response;
        int category_field, ended; // category_field: -2 none, else the index given
    } want[4] = {
        {LOVE, UPBEAT, -2, 1},
        {LOVE, GLOOMY, -2, 0},
        {LOVE, MONEY, annotator_category_index(f->a, "work"), 1},
        {"Hello there.", NEUTRAL, -2, 1},
    };
    assert_true(want[2].category_field >= 0);
    // The cases test what they mean to: "ended": false costs the gold score,
    // the category field changes it, and "Hello there." names no topic.
    assert_true(annotator_gold(f->a, LOVE, GLOOMY, 0, NULL) < annotator_gold(f->a, LOVE, GLOOMY, 1, NULL));
    assert_true(annotator_gold(f->a, LOVE, MONEY, 1, NULL) !=
                annotator_gold_category(f->a, want[2].category_field, MONEY, 1, NULL));
    assert_int_equal(annotator_category_of_prompt(f->a, "Hello there."), -1);

    score_ok(f, "--gold --input records.jsonl");
    assert_string_equal(f->err, ""); // no summary for prompt/response records
    char *first = strdup(f->out);
    // JSONL with or without --jsonl; the same from standard input and with the data folder named.
    score_ok(f, "--gold --jsonl --data-dir '%s' < records.jsonl", f->data);
    assert_string_equal(f->out, first);
    free(first);
    int n;
    cJSON **lines = parse_lines(f->out, &n);
    assert_int_equal(n, 4);
    int n_parts = parts_field_count(f);
    for (int i = 0; i < n; i++) {
        const cJSON *o = lines[i];
        AnnotatorParts p;
        if (want[i].category_field >= -1)
            annotator_gold_category(f->a, want[i].category_field, want[i].response, want[i].ended, &p);
        else
            annotator_gold(f->a, want[i].prompt, want[i].response, want[i].ended, &p);
        assert_true(number(o, "id") == i + 1); // the record's own fields kept
        assert_string_equal(string(o, "prompt"), want[i].prompt);
        assert_string_equal(string(o, "response"), want[i].response);
        assert_parts(f, o, &p);
        // Fields of the record the parts share a name with ("category",
        // "ended", a "gold" of 99) are replaced, never written twice.
        assert_int_equal(field_count(o), 3 + n_parts);
    }
    assert_true(number(lines[3], "gold") != 99);
    assert_string_equal(string(lines[2], "category"), "work");
    assert_string_equal(string(lines[0], "category"), "love");
    free_lines(lines, n);
}

// ------------------------------------------------------------ --gold, pairs

typedef struct {
    const char *prompt, *chosen, *rejected, *category; // category: the record's field, or NULL
    int ended[2];                                      // -1: no field (true)
} PairSpec;

// The gold score of one response of a pair as score should compute it.
static double spec_gold(const Fixture *f, const PairSpec *s, int k, AnnotatorParts *p) {
    const char *text = k ? s->rejected : s->chosen;
    int ended = s->ended[k] != 0;
    if (s->category) return annotator_gold_category(f->a, annotator_category_index(f->a, s->category), text, ended, p);
    return annotator_gold(f->a, s->prompt, text, ended, p);
}

// Writes the pairs as prefs does, with gold scores computed here (with_gold),
// gold_chosen of the first pair replaced by 5 when `wrong`.
static void write_pairs(const Fixture *f, const char *name, const PairSpec *specs, int n, int with_gold, int wrong) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    static const char *const ended_names[2] = {"ended_chosen", "ended_rejected"};
    for (int i = 0; i < n; i++) {
        const PairSpec *s = &specs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "prompt", s->prompt);
        cJSON_AddStringToObject(o, "chosen", s->chosen);
        cJSON_AddStringToObject(o, "rejected", s->rejected);
        if (with_gold) {
            jsonl_add_number(o, "gold_chosen", wrong && i == 0 ? 5.0 : spec_gold(f, s, 0, NULL));
            jsonl_add_number(o, "gold_rejected", spec_gold(f, s, 1, NULL));
        }
        for (int k = 0; k < 2; k++)
            if (s->ended[k] >= 0) cJSON_AddBoolToObject(o, ended_names[k], s->ended[k]);
        if (s->category) cJSON_AddStringToObject(o, "category", s->category);
        assert_int_equal(jsonl_write(fp, o), 0);
        cJSON_Delete(o);
    }
    fclose(fp);
}

// The same words as NEUTRAL, so the same gold score: only words count.
static const char *const NEUTRAL2 = "THE CAT sat on the mat -- all day long, and then it went away!";

static void test_gold_of_pairs(void **state) {
    Fixture *f = *state;
    // Labels that follow the gold order on 3 of the 4 pairs whose gold
    // differs, and one pair of equal gold.
    const PairSpec specs[5] = {
        {LOVE, UPBEAT, GLOOMY, NULL, {-1, -1}},          // follows
        {LOVE, GLOOMY, UPBEAT, NULL, {1, 1}},            // against
        {LOVE, NEUTRAL, NEUTRAL2, NULL, {-1, 0}},        // follows only because the rejected one did not end
        {LOVE, MONEY, NEUTRAL, "work", {-1, -1}},        // follows, scored as work
        {LOVE, NEUTRAL, NEUTRAL2, NULL, {1, -1}},        // equal gold
    };
    double g[5][2];
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 2; k++) g[i][k] = spec_gold(f, &specs[i], k, NULL);
    assert_true(g[0][0] > g[0][1] && g[1][0] < g[1][1] && g[2][0] > g[2][1] && g[3][0] > g[3][1]);
    assert_true(g[4][0] == g[4][1]);
    assert_true(annotator_gold(f->a, LOVE, MONEY, 1, NULL) != g[3][0]); // the category field matters

    write_pairs(f, "pairs.jsonl", specs, 5, 1, 0);
    score_ok(f, "--gold --input pairs.jsonl");
    assert_string_equal(f->err, "score: 5 pairs; labels agree with the recomputed gold order on 75.0% (3/4), label "
                                "noise 25.0% (1/4); recomputed gold equals the file's on 5/5; ties left out: 1 "
                                "equal gold\n");
    int n;
    cJSON **lines = parse_lines(f->out, &n);
    assert_int_equal(n, 5);
    for (int i = 0; i < n; i++) {
        const cJSON *o = lines[i];
        assert_string_equal(string(o, "chosen"), specs[i].chosen);
        assert_true(number(o, "gold_chosen") == g[i][0]);
        assert_true(number(o, "gold_rejected") == g[i][1]);
        static const char *const parts_names[2] = {"parts_chosen", "parts_rejected"};
        for (int k = 0; k < 2; k++) {
            AnnotatorParts p;
            spec_gold(f, &specs[i], k, &p);
            const cJSON *parts = cJSON_GetObjectItemCaseSensitive(o, parts_names[k]);
            assert_true(cJSON_IsObject(parts));
            assert_parts(f, parts, &p);
        }
        assert_null(cJSON_GetObjectItemCaseSensitive(o, "reward_chosen")); // no --rm
    }
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(lines[2], "parts_rejected"), "ended")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(lines[2], "ended_rejected"))); // kept
    assert_string_equal(string(cJSON_GetObjectItemCaseSensitive(lines[3], "parts_chosen"), "category"), "work");
    free_lines(lines, n);

    // A gold score the annotator does not give is counted, and replaced.
    write_pairs(f, "wrong.jsonl", specs, 5, 1, 1);
    score_ok(f, "--gold --input wrong.jsonl");
    assert_non_null(strstr(f->err, "; recomputed gold equals the file's on 4/5;"));
    lines = parse_lines(f->out, &n);
    assert_true(number(lines[0], "gold_chosen") == g[0][0]);
    free_lines(lines, n);
    // Pairs without gold scores get them.
    write_pairs(f, "nogold.jsonl", specs, 5, 0, 0);
    score_ok(f, "--gold --input nogold.jsonl");
    assert_string_equal(f->err, "score: 5 pairs; labels agree with the recomputed gold order on 75.0% (3/4), label "
                                "noise 25.0% (1/4); ties left out: 1 equal gold\n");
    lines = parse_lines(f->out, &n);
    assert_int_equal(n, 5);
    assert_true(number(lines[3], "gold_chosen") == g[3][0] && number(lines[3], "gold_rejected") == g[3][1]);
    free_lines(lines, n);
}

// ------------------------------------------------------------ bad input

// Exit status 1 (2 for usage), nothing but one line on stderr holding expect.
static void assert_refused(Fixture *f, int status, const char *expect, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void assert_refused(Fixture *f, int status, const char *expect, const char *fmt, ...) {
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int rc = score(f, "%s", args);
    if (rc != status || !is_one_line(f->err) || !strstr(f->err, expect) || strncmp(f->err, "score: ", 7))
        fail_msg("score %s: exit %d (expected %d), stderr '%s' (expected one line with '%s')", args, rc, status,
                 f->err, expect);
}

static void test_bad_input(void **state) {
    Fixture *f = *state;
    const char *pair = "{\"prompt\":\"Tell me a fortune about love.\",\"chosen\":\"Yes.\",\"rejected\":\"No.\"}\n";
    const char *record = "{\"prompt\":\"Tell me a fortune about love.\",\"response\":\"Yes.\"}\n";
    char text[4096];
    snprintf(text, sizeof text, "%s{\"prompt\": \"a\", \"response\": }\n", record);
    write_input(f, "notjson.jsonl", text);
    assert_refused(f, 1, "notjson.jsonl:2: malformed JSON", "--gold --input notjson.jsonl");
    write_input(f, "missing.jsonl", "{\"prompt\":\"p\",\"chosen\":\"a\"}\n");
    assert_refused(f, 1, "missing.jsonl:1: missing field \"rejected\"", "--gold --input missing.jsonl");
    snprintf(text, sizeof text, "%s{\"prompt\":\"p\"}\n", record);
    write_input(f, "missing2.jsonl", text);
    assert_refused(f, 1, "missing2.jsonl:2: missing field \"response\"", "--gold --input missing2.jsonl");
    snprintf(text, sizeof text, "%s\n{\"prompt\":\"p\",\"response\":\"r\",\"ended\":\"yes\"}\n", record);
    write_input(f, "ended.jsonl", text);
    assert_refused(f, 1, "ended.jsonl:3: field \"ended\" must be true or false", "--gold --input ended.jsonl");
    write_input(f, "ended2.jsonl", "{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\",\"ended_rejected\":1}\n");
    assert_refused(f, 1, "ended2.jsonl:1: field \"ended_rejected\" must be true or false",
                   "--gold --input ended2.jsonl");
    write_input(f, "category.jsonl", "{\"prompt\":\"p\",\"response\":\"r\",\"category\":\"nope\"}\n");
    assert_refused(f, 1, "category.jsonl:1: unknown category \"nope\"", "--gold --input category.jsonl");
    write_input(f, "category2.jsonl", "{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\",\"category\":3}\n");
    assert_refused(f, 1, "category2.jsonl:1: field \"category\" must be a string", "--gold --input category2.jsonl");
    snprintf(text, sizeof text, "%s%s\n%s", pair, pair, record);
    write_input(f, "kinds.jsonl", text);
    assert_refused(f, 1, "kinds.jsonl:4: a prompt/response record in a file of preference pairs (the first record, "
                         "line 1, decides)", "--gold --input kinds.jsonl");
    snprintf(text, sizeof text, "\n%s%s", record, pair);
    write_input(f, "kinds2.jsonl", text);
    assert_refused(f, 1, "kinds2.jsonl:3: a preference pair in a file of prompt/response records (the first record, "
                         "line 2, decides)", "--gold --input kinds2.jsonl");
    write_input(f, "both.jsonl", "{\"prompt\":\"p\",\"response\":\"r\",\"rejected\":\"b\"}\n");
    assert_refused(f, 1, "both.jsonl:1: the record has \"response\" and \"chosen\"/\"rejected\"",
                   "--gold --input both.jsonl");
    write_input(f, "gold.jsonl", "{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\",\"gold_chosen\":1}\n");
    assert_refused(f, 1, "gold.jsonl:1: \"gold_chosen\" without \"gold_rejected\"", "--gold --input gold.jsonl");
    // A data folder without the annotator's tables, named with the file.
    char out[1024];
    assert_int_equal(run_cmd(out, sizeof out, "mkdir -p '%s/nodata'", f->dir), 0);
    assert_refused(f, 1, "nodata/afinn165.tsv", "--gold --data-dir nodata --input kinds.jsonl");
    // The tables, and a corpus for the fluency model with a bad second line.
    assert_int_equal(run_cmd(out, sizeof out, "cp '%s/afinn165.tsv' '%s/keywords.tsv' '%s/nodata/' && "
                             "printf '%%s\\n' '{\"text\":\"a b\",\"split\":\"train\"}' '{\"text\":\"c\"}' "
                             "> '%s/nodata/fortunes.jsonl'", f->data, f->data, f->dir, f->dir), 0);
    assert_refused(f, 1, "nodata/fortunes.jsonl:2", "--gold --data-dir nodata --input kinds.jsonl");
    assert_refused(f, 1, "absent.jsonl", "--gold --input absent.jsonl");
    // Usage errors: exit 2.
    assert_refused(f, 2, "--rm or --gold is required", "--input kinds.jsonl");
    assert_refused(f, 2, "--rm needs --tokenizer", "--rm rm.bin --input kinds.jsonl");
    assert_refused(f, 2, "--tokenizer is only used with --rm", "--gold --tokenizer tok.bin");
}

// ------------------------------------------------------------ --rm on pairs

// The figure after `key` in the summary line: "P% (a/b)" into a and b.
static void summary_count(const char *line, const char *key, long *a, long *b) {
    const char *at = strstr(line, key);
    if (!at) fail_msg("summary '%s' lacks '%s'", line, key);
    double pct;
    if (sscanf(at + strlen(key), "%lf%% (%ld/%ld)", &pct, a, b) != 3) fail_msg("summary '%s': no count after '%s'", line, key);
}

static void test_rm_on_pairs(void **state) {
    Fixture *f = *state;
    // The smoke chain's training pairs, as prefs wrote them.
    score_ok(f, "--rm rm/model.bin --tokenizer tok.bin --input prefs/prefs.jsonl");
    assert_true(is_one_line(f->err));
    char *summary = strdup(f->err);
    int n;
    cJSON **pairs = parse_lines(f->out, &n);
    assert_true(n >= 40);
    // The same texts as prompt/response records, chosen then rejected.
    char path[512];
    snprintf(path, sizeof path, "%s/responses.jsonl", f->dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "prompt", string(pairs[i], "prompt"));
            cJSON_AddStringToObject(o, "response", string(pairs[i], k ? "rejected" : "chosen"));
            jsonl_write(fp, o);
            cJSON_Delete(o);
        }
    fclose(fp);
    score_ok(f, "--rm rm/model.bin --tokenizer tok.bin --input responses.jsonl --jsonl");
    assert_string_equal(f->err, "");
    int n_records;
    cJSON **records = parse_lines(f->out, &n_records);
    assert_int_equal(n_records, 2 * n);
    // Each pair's rewards are the records' exactly; recount the summary from them.
    long rm_labels = 0, reward_ties = 0, rm_gold = 0, rm_gold_n = 0, labels_gold = 0, gold_ties = 0;
    for (int i = 0; i < n; i++) {
        double rc = number(pairs[i], "reward_chosen"), rr = number(pairs[i], "reward_rejected");
        assert_true(rc == number(records[2 * i], "reward"));
        assert_true(rr == number(records[2 * i + 1], "reward"));
        double gc = number(pairs[i], "gold_chosen"), gr = number(pairs[i], "gold_rejected");
        rm_labels += rc > rr;
        reward_ties += rc == rr;
        gold_ties += gc == gr;
        labels_gold += gc > gr;
        if (gc != gr && rc != rr) rm_gold_n++, rm_gold += (rc > rr) == (gc > gr);
    }
    long a, b;
    summary_count(summary, "reward model agrees with the labels on ", &a, &b);
    assert_int_equal(a, rm_labels);
    assert_int_equal(b, n - reward_ties);
    summary_count(summary, ", with the file's gold order on ", &a, &b);
    assert_int_equal(a, rm_gold);
    assert_int_equal(b, rm_gold_n);
    summary_count(summary, "; labels agree with the file's gold order on ", &a, &b);
    assert_int_equal(a, labels_gold);
    assert_int_equal(b, n - gold_ties);
    char want[256];
    snprintf(want, sizeof want, "score: %d pairs; ", n);
    assert_true(strncmp(summary, want, strlen(want)) == 0);
    snprintf(want, sizeof want, "; ties left out: %ld equal rewards, %ld equal gold\n", reward_ties, gold_ties);
    assert_non_null(strstr(summary, want));
    printf("    %s", summary);

    // The plain output of records is unchanged: one reward a line, rounded.
    score_ok(f, "--rm rm/model.bin --tokenizer tok.bin --input responses.jsonl");
    const char *line = f->out;
    for (int i = 0; i < 2 * n; i++) {
        double v;
        assert_int_equal(sscanf(line, "%lf", &v), 1);
        assert_true(v == strtod(line, NULL));
        char rounded[64];
        snprintf(rounded, sizeof rounded, "%.4f\n", number(records[i], "reward"));
        assert_true(strncmp(line, rounded, strlen(rounded)) == 0);
        line = strchr(line, '\n') + 1;
    }
    assert_string_equal(line, "");

    // --rm and --gold: the same rewards, and gold scores equal to prefs' own.
    score_ok(f, "--rm rm/model.bin --tokenizer tok.bin --gold --input prefs/prefs.jsonl");
    int n_both;
    cJSON **both = parse_lines(f->out, &n_both);
    assert_int_equal(n_both, n);
    for (int i = 0; i < n; i++) {
        assert_true(number(both[i], "reward_chosen") == number(pairs[i], "reward_chosen"));
        assert_true(number(both[i], "reward_rejected") == number(pairs[i], "reward_rejected"));
        if (number(both[i], "gold_chosen") != number(pairs[i], "gold_chosen"))
            fail_msg("pair %d: gold_chosen recomputed %.17g, prefs wrote %.17g", i, number(both[i], "gold_chosen"),
                     number(pairs[i], "gold_chosen"));
        assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(both[i], "parts_rejected")));
    }
    snprintf(want, sizeof want, "; recomputed gold equals the file's on %d/%d;", n, n);
    assert_non_null(strstr(f->err, want));
    summary_count(f->err, ", with the recomputed gold order on ", &a, &b);
    assert_int_equal(a, rm_gold);
    free_lines(both, n_both);

    // A record of the other kind is refused with --rm alone too.
    char out[1024];
    assert_int_equal(run_cmd(out, sizeof out, "cd '%s' && head -n 2 prefs/prefs.jsonl > mixed.jsonl && "
                             "head -n 1 responses.jsonl >> mixed.jsonl", f->dir), 0);
    assert_refused(f, 1, "mixed.jsonl:3: a prompt/response record in a file of preference pairs",
                   "--rm rm/model.bin --tokenizer tok.bin --input mixed.jsonl");
    free_lines(pairs, n);
    free_lines(records, n_records);
    free(summary);
}

int main(void) {
    const struct CMUnitTest gold[] = {
        cmocka_unit_test(test_gold_of_records),
        cmocka_unit_test(test_gold_of_pairs),
        cmocka_unit_test(test_bad_input),
    };
    const struct CMUnitTest rm[] = {
        cmocka_unit_test(test_rm_on_pairs),
    };
    int failed = cmocka_run_group_tests_name("score --gold", gold, setup_bare, teardown);
    failed += cmocka_run_group_tests_name("score --rm", rm, setup_chain, teardown);
    return failed;
}
