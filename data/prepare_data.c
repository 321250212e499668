// prepare_data: regenerates the shipped data files (data/fortunes.jsonl, the
// SFT pairs and the prompt sets) byte for byte from Debian's fortunes package.
// data/README.md documents every rule applied here.
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "common/data_dir.h"
#include "common/cli.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/jsonl.h"
#include "common/rng.h"
#include "data/fortune_text.h"
#include "data/topics.h"

static const char PROG[] = "prepare_data";

// A category with fewer SFT-sized training fortunes than this gets no
// prompts: a policy cannot learn what a topic is about from a handful.
#define MIN_PROMPT_FORTUNES 10

typedef struct {
    const char *fortunes_dir;
    const char *out_dir;
    int seed;
} Options;

typedef struct {
    char *text;
    size_t category; // index into Corpus.categories
    int is_val;
} Fortune;

typedef struct {
    char name[256];
    const char *topic;
    long raw, empty, bad_utf8, duplicate, kept, val, sft_train, sft_val;
} Category;

typedef struct {
    Fortune *fortunes;
    size_t n_fortunes, cap_fortunes;
    Category *categories;
    size_t n_categories;
    // Open-addressing set of fortune indices + 1 (0 = empty slot) for
    // dropping exact duplicates; never more than half full.
    size_t *slots;
    size_t n_slots;
} Corpus;

static void corpus_free(Corpus *c) {
    for (size_t i = 0; i < c->n_fortunes; i++) free(c->fortunes[i].text);
    free(c->fortunes);
    free(c->categories);
    free(c->slots);
}

static size_t slot_of(const Corpus *c, const char *text) {
    size_t h = crc32(0L, (const Bytef *)text, (uInt)strlen(text));
    size_t i = h & (c->n_slots - 1);
    while (c->slots[i] && strcmp(c->fortunes[c->slots[i] - 1].text, text) != 0)
        i = (i + 1) & (c->n_slots - 1);
    return i;
}

static int grow_slots(Corpus *c, Error *err) {
    size_t *old = c->slots, n_old = c->n_slots;
    c->n_slots = n_old ? 2 * n_old : 1024;
    c->slots = calloc(c->n_slots, sizeof *c->slots);
    if (!c->slots) {
        free(old);
        return error_set(err, "out of memory");
    }
    for (size_t i = 0; i < n_old; i++)
        if (old[i]) c->slots[slot_of(c, c->fortunes[old[i] - 1].text)] = old[i];
    free(old);
    return 0;
}

// Keeps text (the corpus then owns it) and returns 1, or returns 0 for an
// exact duplicate of an earlier fortune and -1 when out of memory; in both
// cases the caller still owns text.
static int corpus_add(Corpus *c, char *text, size_t category, Error *err) {
    if (2 * (c->n_fortunes + 1) > c->n_slots && grow_slots(c, err) != 0) return -1;
    size_t slot = slot_of(c, text);
    if (c->slots[slot]) return 0;
    if (c->n_fortunes == c->cap_fortunes) {
        size_t cap = c->cap_fortunes ? 2 * c->cap_fortunes : 4096;
        Fortune *grown = realloc(c->fortunes, cap * sizeof *grown);
        if (!grown) return error_set(err, "out of memory");
        c->fortunes = grown;
        c->cap_fortunes = cap;
    }
    c->fortunes[c->n_fortunes] = (Fortune){text, category, fortune_is_val(text)};
    c->slots[slot] = ++c->n_fortunes;
    return 1;
}

static int compare_categories(const void *a, const void *b) {
    return strcmp(((const Category *)a)->name, ((const Category *)b)->name);
}

static int has_suffix(const char *name, const char *suffix) {
    size_t n = strlen(name), k = strlen(suffix);
    return n > k && strcmp(name + n - k, suffix) == 0;
}

