# cuda.cmake — the CUDA backend (src/backend/cuda/), built whenever a CUDA compiler is found.
#
# Included by the top-level CMakeLists.txt after the glmoe_core and glmoe targets exist. Sets
# GLMOE_HAVE_CUDA (ON/OFF) for the rest of the build. With CUDA:
#   - the .cu files become an object library whose objects join glmoe_core and libglmoe.so;
#   - both get the GLMOE_HAVE_CUDA definition (PUBLIC on glmoe_core, so tests see it) and link
#     CUDA::cudart and CUDA::cublas;
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

# glmoe_core and glmoe were created before CUDA was enabled: give them the architectures too, or a
# fresh configure fails with "CUDA_ARCHITECTURES is empty".
set_target_properties(glmoe_core glmoe PROPERTIES CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
target_sources(glmoe_core PRIVATE $<TARGET_OBJECTS:glmoe_cuda>)
target_compile_definitions(glmoe_core PUBLIC GLMOE_HAVE_CUDA)
target_link_libraries(glmoe_core PUBLIC CUDA::cudart CUDA::cublas)
target_sources(glmoe PRIVATE $<TARGET_OBJECTS:glmoe_cuda>)
target_compile_definitions(glmoe PRIVATE GLMOE_HAVE_CUDA)
target_link_libraries(glmoe PRIVATE CUDA::cudart CUDA::cublas)

# Whole models on the GPU against transformers (tests/golden/test_golden.c --device cuda).
file(GLOB GLMOE_GOLDEN_CUDA_CASES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/golden/*/reference.json)
foreach(ref ${GLMOE_GOLDEN_CUDA_CASES})
  get_filename_component(dir ${ref} DIRECTORY)
  get_filename_component(name ${dir} NAME)
  add_test(NAME golden_cuda_${name} COMMAND test_golden ${dir} --device cuda)
  set_tests_properties(golden_cuda_${name} PROPERTIES LABELS "golden;cuda" SKIP_REGULAR_EXPRESSION "^SKIP: ")
endforeach()
# The MLX-quantized golden cases on the GPU against MLX's logits (rel. L2 <= 1e-2).
file(GLOB GLMOE_GOLDEN_QUANT_CUDA_CASES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/golden_quant/*/*/reference.json)
foreach(ref ${GLMOE_GOLDEN_QUANT_CUDA_CASES})
  get_filename_component(dir ${ref} DIRECTORY)
  get_filename_component(variant ${dir} NAME)
  get_filename_component(parent ${dir} DIRECTORY)
  get_filename_component(model ${parent} NAME)
  add_test(NAME golden_quant_cuda_${model}_${variant} COMMAND test_golden ${dir} --device cuda)
  # the quantized kernels are off by default until validated on a GPU (cuda_backend_options.affine)
  set_tests_properties(golden_quant_cuda_${model}_${variant} PROPERTIES LABELS "golden;cuda" SKIP_REGULAR_EXPRESSION "^SKIP: "
                       ENVIRONMENT GLMOE_CUDA_AFFINE=1)
endforeach()
# A long greedy generation on the GPU (the decode graph replayed 2000+ times) against the CPU.
add_test(NAME golden_cuda_long COMMAND test_golden ${PROJECT_SOURCE_DIR}/tests/golden/glm45_like --device cuda --long 2100)
set_tests_properties(golden_cuda_long PROPERTIES LABELS "golden;cuda" SKIP_REGULAR_EXPRESSION "^SKIP: ")

add_executable(glmoe_gpu_bench ${PROJECT_SOURCE_DIR}/tools/gpu/bench_gpu.c)
target_include_directories(glmoe_gpu_bench PRIVATE ${PROJECT_SOURCE_DIR}/src) # cuda_backend_counters_get
target_link_libraries(glmoe_gpu_bench PRIVATE glmoe_core)
