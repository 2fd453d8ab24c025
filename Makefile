# Tally — `make run` serves on the embedded SQLite default; `make test` runs the whole suite.
# Both install what is missing first (Debian packages via apt-get; sudo only when not root).

SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := libsqlite3-dev libzstd-dev zlib1g-dev pkg-config zstd sqlite3 curl python3
# Only the test suite needs a PostgreSQL server (it starts a throwaway one) and a browser.
TEST_PACKAGES := postgresql wrk chromium chromium-driver python3-venv
# Python test tools from PyPI, in a virtual environment of their own.
VENV := .build/venv
SWIFT ?= swift
DATA_DIR ?= ./data
FUZZ_SECONDS ?= 60

.PHONY: deps test-deps install-packages build run test test-unit fuzz fuzz-long bench crash-test clean

deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(DEB_PACKAGES)"

test-deps: deps
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(TEST_PACKAGES)"
	@$(VENV)/bin/python -c "import selenium, schemathesis" 2>/dev/null || { python3 -m venv $(VENV) && $(VENV)/bin/pip install -q selenium schemathesis; }

install-packages:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@command -v $(SWIFT) >/dev/null || { echo "swift not found on PATH (expected the Swift 6 toolchain)"; exit 1; }

build: deps
	$(SWIFT) build -c release

run: build
	.build/release/tally serve --data-dir $(DATA_DIR)

# The suite runs against a real PostgreSQL (started here, stopped afterwards) as well as SQLite.
test: test-deps
	$(SWIFT) build --build-tests
	@url="$$(scripts/pg-test-server.sh start)"; echo "test PostgreSQL at $$url"; \
	TALLY_TEST_POSTGRES="$$url" $(SWIFT) test --skip-build 2>&1 | tee .build/swift-test.log; status=$${PIPESTATUS[0]}; \
	scripts/pg-test-server.sh stop; exit $$status
	TALLY_BIN=.build/debug/tally scripts/crash-test.sh --kills $(if $(CI),5,10) --purge 100000
	$(VENV)/bin/python scripts/browser_test.py --binary .build/debug/tally
	scripts/api_test.sh --binary .build/debug/tally
	# Memory and latency bounds hold for what users run: the release build.
	$(SWIFT) build -c release --product tally
	set -o pipefail; scripts/hostile_test.py --binary .build/release/tally | tee .build/hostile-test.log
	$(MAKE) fuzz FUZZ_SECONDS=$(if $(CI),15,$(FUZZ_SECONDS))
	@n=$$(grep -aoE "Test run with [0-9]+ tests" .build/swift-test.log | grep -oE "[0-9]+" | tail -n 1); \
	h=$$(grep -aoE "hostile: [0-9]+ passed" .build/hostile-test.log | grep -oE "[0-9]+"); \
	echo "make test: swift test ($$n tests), crash test, browser test, API schema test, hostile clients ($$h checks) and fuzz all passed"; \
	echo "tally: $$((n + h + 4)) passed, 0 failed"

test-unit: deps
	$(SWIFT) test --skip TallyEndToEndTests

# libFuzzer on the wire decoder and the JSON body reader (Tests/Fuzz), FUZZ_SECONDS each.
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

# Each harness for 10 million executions (not in CI; the README quotes the last run).
fuzz-long: deps
	scripts/fuzz.sh --runs 10000000

bench: test-deps
	scripts/bench.sh

# kill -9 under durable-ack load, 20 times, then check every acked event is stored once.
crash-test: build
	scripts/crash-test.sh --kills 20

# Build output only: the data directory holds collected events and is never touched.
clean:
	rm -rf .build .build-*
