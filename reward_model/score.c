// score: the reward model's (normalised) reward and/or the simulated
// annotator's gold score (--gold, with its parts) of each record of a JSONL
// file or of standard input. A file holds either prompt/response records
// {"prompt","response"} or preference pairs {"prompt","chosen","rejected"}
// (what prefs writes); its first record decides which. For pairs, a summary
// line on stderr says how often the reward model agrees with the labels and
// the gold order, and the labels with the gold order.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/data_dir.h"
#include "common/jsonl.h"
#include "data/annotator.h"
#include "data/annotator_json.h"
#include "data/prefs_io.h"
#include "data/prompt_record.h"
#include "model/run.h"
#include "reward_model/reward_model.h"

static const char PROG[] = "score";

typedef struct {
    const char *rm, *tokenizer, *input, *data_dir;
    int threads, jsonl, gold;
} Settings;

typedef struct {
    Tokenizer *tok; // reward model, with --rm
    GPT m;
    CkptHeader h;
    int has_rm;
    Annotator *annotator; // with --gold
} Scorer;

typedef enum { KIND_NONE, KIND_RESPONSE, KIND_PAIR } Kind;

// Counts over the pairs of a preference file, for the summary line. "The
// gold order" is the recomputed gold's with --gold, else the file's.
typedef struct {
    long pairs;
    long reward_ties;             // pairs with reward_chosen == reward_rejected
    long rm_labels, rm_labels_n;  // reward model ranks the chosen response first / pairs without a reward tie
    long with_gold, gold_ties;    // pairs with a gold score; of those, equal ones
    long rm_gold, rm_gold_n;      // reward model ranks as gold does / pairs with no tie in either
    long labels_gold, labels_gold_n; // label follows the gold order / pairs without a gold tie
    long reproduced, file_gold;   // --gold: recomputed gold equal to the file's / pairs with the file's gold
} Tally;

// ---------------------------------------------------------------- fields

// Sets o[name] = item: in place of a field of that name, else added last.
// item is owned by o afterwards (deleted on failure). Returns 0 or -1.
static int set_field(cJSON *o, const char *name, cJSON *item) {
    if (!item) return -1;
    if (cJSON_GetObjectItemCaseSensitive(o, name))
        return cJSON_ReplaceItemInObjectCaseSensitive(o, name, item) ? 0 : (cJSON_Delete(item), -1);
    return cJSON_AddItemToObject(o, name, item) ? 0 : (cJSON_Delete(item), -1);
}

// Moves every field of from (deleted) into o with set_field.
static int merge_fields(cJSON *o, cJSON *from) {
    int rc = 0;
    while (rc == 0 && from->child) {
        cJSON *item = cJSON_DetachItemViaPointer(from, from->child);
        char name[128]; // cJSON frees the item's own name while renaming it
        snprintf(name, sizeof name, "%s", item->string);
        rc = set_field(o, name, item);
    }
    cJSON_Delete(from);
    return rc;
}

// The gold parts of one response as a new object (annotator_parts_to_json).
static cJSON *parts_object(const Annotator *a, const AnnotatorParts *p) {
    cJSON *o = cJSON_CreateObject();
    if (o) annotator_parts_to_json(o, p, a);
    return o;
}

static int has_field(const cJSON *o, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(o, name) != NULL;
}

// What the record is: a pair when it has "chosen" or "rejected", a
// prompt/response record when it has "response"; one with neither is taken
// for the file's kind (and then lacks a field). Both in one record, or a
// record of the other kind than the file's first, is an error.
static int record_kind(const JsonlReader *r, const cJSON *o, Kind file_kind, long first_line, Kind *kind,
                       Error *err) {
    int pair = has_field(o, "chosen") || has_field(o, "rejected"), response = has_field(o, "response");
    if (pair && response)
        return error_set(err, "%s:%ld: the record has \"response\" and \"chosen\"/\"rejected\": give either a "
                         "prompt/response record or a preference pair", r->path, r->line);
    *kind = pair ? KIND_PAIR : response ? KIND_RESPONSE : file_kind != KIND_NONE ? file_kind : KIND_RESPONSE;
    if (file_kind != KIND_NONE && *kind != file_kind)
        return error_set(err, "%s:%ld: a %s in a file of %s (the first record, line %ld, decides)", r->path, r->line,
                         *kind == KIND_PAIR ? "preference pair" : "prompt/response record",
                         file_kind == KIND_PAIR ? "preference pairs" : "prompt/response records", first_line);
    return 0;
}

