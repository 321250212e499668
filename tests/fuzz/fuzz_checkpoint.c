// Fuzzes the checkpoint and training-state loaders with arbitrary files. The
// loaders read paths, so each input is written to a file first.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "model/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/fuzz_ckpt_%ld.bin", (long)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    CkptHeader h;
    Error err;
    float *params = NULL;
    if (ckpt_load(path, &h, &params, &err) == 0) free(params);
    ckpt_verify(path, &h, &err);
    TrainState s;
    float m[64], v[64];
    trainstate_load(path, 0, &s, m, v, 64, &err);
    unlink(path);
    return 0;
}
