# fuzz.cmake — the libFuzzer targets (tests/fuzz/fuzz_*.c), built only with -DGLMOE_FUZZ=ON and
# clang (libFuzzer is part of clang's runtime: Debian's clang-14 + libclang-rt-14-dev).
#
# `make fuzz` configures build-fuzz/ with CC=clang, -DGLMOE_FUZZ=ON and
# -DCMAKE_PROJECT_INCLUDE=cmake/fuzz.cmake, builds the target fuzz_all, then runs every fuzzer
# for a bounded time (tests/fuzz/run_fuzzers.sh). Loading this file through
# CMAKE_PROJECT_INCLUDE means the top-level CMakeLists.txt needs no change; an
# `include(cmake/fuzz.cmake)` there works too (the include guard keeps it to one load).
#
# What it does with GLMOE_FUZZ=ON:
#   - glmoe_core (every source under src/) is compiled with coverage instrumentation for
#     libFuzzer plus AddressSanitizer and UndefinedBehaviorSanitizer (-fno-sanitize-recover, so
#     any UB finding stops the fuzzer and saves the input); consumers link the sanitizers too.
#   - every tests/fuzz/fuzz_<name>.c becomes an executable fuzz_<name> at the top of the build
#     folder; fuzz_cli_ids also compiles tools/cli/common.c (the CLI's id-list parser),
#     fuzz_server_request tools/server/request.c and response.c (the server's request parser).
#   - GLMOE_SOURCE_DIR is defined for the fuzzers that load fixtures from the source tree.
# Jansson, Oniguruma and utf8proc come from Debian and are not instrumented: their inputs and
# outputs are still checked by ASan's interceptors, but coverage only counts glmoe's own code.
include_guard(GLOBAL)

option(GLMOE_FUZZ "Build the libFuzzer targets in tests/fuzz (clang only)" OFF)
if(NOT GLMOE_FUZZ)
  return()
endif()
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "GLMOE_FUZZ needs clang (libFuzzer); configure with CC=clang, "
                      "e.g. `make fuzz` (found ${CMAKE_C_COMPILER_ID})")
endif()

set(GLMOE_FUZZ_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all
    -fno-omit-frame-pointer -g -O1)

function(glmoe_add_fuzzers)
  target_compile_options(glmoe_core PRIVATE -fsanitize=fuzzer-no-link ${GLMOE_FUZZ_FLAGS})
  target_link_options(glmoe_core INTERFACE -fsanitize=address,undefined)

  file(GLOB fuzz_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
  set(all_fuzzers)
  foreach(src ${fuzz_sources})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src})
    if(name STREQUAL "fuzz_cli_ids")
      target_sources(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tools/cli/common.c)
      target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tools/cli)
    elseif(name STREQUAL "fuzz_server_request")
      target_sources(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tools/server/request.c
                                     ${PROJECT_SOURCE_DIR}/tools/server/response.c)
      target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tools/server)
    endif()
    target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests/fuzz)
    target_compile_definitions(${name} PRIVATE GLMOE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer ${GLMOE_FUZZ_FLAGS})
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${name} PRIVATE glmoe_core)
    set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
    list(APPEND all_fuzzers ${name})
  endforeach()
  add_custom_target(fuzz_all DEPENDS ${all_fuzzers})
endfunction()

# Through CMAKE_PROJECT_INCLUDE this file runs right after project(), before glmoe_core exists:
# define the fuzzers once the top-level CMakeLists.txt has been read.
if(TARGET glmoe_core)
  glmoe_add_fuzzers()
else()
  cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL glmoe_add_fuzzers)
endif()