// The gold score and parts of response to the record's prompt: its
// "category" field when present, else the prompt's; the boolean field
// ended_field (true when absent).
static int gold_of(const Scorer *s, const JsonlReader *r, const cJSON *o, const char *prompt, const char *response,
                   const char *ended_field, AnnotatorParts *parts, Error *err) {
    int category, ended = 1;
    if (prompt_record_category(s->annotator, r, o, prompt, &category, err)) return -1;
    if (jsonl_bool(r, o, ended_field, 1, &ended, err) < 0) return -1;
    annotator_gold_category(s->annotator, category, response, ended, parts);
    return 0;
}

static int reward_of(Scorer *s, const JsonlReader *r, const char *prompt, const char *response, float *reward,
                     Error *err) {
    Error inner;
    if (rm_score_text(&s->m, &s->h, s->tok, prompt, response, reward, &inner))
        return error_set(err, "%s:%ld: %s", r->path, r->line, inner.msg);
    return 0;
}

// ---------------------------------------------------------------- records

// A prompt/response record: the reward (plain, or "reward" in the record
// with --jsonl) and with --gold the gold score's fields.
static int score_response(Scorer *s, const JsonlReader *r, cJSON *o, int jsonl, Error *err) {
    const char *prompt = jsonl_string(r, o, "prompt", err);
    const char *response = prompt ? jsonl_string(r, o, "response", err) : NULL;
    if (!response) return -1;
    float reward = 0;
    AnnotatorParts parts;
    if (s->has_rm && reward_of(s, r, prompt, response, &reward, err)) return -1;
    if (s->annotator && gold_of(s, r, o, prompt, response, "ended", &parts, err)) return -1;
    if (!jsonl && !s->annotator) { // stdout_finish reports a failed write
        printf("%.4f\n", reward);
        return 0;
    }
    int rc = 0;
    if (s->has_rm) rc = set_field(o, "reward", jsonl_number_item(reward));
    if (rc == 0 && s->annotator) rc = merge_fields(o, parts_object(s->annotator, &parts));
    if (rc == 0) rc = jsonl_exact_numbers(o); // the record's own numbers, unchanged
    if (rc) return error_set(err, "out of memory");
    jsonl_write(stdout, o);
    return 0;
}

// A preference pair: "reward_chosen"/"reward_rejected" with --rm; with --gold
// "gold_chosen"/"gold_rejected" recomputed and "parts_chosen"/"parts_rejected".
static int score_pair(Scorer *s, const JsonlReader *r, cJSON *o, Tally *t, Error *err) {
    PrefPair p;
    if (prefs_pair_read(r, o, &p, err)) return -1;
    const char *texts[2] = {p.chosen, p.rejected};
    static const char *const ended_fields[2] = {"ended_chosen", "ended_rejected"};
    float reward[2] = {0, 0};
    AnnotatorParts parts[2];
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        if (s->has_rm) rc = reward_of(s, r, p.prompt, texts[k], &reward[k], err);
        if (rc == 0 && s->annotator) rc = gold_of(s, r, o, p.prompt, texts[k], ended_fields[k], &parts[k], err);
    }
    if (rc == 0 && s->has_rm) {
        rc = set_field(o, "reward_chosen", jsonl_number_item(reward[0]));
        if (rc == 0) rc = set_field(o, "reward_rejected", jsonl_number_item(reward[1]));
    }
    if (rc == 0 && s->annotator) {
        rc = set_field(o, "gold_chosen", jsonl_number_item(parts[0].gold));
        if (rc == 0) rc = set_field(o, "gold_rejected", jsonl_number_item(parts[1].gold));
        if (rc == 0) rc = set_field(o, "parts_chosen", parts_object(s->annotator, &parts[0]));
        if (rc == 0) rc = set_field(o, "parts_rejected", parts_object(s->annotator, &parts[1]));
        if (rc) error_set(err, "out of memory");
    }
    if (rc == 0 && jsonl_exact_numbers(o)) rc = error_set(err, "out of memory");
    if (rc == 0) {
        jsonl_write(stdout, o);
        // The tally.
        t->pairs++;
        if (s->has_rm) {
            int tie = reward[0] == reward[1];
            t->reward_ties += tie;
            t->rm_labels_n += !tie;
            t->rm_labels += reward[0] > reward[1];
        }
        double gold[2] = {p.gold_chosen, p.gold_rejected};
        int has_gold = p.has_gold;
        if (s->annotator) {
            if (p.has_gold) t->file_gold++, t->reproduced += parts[0].gold == p.gold_chosen &&
                                                              parts[1].gold == p.gold_rejected;
            gold[0] = parts[0].gold, gold[1] = parts[1].gold, has_gold = 1;
        }
        if (has_gold) {
            int gold_tie = gold[0] == gold[1];
            t->with_gold++;
            t->gold_ties += gold_tie;
            t->labels_gold_n += !gold_tie;
            t->labels_gold += gold[0] > gold[1];
            if (s->has_rm && !gold_tie && reward[0] != reward[1]) {
                t->rm_gold_n++;
                t->rm_gold += (reward[0] > reward[1]) == (gold[0] > gold[1]);
            }
        }
    }
    prefs_pair_clear(&p);
    return rc;
}

