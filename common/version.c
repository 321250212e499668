#include "common/version.h"

#include "common/version_info.h"

void version_print(FILE *fp, const char *prog) {
    fprintf(fp, "minirlhf %s %s (git %s)\n", prog, MINIRLHF_VERSION, MINIRLHF_GIT_COMMIT);
}
