#include "data/topics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Topics are noun phrases that read well after "about" or "on", since every
// template puts them there ("Give me a {topic} fortune" would need adjectives).
static const FortuneTopic TOPICS[] = {
    {"art", "art"},
    {"computers", "computers"},
    {"cookie", "life"}, // Karl Lehenbauer's general collection
    {"debian", "Debian"},
    {"definitions", "definitions"},
    {"disclaimer", "disclaimers"},
    {"drugs", "drugs"},
    {"education", "education"},
    {"ethnic", "nations and cultures"},
    {"food", "food"},
    {"fortunes", "fate"}, // classic fortune-cookie predictions
    {"goedel", "logic"},
    {"humorists", "humour"},
    {"kids", "children"},
    {"knghtbrd", "IRC"}, // quotes collected from IRC channels
    {"law", "law"},
    {"linux", "Linux hackers"},
    {"linuxcookie", "Linux"},
    {"literature", "literature"},
    {"love", "love"},
    {"magic", "magic"},
    {"medicine", "medicine"},
    {"men-women", "men and women"},
    {"miscellaneous", "odds and ends"},
    {"news", "the news"},
    {"paradoxum", "paradoxes"},
    {"people", "people"},
    {"perl", "Perl"},
    {"pets", "pets"},
    {"platitudes", "platitudes"},
    {"politics", "politics"},
    {"pratchett", "Terry Pratchett"},
    {"riddles", "riddles"},
    {"science", "science"},
    {"songs-poems", "songs and poems"},
    {"sports", "sports"},
    {"startrek", "Star Trek"},
    {"tao", "the Tao"},
    {"translate-me", "Latin"},
    {"wisdom", "wisdom"},
    {"work", "work"},
    {"zippy", "Zippy the Pinhead"},
};

// ascii-art holds pictures drawn with spaces; folding whitespace, which every
// other fortune needs, turns them into noise.
static const char *const EXCLUDED[] = {"ascii-art"};

static const char *const TRAIN_TEMPLATES[] = {
    "Tell me a fortune about {topic}.",
    "Give me a fortune on {topic}.",
    "Share something wise about {topic}.",
    "What does the fortune cookie say about {topic}?",
    "I'd like a quote about {topic}, please.",
    "Say something witty about {topic}.",
    "Write a fortune cookie message about {topic}.",
    "Do you have a saying about {topic}?",
    "Topic: {topic}. Tell me a fortune.",
    "Amuse me with something about {topic}.",
    "Any words of wisdom on {topic}?",
    "Open a fortune cookie about {topic} for me.",
};

static const char *const EVAL_TEMPLATES[] = {
    "Could you give me a fortune on the subject of {topic}?",
    "Let me hear a clever line about {topic}.",
    "I need a fortune. Make it about {topic}.",
    "What wisdom do you have about {topic}?",
    "Please crack open a cookie on {topic}.",
    "Say something memorable about {topic}.",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

size_t fortune_topic_count(void) { return COUNT(TOPICS); }

const FortuneTopic *fortune_topic_at(size_t i) { return i < COUNT(TOPICS) ? &TOPICS[i] : NULL; }

const FortuneTopic *fortune_topic_find(const char *category) {
    for (size_t i = 0; i < COUNT(TOPICS); i++)
        if (strcmp(TOPICS[i].category, category) == 0) return &TOPICS[i];
    return NULL;
}

int fortune_category_excluded(const char *category) {
    for (size_t i = 0; i < COUNT(EXCLUDED); i++)
        if (strcmp(EXCLUDED[i], category) == 0) return 1;
    return 0;
}

size_t prompt_template_count(PromptSet set) {
    return set == PROMPTS_TRAIN ? COUNT(TRAIN_TEMPLATES) : COUNT(EVAL_TEMPLATES);
}

const char *prompt_template(PromptSet set, size_t i) {
    if (i >= prompt_template_count(set)) return NULL;
    return set == PROMPTS_TRAIN ? TRAIN_TEMPLATES[i] : EVAL_TEMPLATES[i];
}

char *prompt_format(const char *tmpl, const char *topic) {
    static const char PLACEHOLDER[] = "{topic}";
    const char *at = strstr(tmpl, PLACEHOLDER);
    if (!at) return strdup(tmpl);
    size_t head = (size_t)(at - tmpl);
    const char *tail = at + strlen(PLACEHOLDER);
    size_t n = head + strlen(topic) + strlen(tail) + 1;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%.*s%s%s", (int)head, tmpl, topic, tail);
    return out;
}
