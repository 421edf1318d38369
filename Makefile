# Thin wrapper around CMake: `make` builds build/glmoe and the library, `make test` runs ctest.
BUILD ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: all install test test-nocuda asan tsan fuzz valgrind clean
all: $(BUILD)/Makefile
	cmake --build $(BUILD) -j$$(nproc)

# The header, libglmoe.so (with its SONAME links), libglmoe.a, the CUDA module when built, glmoe.pc
# and bin/glmoe under PREFIX (cmake/install.cmake says what goes where).
PREFIX ?= /usr/local
install: all
	cmake --install $(BUILD) --prefix $(PREFIX)

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

test: all
	cd $(BUILD) && ctest --output-on-failure -j$$(nproc)

# The whole suite again in a build without the CUDA backend, as on a machine without the CUDA
# toolkit (the README's commands must work there too): every test that needs CUDA must compile
# out or skip, and nothing else may depend on it.
test-nocuda:
	$(MAKE) test BUILD=build-nocuda CMAKE_FLAGS="-DCMAKE_BUILD_TYPE=Release -DGLMOE_CUDA=OFF"

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build folder.
asan:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DCMAKE_BUILD_TYPE=Debug -DGLMOE_SANITIZE=ON"

# The thread tests (tests/threads: two threads x two contexts of one model while a third makes and
# frees contexts) under ThreadSanitizer, built with clang and LLVM's OpenMP runtime (libomp) in
# build-tsan/, CPU only. Archer (libarcher, shipped with libomp) tells TSan about OpenMP's
# barriers; any race report fails the run (halt_on_error).
TSAN_CC ?= $(shell command -v clang-14 || command -v clang)
ARCHER ?= $(firstword $(wildcard /usr/lib/llvm-14/lib/libarcher.so /usr/lib/llvm-*/lib/libarcher.so))
tsan:
	@test -n "$(TSAN_CC)" || { echo "make tsan: clang not found (tools/install_deps.sh installs clang-14)"; exit 1; }
	@test -n "$(ARCHER)" || { echo "make tsan: libarcher.so not found (tools/install_deps.sh installs libomp-14-dev)"; exit 1; }
	cmake -S . -B build-tsan -DCMAKE_C_COMPILER=$(TSAN_CC) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGLMOE_TSAN=ON \
	    -DGLMOE_CUDA=OFF -DGLMOE_WERROR=OFF
	cmake --build build-tsan --target test_threads test_comm -j$$(nproc)
	cd build-tsan && OMP_TOOL_LIBRARIES=$(ARCHER) TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ignore_noninstrumented_modules=1" \
	    ctest --output-on-failure -L threads

# The libFuzzer targets (tests/fuzz/fuzz_*.c) under ASan + UBSan, built with clang in build-fuzz/
# (cmake/fuzz.cmake, loaded as the project include: CMakeLists.txt needs no change), then each run
# for FUZZ_SECONDS from its seed corpus, two at a time; any crash, leak or timeout fails
# (tests/fuzz/run_fuzzers.sh). `make fuzz FUZZ_SECONDS=600` for a longer hunt.
FUZZ_CC ?= $(shell command -v clang-14 || command -v clang)
FUZZ_SECONDS ?= 30
fuzz:
	@test -n "$(FUZZ_CC)" || { echo "make fuzz: clang not found (tools/install_deps.sh installs clang-14)"; exit 1; }
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=$(FUZZ_CC) -DCMAKE_BUILD_TYPE=Debug -DGLMOE_FUZZ=ON \
	    -DGLMOE_CUDA=OFF -DGLMOE_WERROR=OFF -DCMAKE_PROJECT_INCLUDE=$(CURDIR)/cmake/fuzz.cmake
	cmake --build build-fuzz --target fuzz_all -j$$(nproc)
	tests/fuzz/run_fuzzers.sh build-fuzz $(FUZZ_SECONDS)

# A subset under valgrind memcheck: no error and no definite or indirect leak (OpenMP's and
# OpenBLAS's thread pools stay "possibly lost" / "still reachable" by design). It runs a CPU-only
# build with debug info in build-valgrind/: valgrind cannot see GPU memory, and the CUDA runtime
# (and ld.so's dlopen of the driver) is not valgrind-clean. Each line is the exit status the
# command must give, then the command ($$VG is valgrind); CLI refusals exit 1 or 2 on purpose, so
# valgrind reports its own findings with status 99.
VALGRIND = valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --show-leak-kinds=definite,indirect
VALGRIND_BUILD = build-valgrind
VALGRIND_TARGETS = glmoe_cli test_config test_safetensors test_model_load test_chat test_tokenizer_api test_golden
define VALGRIND_RUNS
0 $$VG $(VALGRIND_BUILD)/tests/test_config $(CURDIR)
0 $$VG $(VALGRIND_BUILD)/tests/test_safetensors $(CURDIR)
0 $$VG $(VALGRIND_BUILD)/tests/test_model_load $(CURDIR)
0 $$VG $(VALGRIND_BUILD)/tests/test_chat $(CURDIR)
0 $$VG $(VALGRIND_BUILD)/tests/test_tokenizer_api $(CURDIR)
0 $$VG $(VALGRIND_BUILD)/tests/golden/test_golden tests/golden/odd_dims
0 $$VG $(VALGRIND_BUILD)/glmoe info -m models/glmoe-demo
0 $$VG $(VALGRIND_BUILD)/glmoe tokenize -t models/glmoe-demo --text "The State of the Union, 1863: <|user|>"
0 $$VG $(VALGRIND_BUILD)/glmoe detokenize -t models/glmoe-demo --ids 51,3258,920,267,259,1160
0 $$VG $(VALGRIND_BUILD)/glmoe generate -m models/glmoe-demo -p "The State of the Union" -n 6 --temp 0.8 --top-p 0.95 --seed 1
0 printf 'Hello\n/quit\n' | $$VG $(VALGRIND_BUILD)/glmoe chat -m models/glmoe-demo -n 4 --seed 1
0 $$VG $(VALGRIND_BUILD)/glmoe logits -m tests/golden/odd_dims --ids 1,2,3 -o /dev/null
1 $$VG $(VALGRIND_BUILD)/glmoe info -m tests/fuzz
2 $$VG $(VALGRIND_BUILD)/glmoe generate -m models/glmoe-demo --ids 1,x,3
endef
export VALGRIND_RUNS
valgrind:
	@command -v valgrind >/dev/null || { echo "make valgrind: valgrind not found (tools/install_deps.sh installs it)"; exit 1; }
	cmake -S . -B $(VALGRIND_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGLMOE_CUDA=OFF
	cmake --build $(VALGRIND_BUILD) -j$$(nproc) --target $(VALGRIND_TARGETS)
	@printf "%s\n" "$$VALGRIND_RUNS" | { \
	    failed=0; \
	    while read -r want cmd; do \
	        [ -n "$$cmd" ] || continue; \
	        VG="$(VALGRIND)"; \
	        eval "$$cmd" </dev/null >/tmp/glmoe-valgrind.$$$$.out 2>&1; rc=$$?; \
	        if [ "$$rc" -eq "$$want" ]; then printf 'valgrind ok: %s\n' "$$cmd"; \
	        else printf 'valgrind FAILED (exit %s, want %s): %s\n' "$$rc" "$$want" "$$cmd"; \
	            cat /tmp/glmoe-valgrind.$$$$.out; failed=1; fi; \
	    done; \
	    rm -f /tmp/glmoe-valgrind.$$$$.out; exit $$failed; }

clean:
	rm -rf build build-nocuda build-asan build-tsan build-fuzz build-valgrind
