#include "common/data_dir.h"

#include <stdlib.h>

#include "common/fileio.h"

#ifndef MINIRLHF_DATA_DIR
#error "MINIRLHF_DATA_DIR must be defined by the build (common/CMakeLists.txt)"
#endif

const char *data_dir_default(void) {
    const char *env = getenv(DATA_DIR_ENV);
    return env && env[0] ? env : MINIRLHF_DATA_DIR;
}

int data_dir_file(char *out, size_t n, const char *name, Error *err) {
    return path_join(out, n, data_dir_default(), name, err);
}
