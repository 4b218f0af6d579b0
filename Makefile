# Lambdock: the two quick-start commands are `make up` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
RIE := target/release/lambdock-rie

.PHONY: setup build rie-static check-static up test fmt-check clippy unit-and-integration system bench

## Installs everything the project needs on a fresh Debian machine (idempotent).
setup:
	bash scripts/setup.sh

## Release binaries; lambdock-rie is linked statically so it runs in any image.
build: setup rie-static
	$(CARGO) build --release --workspace --exclude lambdock-rie

rie-static:
	$(CARGO) rustc --release -p lambdock-rie --bin lambdock-rie -- -C target-feature=+crt-static -C relocation-model=static

check-static: rie-static
	@ldd $(RIE) 2>&1 | grep -Eq 'not a dynamic executable|statically linked' \
		|| { echo "$(RIE) is dynamically linked:"; ldd $(RIE); exit 1; }
	@echo "$(RIE) is statically linked"

## Builds and runs `lambdock up` with the example app (examples/app/template.yaml).
up: build
	bash scripts/up.sh

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit-and-integration:
	$(CARGO) build --workspace --all-targets
	$(CARGO) nextest run --workspace --no-fail-fast --test-threads 4

## Whole-system tests: `lambdock up` driven by boto3 and the AWS CLI.
system:
	$(CARGO) build -p lambdock -p lambdock-rie -p lambdock-fixture-rust -p lambdock-example-items
	cd tests && ../.venv/bin/python -m pytest -q -p no:cacheprovider

## Every check and test.
test: setup fmt-check clippy check-static unit-and-integration system

## Benchmarks against AWS's own RIE, measured in the same run.
bench: setup rie-static
	$(CARGO) build --release -p lambdock-fixture-rust -p lambdock-bench -p lambdock
	target/release/lambdock-bench
