# The two commands of the README. Both install what they need (Debian packages), configure and build.
#   make run   build and run netprobe on config/default.yaml (probes loopback; metrics on 127.0.0.1:8000)
#   make test  build and run the whole test suite (unit, component, integration in network namespaces)
BUILD ?= build
CONFIG ?= config/default.yaml
JOBS ?= $(shell nproc)

# ccache keys on paths relative to the checkout, so a fresh clone (CI) reuses what another checkout built.
export CCACHE_BASEDIR := $(CURDIR)
ASAN_BUILD ?= build-asan
FUZZ_SECONDS ?= 5

.PHONY: deps build run test check-format test-asan fuzz-smoke bench clean

deps:
	@bash packaging/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/netprobe run $(CONFIG)

# CI (.ci/run) runs exactly this: formatting, a warnings-as-errors build and the whole suite, the unit and
# component tests again under ASan + UBSan, and a short run of every fuzz target (docs/testing.md#ci).
test: deps check-format
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNETPROBE_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	@$(MAKE) --no-print-directory test-asan fuzz-smoke

# The repository's .clang-format is the style; a difference fails CI (fix: clang-format -i FILE).
check-format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run -Werror
	@echo "format: clean"

# Not -Werror here: GCC's flow warnings (-Wmaybe-uninitialized) give false positives under the sanitizers'
# instrumentation; the main build above is the warnings gate. -O1 -g1 (the usual sanitizer setting: line
# tables for the reports, half the compile time of -O2 -g) and no NDEBUG.
test-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
	  -DNETPROBE_WERROR=OFF -DNETPROBE_SANITIZE=address,undefined -DNETPROBE_BUILD_BENCH=OFF \
	  -DNETPROBE_CHECK_HEADERS=OFF >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j$(JOBS) -L 'unit|component'

fuzz-smoke: deps
	fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