// A fortune file is a regular file (folders such as off/ hold other
// collections) that is not a *.dat index, not a *.u8 alias (symlinks to the
// same files in the Debian package) and not excluded in data/topics.c.
static int is_fortune_file(const char *dir, const char *name, Error *err) {
    if (name[0] == '.' || has_suffix(name, ".dat") || has_suffix(name, ".u8")) return 0;
    char path[4096];
    if (path_join(path, sizeof path, dir, name, err) != 0) return -1;
    struct stat st;
    if (lstat(path, &st) != 0) return error_set(err, "%s: %s", path, strerror(errno));
    return S_ISREG(st.st_mode) && !fortune_category_excluded(name);
}

// Names on stderr the fortune files of dir that data/topics.c does not list
// (from packages such as fortunes-bofh-excuses): they are left out, so that
// installing more fortune packages never changes the shipped data.
static int note_unlisted_files(const char *dir, Error *err) {
    DIR *d = opendir(dir);
    if (!d) return error_set(err, "%s: cannot open folder: %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        int is_file = is_fortune_file(dir, e->d_name, err);
        if (is_file < 0) rc = -1;
        else if (is_file && !fortune_topic_find(e->d_name))
            fprintf(stderr, "%s: note: %s/%s is not a category of data/topics.c; left out\n", PROG,
                    dir, e->d_name);
    }
    closedir(d);
    return rc;
}

// The categories are those of data/topics.c, sorted by name so the output
// does not depend on the table's order; every one's file must be in dir.
static int list_categories(Corpus *c, const char *dir, Error *err) {
    if (note_unlisted_files(dir, err) != 0) return -1;
    size_t n = fortune_topic_count();
    c->categories = calloc(n, sizeof *c->categories);
    if (!c->categories) return error_set(err, "out of memory");
    c->n_categories = n;
    for (size_t i = 0; i < n; i++) {
        const FortuneTopic *t = fortune_topic_at(i);
        Category *cat = &c->categories[i];
        snprintf(cat->name, sizeof cat->name, "%s", t->category);
        cat->topic = t->topic;
        char path[4096];
        if (path_join(path, sizeof path, dir, cat->name, err) != 0) return -1;
        if (!file_exists(path))
            return error_set(err, "%s: missing; install the Debian package 'fortunes'", path);
    }
    qsort(c->categories, c->n_categories, sizeof *c->categories, compare_categories);
    return 0;
}

static int load_category(Corpus *c, const char *dir, size_t ci, Error *err) {
    Category *cat = &c->categories[ci];
    char path[4096];
    unsigned char *data;
    size_t len, pos = 0;
    long line = 1;
    if (path_join(path, sizeof path, dir, cat->name, err) != 0) return -1;
    if (read_file(path, (size_t)64 << 20, &data, &len, err) != 0) return -1;
    RawEntry entry;
    int rc = 0;
    while (rc == 0 && fortune_next_entry((const char *)data, len, &pos, &line, &entry)) {
        char *text = NULL;
        size_t bad = 0;
        cat->raw++;
        switch (fortune_clean(entry.start, entry.len, &text, &bad)) {
        case FORTUNE_OK:
            rc = corpus_add(c, text, ci, err);
            if (rc == 1) {
                cat->kept++;
                cat->val += c->fortunes[c->n_fortunes - 1].is_val;
                rc = 0;
            } else {
                free(text);
                cat->duplicate += rc == 0;
            }
            break;
        case FORTUNE_EMPTY: cat->empty++; break;
        case FORTUNE_BAD_UTF8:
            fprintf(stderr, "%s: note: %s:%ld: invalid UTF-8 at byte %zu of the entry; dropped\n",
                    PROG, path, entry.first_line, bad);
            cat->bad_utf8++;
            break;
        case FORTUNE_NO_MEMORY: rc = error_set(err, "out of memory"); break;
        }
    }
    free(data);
    return rc;
}

// Writes one JSON object of string fields as a line of out.
static int write_record(AtomicFile *out, const char *const keys[], const char *const values[],
                        int n_fields, Error *err) {
    cJSON *obj = cJSON_CreateObject();
    int ok = obj != NULL;
    for (int i = 0; ok && i < n_fields; i++)
        ok = cJSON_AddStringToObject(obj, keys[i], values[i]) != NULL;
    ok = ok && jsonl_write(out->fp, obj) == 0;
    cJSON_Delete(obj);
    if (!ok) {
        out->failed = EIO;
        return error_set(err, "%s: cannot write a JSON line", out->path);
    }
    return 0;
}

