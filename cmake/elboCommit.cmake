# Writes OUT, a header defining ELBO_COMMIT: the source tree's short commit, with "+changes" when
# tracked files differ from it, or "unknown" outside git. Run at every build (examples/CMakeLists),
# it rewrites OUT only when that changes, so a build after a commit recompiles what includes it and
# nothing else; `elbo --version` and every checkpoint `elbo train` writes then name the commit.
execute_process(COMMAND git -C "${SOURCE}" rev-parse --short HEAD
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE failed ERROR_QUIET)
if(failed OR commit STREQUAL "")
  set(commit "unknown")
else()
  execute_process(COMMAND git -C "${SOURCE}" diff --quiet HEAD -- RESULT_VARIABLE changed ERROR_QUIET)
  if(changed)
    string(APPEND commit "+changes")
  endif()
endif()
set(text "#pragma once\n#define ELBO_COMMIT \"${commit}\"\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
