# Thin wrapper over CMake. `make run` and `make test` each install what they need first.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# CI builds treat warnings as errors (DESIGN.md §6); by hand they stay warnings.
CMAKE_FLAGS ?= $(if $(CI),-DFG_WERROR=ON)

.PHONY: all build deps run test test-asan test-asan-only clean

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

# The suite twice: as built, then under AddressSanitizer + UndefinedBehaviorSanitizer, so a
# memory error anywhere fails `make test` (and CI) rather than waiting for someone to ask.
test: deps
	@$(MAKE) --no-print-directory build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory test-asan-only

# The sanitizer half alone, without re-checking dependencies.
test-asan: deps
	@$(MAKE) --no-print-directory test-asan-only

test-asan-only:
	@$(MAKE) --no-print-directory build BUILD=build-asan CMAKE_FLAGS="-DFG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)"
	cd build-asan && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) build-asan