static int open_output(AtomicFile *out, const char *dir, const char *name, Error *err) {
    char path[4096];
    if (path_join(path, sizeof path, dir, name, err) != 0) return -1;
    return atomic_open(out, path, err);
}

// Commits out if everything before succeeded (rc == 0), drops it otherwise.
static int finish_output(AtomicFile *out, int rc, Error *err) {
    if (rc == 0) return atomic_commit(out, err);
    atomic_abort(out);
    return rc;
}

static int write_fortunes(const Corpus *c, const char *dir, Error *err) {
    static const char *const KEYS[] = {"text", "category", "split"};
    AtomicFile out;
    if (open_output(&out, dir, "fortunes.jsonl", err) != 0) return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < c->n_fortunes; i++) {
        const Fortune *f = &c->fortunes[i];
        const char *values[] = {f->text, c->categories[f->category].name,
                                f->is_val ? "val" : "train"};
        rc = write_record(&out, KEYS, values, 3, err);
    }
    return finish_output(&out, rc, err);
}

// Each output file draws from its own stream, so that changing one file's
// contents never reshuffles another.
static void seed_stream(Rng *rng, int seed, uint64_t stream) {
    rng_seed(rng, (uint64_t)(unsigned)seed * 0x9e3779b97f4a7c15ULL + stream);
}

// One SFT pair for every fortune of the split that fits the length rule; its
// prompt is a training phrasing, picked at random, filled with the topic.
static int write_sft(Corpus *c, const char *dir, const char *name, int want_val, int seed,
                     Error *err) {
    static const char *const KEYS[] = {"prompt", "response"};
    AtomicFile out;
    if (open_output(&out, dir, name, err) != 0) return -1;
    Rng rng;
    seed_stream(&rng, seed, want_val ? 2 : 1);
    size_t n_templates = prompt_template_count(PROMPTS_TRAIN);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < c->n_fortunes; i++) {
        const Fortune *f = &c->fortunes[i];
        if (f->is_val != want_val || !fortune_fits_sft(f->text)) continue;
        Category *cat = &c->categories[f->category];
        const char *tmpl = prompt_template(PROMPTS_TRAIN, rng_below(&rng, n_templates));
        char *prompt = prompt_format(tmpl, cat->topic);
        if (!prompt) rc = error_set(err, "out of memory");
        const char *values[] = {prompt, f->text};
        if (rc == 0) rc = write_record(&out, KEYS, values, 2, err);
        free(prompt);
        if (want_val) cat->sft_val++;
        else cat->sft_train++;
    }
    return finish_output(&out, rc, err);
}

typedef struct {
    size_t template_index, category;
} PromptChoice;

// Every (phrasing, category) combination of the set once, for categories with
// enough SFT-sized training fortunes, in a seeded random order so that any
// prefix of the file mixes topics and phrasings.
static int write_prompts(const Corpus *c, const char *dir, const char *name, PromptSet set,
                         int seed, Error *err) {
    static const char *const KEYS[] = {"prompt", "category"};
    size_t n_templates = prompt_template_count(set), n = 0;
    AtomicFile out;
    if (open_output(&out, dir, name, err) != 0) return -1;
    PromptChoice *choices = malloc(n_templates * c->n_categories * sizeof *choices);
    if (!choices) return finish_output(&out, error_set(err, "out of memory"), err);
    for (size_t t = 0; t < n_templates; t++)
        for (size_t k = 0; k < c->n_categories; k++)
            if (c->categories[k].sft_train >= MIN_PROMPT_FORTUNES)
                choices[n++] = (PromptChoice){t, k};
    Rng rng;
    seed_stream(&rng, seed, set == PROMPTS_TRAIN ? 3 : 4);
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_below(&rng, i);
        PromptChoice tmp = choices[i - 1];
        choices[i - 1] = choices[j];
        choices[j] = tmp;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const Category *cat = &c->categories[choices[i].category];
        char *prompt = prompt_format(prompt_template(set, choices[i].template_index), cat->topic);
        if (!prompt) rc = error_set(err, "out of memory");
        const char *values[] = {prompt, cat->name};
        if (rc == 0) rc = write_record(&out, KEYS, values, 2, err);
        free(prompt);
    }
    free(choices);
    return finish_output(&out, rc, err);
}

