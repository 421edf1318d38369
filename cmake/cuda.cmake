# cuda.cmake — the CUDA backend (src/backend/cuda/), built whenever a CUDA compiler is found.
#
# Included by the top-level CMakeLists.txt after the glmoe_core and glmoe targets exist. Sets
# GLMOE_HAVE_CUDA (ON/OFF) for the rest of the build. With CUDA:
#   - the .cu files, with src/backend/cuda/cuda_module.c and the stateless helpers they use,
#     become the module libglmoe-cuda.so (target glmoe_cuda_module, next to libglmoe.so in the
#     build directory; installed next to it), the only binary that links CUDA::cudart and
#     CUDA::cublas. glmoe_core and libglmoe.so open it with dlopen when a GPU is asked for and the
#     driver says there is one (src/backend/cuda_loader.c): a CPU run maps no CUDA library;
#   - glmoe_core and glmoe get the GLMOE_HAVE_CUDA definition (PUBLIC on glmoe_core, so tests see
#     it), and every target that links glmoe_core builds the module first;
#   - the build tree's programs carry the build directory in their RUNPATH (CMAKE_BUILD_RPATH, set
#     by CMakeLists.txt), where the loader finds the module by name (tests/*, run by ctest or by
#     tools/gpu/run_gpu.sh directly);
#   - every golden case gets a second test, golden_cuda_<case>, running test_golden with
#     --device cuda (it prints "SKIP: no CUDA device" on a machine without a GPU, which ctest
#     reports as skipped), and golden_cuda_long generates 2100 tokens on glm45_like against the
#     CPU (skipped likewise);
#   - glmoe_gpu_bench (tools/gpu/bench_gpu.c) is built for tools/gpu/run_gpu.sh.
# -DGLMOE_CUDA=OFF builds without it. The architectures default to 80;90 (Ampere and Hopper
# machine code; newer GPUs JIT from the sm_90 PTX); override with -DCMAKE_CUDA_ARCHITECTURES=...
option(GLMOE_CUDA "Build the CUDA backend when a CUDA compiler is found" ON)
set(GLMOE_HAVE_CUDA OFF)
if(NOT GLMOE_CUDA)
  return()
endif()

# nvcc is often installed outside PATH; the usual prefix is a good guess.
if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
  set(ENV{CUDACXX} /usr/local/cuda/bin/nvcc)
endif()
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(STATUS "glmoe: no CUDA compiler found; building without the CUDA backend")
  return()
endif()
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 80 90)
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
set(GLMOE_HAVE_CUDA ON)
message(STATUS "glmoe: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES})")

