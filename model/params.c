// The parameter layout declared in model/gpt.h: names, shapes and sizes of the
// 18 tensors in checkpoint order, and pointers into the contiguous buffer.
// Kept apart from gpt.c so that checkpoint I/O (and tools that only inspect
// checkpoints) need the layout without the forward/backward code.
#include "model/gpt.h"

static const char *const PARAM_NAMES[NUM_PARAMETER_TENSORS] = {
    "wte",  "wpe",  "ln1w", "ln1b",    "qkvw", "qkvb", "attprojw", "attprojb", "ln2w",
    "ln2b", "fcw",  "fcb",  "fcprojw", "fcprojb", "lnfw", "lnfb", "headw",    "headb",
};

const char *gpt_param_name(int i) {
    if (i < 0 || i >= NUM_PARAMETER_TENSORS) return "?";
    return PARAM_NAMES[i];
}

// Returns the rank (1..3) and fills shape[0..rank-1]; unused entries are 1.
// Returns 0 for an index out of range.
int gpt_param_shape(const GPTConfig *cfg, int i, size_t shape[3]) {
    size_t V = (size_t)cfg->vocab_size, maxT = (size_t)cfg->max_seq_len;
    size_t L = (size_t)cfg->n_layer, C = (size_t)cfg->n_embd;
    shape[0] = shape[1] = shape[2] = 1;
    switch (i) {
    case 0: shape[0] = V, shape[1] = C; return 2;            // wte
    case 1: shape[0] = maxT, shape[1] = C; return 2;         // wpe
    case 2: case 3: shape[0] = L, shape[1] = C; return 2;    // ln1w, ln1b
    case 4: shape[0] = L, shape[1] = 3 * C, shape[2] = C; return 3; // qkvw
    case 5: shape[0] = L, shape[1] = 3 * C; return 2;        // qkvb
    case 6: shape[0] = L, shape[1] = C, shape[2] = C; return 3; // attprojw
    case 7: case 8: case 9: shape[0] = L, shape[1] = C; return 2; // attprojb, ln2w, ln2b
    case 10: shape[0] = L, shape[1] = 4 * C, shape[2] = C; return 3; // fcw
    case 11: shape[0] = L, shape[1] = 4 * C; return 2;       // fcb
    case 12: shape[0] = L, shape[1] = C, shape[2] = 4 * C; return 3; // fcprojw
    case 13: shape[0] = L, shape[1] = C; return 2;           // fcprojb
    case 14: case 15: case 16: shape[0] = C; return 1;       // lnfw, lnfb, headw
    case 17: shape[0] = 1; return 1;                         // headb
    default: return 0;
    }
}

void gpt_param_sizes(const GPTConfig *cfg, size_t sizes[NUM_PARAMETER_TENSORS]) {
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        size_t shape[3];
        gpt_param_shape(cfg, i, shape);
        sizes[i] = shape[0] * shape[1] * shape[2];
    }
}

// The config limits in gpt_config_validate keep every size below about 2e10
// floats, which fits size_t only on 64-bit hosts; refuse to build elsewhere
// rather than wrap silently.
_Static_assert(sizeof(size_t) >= 8, "minirlhf needs a 64-bit size_t");

size_t gpt_num_params(const GPTConfig *cfg) {
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt_param_sizes(cfg, sizes);
    size_t total = 0;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) total += sizes[i];
    return total;
}

void gpt_point_params(ParameterTensors *p, float *mem, const GPTConfig *cfg) {
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt_param_sizes(cfg, sizes);
    // The struct's members are NUM_PARAMETER_TENSORS float pointers in
    // checkpoint order; listing them keeps that correspondence explicit.
    float **slots[NUM_PARAMETER_TENSORS] = {
        &p->wte,  &p->wpe,  &p->ln1w, &p->ln1b,    &p->qkvw,    &p->qkvb,
        &p->attprojw, &p->attprojb, &p->ln2w, &p->ln2b, &p->fcw, &p->fcb,
        &p->fcprojw,  &p->fcprojb,  &p->lnfw, &p->lnfb, &p->headw, &p->headb,
    };
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        *slots[i] = mem;
        mem += sizes[i];
    }
}
