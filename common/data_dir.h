// Where the executables find the project's data files (data/ of the source
// tree: the annotator's tables, the corpora and prompt files) wherever they
// are started from, so that no default depends on the current folder.
#ifndef COMMON_DATA_DIR_H
#define COMMON_DATA_DIR_H

#include <stddef.h>

#include "common/error.h"

// The environment variable that overrides the built-in data folder.
#define DATA_DIR_ENV "MINIRLHF_DATA_DIR"

// The default data folder: $MINIRLHF_DATA_DIR when set and not empty, else
// the source tree's data/ as an absolute path fixed at build time.
const char *data_dir_default(void);

// out = data_dir_default()/name; -1 with a message when it does not fit.
int data_dir_file(char *out, size_t n, const char *name, Error *err);

// Help text for a --data-dir option: which default applies (the help adds its value).
#define DATA_DIR_HELP "($" DATA_DIR_ENV " when set, else the source tree's data/)"

#endif
