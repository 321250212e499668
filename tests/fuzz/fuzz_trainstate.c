// Fuzzes the training-state reader (trainstate_load) with arbitrary files.
// The loader reads a path, so each input is written to a file first; the
// parameter count and checkpoint fingerprint it is given are taken from the
// input's own header when they are small enough, so that inputs get past
// those two checks and reach the field checks behind them.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/bytes.h"
#include "model/checkpoint.h"

#define MAX_PARAMS 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/fuzz_trainstate_%ld.opt", (long)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    uint64_t claimed = size >= 32 ? get_u64(data + 24) : 0;
    size_t num_params = claimed <= MAX_PARAMS ? (size_t)claimed : 16;
    uint32_t ckpt_fp = size >= 20 ? get_u32(data + 16) : 0;
    float *m = malloc((num_params + 1) * sizeof *m), *v = malloc((num_params + 1) * sizeof *v);
    if (m && v) {
        TrainState s;
        Error err;
        trainstate_load(path, ckpt_fp, &s, m, v, num_params, &err);
    }
    free(m);
    free(v);
    unlink(path);
    return 0;
}
