# The two commands of the README. Both install what they need (Debian packages), configure and build.
#   make run   build and run netprobe on config/default.yaml (probes loopback; metrics on 127.0.0.1:8000)
#   make test  build and run the whole test suite (unit, component, integration in network namespaces)
BUILD ?= build
CONFIG ?= config/default.yaml
JOBS ?= $(shell nproc)

.PHONY: deps build run test bench clean

deps:
	@bash packaging/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/netprobe run $(CONFIG)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

clean:
	rm -rf $(BUILD)
