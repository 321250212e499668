# Writes OUT (a C header) with the commit the build is made from, so that
# `--version` names it. Run at every build (see common/CMakeLists.txt);
# configure_file leaves OUT untouched when nothing changed, so nothing is
# recompiled. Without git or outside a checkout the commit is "unknown".
set(MINIRLHF_GIT_COMMIT "unknown")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --short=12 HEAD
                  WORKING_DIRECTORY ${SOURCE_DIR}
                  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE commit_rc ERROR_QUIET)
  if(commit_rc EQUAL 0 AND commit)
    set(MINIRLHF_GIT_COMMIT "${commit}")
    # Tracked files changed since that commit: say so, the build is not it.
    execute_process(COMMAND ${GIT_EXECUTABLE} status --porcelain --untracked-files=no
                    WORKING_DIRECTORY ${SOURCE_DIR}
                    OUTPUT_VARIABLE dirty OUTPUT_STRIP_TRAILING_WHITESPACE
                    RESULT_VARIABLE dirty_rc ERROR_QUIET)
    if(dirty_rc EQUAL 0 AND dirty)
      set(MINIRLHF_GIT_COMMIT "${MINIRLHF_GIT_COMMIT}-dirty")
    endif()
  endif()
endif()
configure_file(${TEMPLATE} ${OUT} @ONLY)