// The per-category table of data/README.md, in Markdown.
static void print_counts(const Corpus *c, FILE *fp) {
    fprintf(fp, "| category | topic | entries | empty | bad UTF-8 | duplicates | kept | val | "
                "SFT train | SFT val |\n");
    fprintf(fp, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    Category total = {.name = "**total**", .topic = ""};
    for (size_t i = 0; i <= c->n_categories; i++) {
        const Category *k = i < c->n_categories ? &c->categories[i] : &total;
        fprintf(fp, "| %s | %s | %ld | %ld | %ld | %ld | %ld | %ld | %ld | %ld |\n", k->name,
                k->topic, k->raw, k->empty, k->bad_utf8, k->duplicate, k->kept, k->val,
                k->sft_train, k->sft_val);
        if (i == c->n_categories) break;
        total.raw += k->raw, total.empty += k->empty, total.bad_utf8 += k->bad_utf8;
        total.duplicate += k->duplicate, total.kept += k->kept, total.val += k->val;
        total.sft_train += k->sft_train, total.sft_val += k->sft_val;
    }
}

static int prepare(Corpus *c, const Options *o, Error *err) {
    if (list_categories(c, o->fortunes_dir, err) != 0) return -1;
    for (size_t i = 0; i < c->n_categories; i++)
        if (load_category(c, o->fortunes_dir, i, err) != 0) return -1;
    if (make_dirs(o->out_dir, err) != 0) return -1;
    if (write_fortunes(c, o->out_dir, err) != 0) return -1;
    // The SFT files come before the prompts: writing them counts each
    // category's SFT-sized fortunes, which decide the categories of prompts.
    if (write_sft(c, o->out_dir, "sft.jsonl", 0, o->seed, err) != 0) return -1;
    if (write_sft(c, o->out_dir, "sft_val.jsonl", 1, o->seed, err) != 0) return -1;
    if (write_prompts(c, o->out_dir, "prompts_train.jsonl", PROMPTS_TRAIN, o->seed, err) != 0)
        return -1;
    return write_prompts(c, o->out_dir, "prompts_eval.jsonl", PROMPTS_EVAL, o->seed, err);
}

int main(int argc, char **argv) {
    Options o = {"/usr/share/games/fortunes", data_dir_default(), 1};
    // Designated initialisers: fields added to CliOption later default to 0.
    const CliOption opts[] = {
        {.name = "fortunes-dir", .type = CLI_STRING, .dest = &o.fortunes_dir,
         .help = "folder of Debian's fortune files (package 'fortunes')"},
        {.name = "out-dir", .type = CLI_STRING, .dest = &o.out_dir,
         .help = "folder the data files are written to"},
        {.name = "seed", .type = CLI_INT, .dest = &o.seed, .lo = 0, .hi = 2147483647,
         .help = "seed for prompt phrasings and orders"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    Error err;
    int rc = cli_parse(PROG, opts, n_opts, argc, argv, NULL, &err);
    if (rc == CLI_HELP)
        cli_print_help(stdout, PROG,
                       "Regenerates fortunes.jsonl, sft.jsonl, sft_val.jsonl, prompts_train.jsonl "
                       "and prompts_eval.jsonl\nfrom the fortune files; prints counts per category "
                       "as a Markdown table.",
                       opts, n_opts);
    if (rc > 0) return 0;
    if (rc < 0) error_exit_rc(PROG, rc, &err);
    Corpus corpus = {0};
    rc = prepare(&corpus, &o, &err);
    if (rc == 0) print_counts(&corpus, stdout);
    corpus_free(&corpus);
    if (rc != 0) error_exit(PROG, &err);
    return 0;
}
