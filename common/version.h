// What `--version` prints in every executable.
#ifndef COMMON_VERSION_H
#define COMMON_VERSION_H

#include <stdio.h>

// "minirlhf PROG VERSION (git COMMIT)\n": the project version from CMake and
// the commit the build was made from ("unknown" without git; "-dirty" when
// tracked files had changed since it).
void version_print(FILE *fp, const char *prog);

#endif