file(GLOB GLMOE_CUDA_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/backend/cuda/*.cu)
add_library(glmoe_cuda OBJECT ${GLMOE_CUDA_SOURCES})
# The directory's compile options are gcc's C flags (-Wshadow, -march, sanitizers), which nvcc
# rejects: replace them with their nvcc spelling.
set_property(TARGET glmoe_cuda PROPERTY COMPILE_OPTIONS "")
target_compile_options(glmoe_cuda PRIVATE
  -Xcompiler=-Wall,-Wextra,-Wno-unused-parameter,-D_GNU_SOURCE
  $<$<BOOL:${GLMOE_WERROR}>:-Werror=all-warnings>
  $<$<CONFIG:Release>:-O3>)
set_target_properties(glmoe_cuda PROPERTIES
  CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON POSITION_INDEPENDENT_CODE ON CUDA_RUNTIME_LIBRARY Shared
  CUDA_VISIBILITY_PRESET hidden)
target_include_directories(glmoe_cuda PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(glmoe_cuda PUBLIC CUDA::cudart CUDA::cublas)

# The module: the .cu objects, its entry point, and its own copies of the stateless helpers the
# .cu files call (their errors and weight formats); logging goes through the library's callback.
add_library(glmoe_cuda_module MODULE
  $<TARGET_OBJECTS:glmoe_cuda>
  ${PROJECT_SOURCE_DIR}/src/backend/cuda/cuda_module.c
  ${PROJECT_SOURCE_DIR}/src/util/error.c
  ${PROJECT_SOURCE_DIR}/src/backend/formats.c)
set_target_properties(glmoe_cuda_module PROPERTIES
  OUTPUT_NAME glmoe-cuda PREFIX lib LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}
  C_VISIBILITY_PRESET hidden CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}" LINKER_LANGUAGE C
  # installed: find cudart and cuBLAS where they were found at build time
  INSTALL_RPATH "${CUDAToolkit_LIBRARY_DIR}")
target_include_directories(glmoe_cuda_module PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(glmoe_cuda_module PRIVATE CUDA::cudart CUDA::cublas ${CMAKE_DL_LIBS} Threads::Threads)
if(NOT GLMOE_SANITIZE AND NOT GLMOE_TSAN)
  target_link_options(glmoe_cuda_module PRIVATE LINKER:--no-undefined) # every symbol resolved here
endif()
# The module and the loader must come from one build (src/backend/cuda/cuda_module.h).
set_source_files_properties(${PROJECT_SOURCE_DIR}/src/backend/cuda/cuda_module.c ${PROJECT_SOURCE_DIR}/src/backend/cuda_loader.c
  PROPERTIES COMPILE_DEFINITIONS GLMOE_GIT_COMMIT="${GLMOE_GIT_COMMIT}")

# NCCL, for a model split over several GPUs (src/backend/cuda/comm_nccl.c): only its header at build
# time, from the nvidia-nccl-cu13 wheel (tools/get_nccl.sh unpacks it into .nccl/, ignored by git);
# libnccl.so.2 is opened at run time, and only for a split. Without the header the module is built
# without it, and a split on CUDA is refused in one line.
set(GLMOE_NCCL_INCLUDE "${PROJECT_SOURCE_DIR}/.nccl/nvidia/nccl/include" CACHE PATH
    "Folder holding NCCL's nccl.h (the nvidia-nccl-cu13 wheel's nvidia/nccl/include)")
if(EXISTS "${GLMOE_NCCL_INCLUDE}/nccl.h")
  target_sources(glmoe_cuda_module PRIVATE ${PROJECT_SOURCE_DIR}/src/backend/cuda/comm_nccl.c)
  set_source_files_properties(${PROJECT_SOURCE_DIR}/src/backend/cuda/comm_nccl.c PROPERTIES
    INCLUDE_DIRECTORIES "${GLMOE_NCCL_INCLUDE};${CUDAToolkit_INCLUDE_DIRS}")
  # cuda_backend.cu alone (its all_reduce op and waits): the other kernels do not recompile
  set_property(SOURCE ${PROJECT_SOURCE_DIR}/src/backend/cuda/cuda_backend.cu APPEND PROPERTY COMPILE_DEFINITIONS GLMOE_HAVE_NCCL)
  target_compile_definitions(glmoe_cuda_module PRIVATE GLMOE_HAVE_NCCL)
  message(STATUS "glmoe: NCCL header found in ${GLMOE_NCCL_INCLUDE}: models split over several GPUs (libnccl.so.2 opened at run time)")
else()
  message(STATUS "glmoe: no nccl.h in GLMOE_NCCL_INCLUDE (${GLMOE_NCCL_INCLUDE}): building without multi-GPU "
                 "(tools/get_nccl.sh fetches the header)")
endif()

include(GNUInstallDirs)
foreach(t glmoe_core glmoe)
  target_compile_definitions(${t} PRIVATE GLMOE_INSTALL_LIBDIR="${CMAKE_INSTALL_LIBDIR}"
                                          GLMOE_INSTALL_FULL_LIBDIR="${CMAKE_INSTALL_FULL_LIBDIR}")
  target_link_libraries(${t} PRIVATE ${CMAKE_DL_LIBS})
  add_dependencies(${t} glmoe_cuda_module)
endforeach()
target_compile_definitions(glmoe_core PUBLIC GLMOE_HAVE_CUDA)
target_compile_definitions(glmoe PRIVATE GLMOE_HAVE_CUDA)

# Whole models on the GPU against transformers (tests/golden/test_golden.c --device cuda).
file(GLOB GLMOE_GOLDEN_CUDA_CASES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/golden/*/reference.json)
foreach(ref ${GLMOE_GOLDEN_CUDA_CASES})
  get_filename_component(dir ${ref} DIRECTORY)
  get_filename_component(name ${dir} NAME)
  add_test(NAME golden_cuda_${name} COMMAND test_golden ${dir} --device cuda)
  set_tests_properties(golden_cuda_${name} PROPERTIES LABELS "golden;cuda" SKIP_REGULAR_EXPRESSION "^SKIP: ")
endforeach()
# The MLX-quantized golden cases on the GPU against MLX's float32 logits (rel. L2 <= 1e-2), with
# a float32 KV cache: the bf16 cache's rounding flips near-tie expert choices of glm45_like.
file(GLOB GLMOE_GOLDEN_QUANT_CUDA_CASES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/golden_quant/*/*/reference.json)
foreach(ref ${GLMOE_GOLDEN_QUANT_CUDA_CASES})
  get_filename_component(dir ${ref} DIRECTORY)
  get_filename_component(variant ${dir} NAME)
  get_filename_component(parent ${dir} DIRECTORY)
  get_filename_component(model ${parent} NAME)
  add_test(NAME golden_quant_cuda_${model}_${variant} COMMAND test_golden ${dir} --device cuda)
  set_tests_properties(golden_quant_cuda_${model}_${variant} PROPERTIES LABELS "golden;cuda" SKIP_REGULAR_EXPRESSION "^SKIP: "
                       ENVIRONMENT GLMOE_CUDA_KV=f32)
endforeach()
# A long greedy generation on the GPU (the decode graph replayed 2000+ times) against the CPU.
add_test(NAME golden_cuda_long COMMAND test_golden ${PROJECT_SOURCE_DIR}/tests/golden/glm45_like --device cuda --long 2100)
set_tests_properties(golden_cuda_long PROPERTIES LABELS "golden;cuda" SKIP_REGULAR_EXPRESSION "^SKIP: ")

add_executable(glmoe_gpu_bench ${PROJECT_SOURCE_DIR}/tools/gpu/bench_gpu.c)
target_include_directories(glmoe_gpu_bench PRIVATE ${PROJECT_SOURCE_DIR}/src) # cuda_backend_counters_get
target_link_libraries(glmoe_gpu_bench PRIVATE glmoe_core)