// "71.3% (1141/1600)", or "n/a (0/0)".
static const char *share(char *buf, size_t n, long a, long b) {
    if (b > 0) snprintf(buf, n, "%.1f%% (%ld/%ld)", 100.0 * a / b, a, b);
    else snprintf(buf, n, "n/a (0/0)");
    return buf;
}

// One line on stderr: agreements, then the ties left out of them.
static void print_summary(const Scorer *s, const Tally *t) {
    char a[64], b[64];
    const char *order = s->annotator ? "the recomputed gold order" : "the file's gold order";
    fprintf(stderr, "%s: %ld pair%s", PROG, t->pairs, t->pairs == 1 ? "" : "s");
    if (s->has_rm) {
        fprintf(stderr, "; reward model agrees with the labels on %s", share(a, sizeof a, t->rm_labels, t->rm_labels_n));
        if (t->with_gold) fprintf(stderr, ", with %s on %s", order, share(b, sizeof b, t->rm_gold, t->rm_gold_n));
    }
    if (t->with_gold)
        fprintf(stderr, "; labels agree with %s on %s, label noise %s", order,
                share(a, sizeof a, t->labels_gold, t->labels_gold_n),
                share(b, sizeof b, t->labels_gold_n - t->labels_gold, t->labels_gold_n));
    if (s->annotator && t->file_gold) fprintf(stderr, "; recomputed gold equals the file's on %ld/%ld", t->reproduced, t->file_gold);
    if (s->has_rm || t->with_gold) {
        fprintf(stderr, "; ties left out:");
        if (s->has_rm) fprintf(stderr, " %ld equal rewards%s", t->reward_ties, t->with_gold ? "," : "");
        if (t->with_gold) fprintf(stderr, " %ld equal gold", t->gold_ties);
    }
    if (s->has_rm && t->with_gold < t->pairs) fprintf(stderr, "; %ld pairs without gold scores", t->pairs - t->with_gold);
    fputc('\n', stderr);
}

static int score_all(Scorer *s, JsonlReader *r, int jsonl, Error *err) {
    cJSON *o;
    int rc;
    Kind file_kind = KIND_NONE;
    long first_line = 0;
    Tally t = {0};
    while ((rc = jsonl_next(r, &o, err)) == 1) {
        Kind kind = KIND_NONE;
        rc = record_kind(r, o, file_kind, first_line, &kind, err);
        if (rc == 0 && file_kind == KIND_NONE) file_kind = kind, first_line = r->line;
        if (rc == 0) rc = kind == KIND_PAIR ? score_pair(s, r, o, &t, err) : score_response(s, r, o, jsonl, err);
        cJSON_Delete(o);
        if (rc) return -1;
    }
    if (rc == 0 && file_kind == KIND_PAIR) print_summary(s, &t);
    return rc;
}

// ---------------------------------------------------------------- main

static int check_options(const Settings *st, Error *err) {
    if (!st->gold && !st->rm) return usage_error(err, "--rm or --gold is required (see %s --help)", PROG);
    if (st->rm && !st->tokenizer) return usage_error(err, "--rm needs --tokenizer (see %s --help)", PROG);
    if (st->tokenizer && !st->rm) return usage_error(err, "--tokenizer is only used with --rm (see %s --help)", PROG);
    return 0;
}

static int setup(Scorer *s, const Settings *st, Error *err) {
    if (st->gold && annotator_load(&s->annotator, st->data_dir, err)) return -1;
    if (!st->rm) return 0;
    s->has_rm = 1;
    if (tokenizer_load(&s->tok, st->tokenizer, err)) return -1;
    CkptTokenizer tk = {st->tokenizer, tokenizer_fingerprint(s->tok), tokenizer_vocab_size(s->tok)};
    if (run_load_model(&s->m, &s->h, st->rm, 1u << CKPT_RM, &tk, err)) return -1;
    return gpt_alloc_activations(&s->m, 1, s->m.config.max_seq_len, err);
}

