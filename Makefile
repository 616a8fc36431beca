# Thin wrapper over CMake. `make run` and `make test` each install what they need first.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# CI builds treat warnings as errors (DESIGN.md §6); by hand they stay warnings.
CMAKE_FLAGS ?= $(if $(CI),-DFG_WERROR=ON)

.PHONY: all build deps run test test-asan clean

all: build

deps:
	@deploy/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# Control plane on embedded SQLite, two data planes and a demo upstream, in the foreground.
run: deps
	@$(MAKE) --no-print-directory build
	@deploy/run.sh $(BUILD)

test: deps
	@$(MAKE) --no-print-directory build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps
	@$(MAKE) --no-print-directory build BUILD=build-asan CMAKE_FLAGS="-DFG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"
	cd build-asan && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) build-asan
