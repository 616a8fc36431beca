# Thin wrapper over CMake. `make run` and `make test` each install what they need first.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# CI builds treat warnings as errors (DESIGN.md §6); by hand they stay warnings.
CMAKE_FLAGS ?= $(if $(CI),-DFG_WERROR=ON)

.PHONY: all build deps run test test-asan test-asan-only test-fuzz test-fuzz-only clean

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
# memory error anywhere fails `make test` (and CI) rather than waiting for someone to ask;
# then each fuzz target for a bounded time (test-fuzz).
test: deps
	@$(MAKE) --no-print-directory build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory test-asan-only
	@$(MAKE) --no-print-directory test-fuzz-only

# The sanitizer half alone, without re-checking dependencies.
test-asan: deps
	@$(MAKE) --no-print-directory test-asan-only

test-asan-only:
	@$(MAKE) --no-print-directory build BUILD=build-asan CMAKE_FLAGS="-DFG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)"
	cd build-asan && ctest --output-on-failure -j $(JOBS)

# The libFuzzer targets (clang, tests/fuzz/), each run from its seed corpus for a bounded
# number of inputs or FUZZ_SECONDS, whichever ends first; a crash, leak or sanitizer report
# fails. New inputs it finds stay in build-fuzz/tests/fuzz-corpus/ for the next run.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = fuzz_snapshot fuzz_config_json fuzz_yaml fuzz_http1

test-fuzz: deps
	@$(MAKE) --no-print-directory test-fuzz-only

test-fuzz-only:
	CC=clang cmake -S . -B build-fuzz -DFG_FUZZ=ON -DFG_FUZZ_SECONDS=$(FUZZ_SECONDS) $(CMAKE_FLAGS)
	cmake --build build-fuzz -j $(JOBS) --target $(FUZZ_TARGETS)
	cd build-fuzz && ctest -L fuzz --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