int main(int argc, char **argv) {
    Settings st = {.input = "-", .data_dir = data_dir_default()};
    CliOption opts[] = {
        {"rm", CLI_STRING, &st.rm, 0, 0, "reward-model checkpoint from train_rm; needed unless --gold"},
        {"tokenizer", CLI_STRING, &st.tokenizer, 0, 0, "tokenizer.bin of that checkpoint; needed with --rm"},
        {"input", CLI_STRING, &st.input, 0, 0,
         "JSONL of {\"prompt\",\"response\"} or of pairs {\"prompt\",\"chosen\",\"rejected\"}; - is standard input"},
        {"gold", CLI_FLAG, &st.gold, 0, 0,
         "add the simulated annotator's gold score and its parts (needs no reward model)"},
        {"data-dir", CLI_STRING, &st.data_dir, 0, 0,
         "folder with the annotator's afinn165.tsv, keywords.tsv and fortunes.jsonl, for --gold " DATA_DIR_HELP},
        {"jsonl", CLI_FLAG, &st.jsonl, 0, 0,
         "print each prompt/response record with a \"reward\" field added (--gold and pairs: always JSONL)"},
        {"threads", CLI_INT, &st.threads, 0, 256, "threads (0: all cores)"},
    };
    int n_opts = sizeof opts / sizeof opts[0];
    Error err;
    int rc = cli_parse(PROG, opts, n_opts, argc, argv, NULL, &err);
    if (rc == CLI_HELP)
        cli_print_help(stdout, PROG,
                       "Scores each record of a JSONL file: with --rm the reward model's reward (mean 0, std 1 on SFT\n"
                       "samples), with --gold the simulated annotator's gold score and its parts, or both.\n"
                       "\n"
                       "Prompt/response records {\"prompt\",\"response\"}: with --rm alone, one reward a line (--jsonl:\n"
                       "the record with \"reward\" added). With --gold, always the record with \"reward\" (with --rm),\n"
                       "\"gold\" and the parts added: \"category\" (name or null), \"words\", \"context_words\",\n"
                       "\"valence_mean\", \"valence\", \"topic_raw\", \"topic\", \"fluency\", \"slor\", \"unseen_words\",\n"
                       "\"length\", \"repetition\", \"ended\" (docs/annotator.md).\n"
                       "\n"
                       "Preference pairs {\"prompt\",\"chosen\",\"rejected\"} (as prefs writes them): always the record\n"
                       "with \"reward_chosen\" and \"reward_rejected\" (with --rm), and with --gold \"gold_chosen\" and\n"
                       "\"gold_rejected\" recomputed and the parts of each response as objects \"parts_chosen\" and\n"
                       "\"parts_rejected\" (the fields above, \"gold\" among them). Then one summary line on stderr:\n"
                       "how often the reward model ranks the chosen response first, how often it and the labels\n"
                       "follow the gold order (the recomputed gold with --gold, else the file's gold_chosen and\n"
                       "gold_rejected), ties left out of each count and counted.\n"
                       "\n"
                       "With --gold a record's optional \"category\" (a category name) is used instead of the\n"
                       "prompt's, and the optional booleans \"ended\" (pairs: \"ended_chosen\", \"ended_rejected\";\n"
                       "default true) say whether a response ended with the end token. The first record decides\n"
                       "the file's kind; a record of the other kind is an error.",
                       opts, n_opts);
    if (rc > 0) return 0;
    if (rc == 0) rc = check_options(&st, &err);
    if (rc) error_exit_rc(PROG, rc, &err);
    run_set_threads(st.threads);
    Scorer s = {0};
    JsonlReader r = {0};
    rc = setup(&s, &st, &err);
    if (rc == 0)
        rc = strcmp(st.input, "-") ? jsonl_open(&r, st.input, &err) : jsonl_open_stream(&r, stdin, "<stdin>", &err);
    if (rc == 0) rc = score_all(&s, &r, st.jsonl, &err);
    jsonl_close(&r);
    gpt_free(&s.m);
    tokenizer_free(s.tok);
    annotator_free(s.annotator);
    if (rc) error_exit(PROG, &err);
    return stdout_finish(PROG, 0);
}
