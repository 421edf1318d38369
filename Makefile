# Thin wrapper around CMake: `make` builds build/glmoe and the library, `make test` runs ctest.
BUILD ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: all test asan clean
all: $(BUILD)/Makefile
	cmake --build $(BUILD) -j$$(nproc)

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

test: all
	cd $(BUILD) && ctest --output-on-failure -j$$(nproc)

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build folder.
asan:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DCMAKE_BUILD_TYPE=Debug -DGLMOE_SANITIZE=ON"

clean:
	rm -rf build build-asan
