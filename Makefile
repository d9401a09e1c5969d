# chatrpc: every target sets up what it needs (venv, packages, system tools).
SHELL := /bin/bash
PYTHON ?= python3
comma := ,
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-stamp
PROTO := proto/chatrpc/v1/chat.proto proto/chatrpc/v1/admin.proto
HOST ?= 127.0.0.1
PORT ?= 50051

.PHONY: screenshots venv run proto proto-check system-deps test soak check lint fmt bench clean certs

# The oldest Python chatrpc supports (pyproject's requires-python says the same).
MIN_PYTHON := 3.11

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < ($(subst .,$(comma),$(MIN_PYTHON)),))' 2>/dev/null || \
		{ echo "chatrpc needs Python $(MIN_PYTHON) or newer; $(PYTHON) is $$($(PYTHON) --version 2>/dev/null || echo "not found"): run make with PYTHON=python3.11 (or newer)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,redis,metrics]'
	touch $(STAMP)

venv: $(STAMP)

# The ready line names the web app's URL to open (http://$(HOST):$(WEB_PORT)/).
WEB_PORT ?= 8080
run: $(STAMP)
	$(BIN)/chatrpc-server --host $(HOST) --port $(PORT) --web-port $(WEB_PORT)

# Development TLS material in $(CERTS): a CA, a server cert for localhost/127.0.0.1/::1
# and a client cert for mutual TLS (uses the openssl command).
CERTS ?= certs
certs: $(STAMP)
	@command -v openssl >/dev/null || { echo "make certs needs the openssl command"; exit 1; }
	$(PY) -m chatrpc.certs $(CERTS)

# Regenerate chatrpc/v1 from the proto (messages, gRPC stubs, mypy stubs).
define protoc
	PATH="$(abspath $(BIN)):$$PATH" $(PY) -m grpc_tools.protoc -Iproto \
		--python_out=$(1) --grpc_python_out=$(1) --mypy_out=$(1) --mypy_grpc_out=$(1) $(PROTO)
endef

proto: $(STAMP)
	$(call protoc,.)

# Fails when the committed generated code differs from what the proto gives.
proto-check: $(STAMP)
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(call protoc,$$tmp) && \
	for f in chat_pb2.py chat_pb2.pyi chat_pb2_grpc.py chat_pb2_grpc.pyi \
		admin_pb2.py admin_pb2.pyi admin_pb2_grpc.py admin_pb2_grpc.pyi; do \
		diff -u "chatrpc/v1/$$f" "$$tmp/chatrpc/v1/$$f" || { echo "chatrpc/v1/$$f is out of date: run 'make proto'"; exit 1; }; \
	done; echo "generated code is in sync with $(PROTO)"

# Tools the tests drive for real: tmux (terminal client), redis-server (multi-node),
# Debian's chromium (the browser client, driven by Playwright: never `playwright
# install`) and node (the browser client's pure modules, node --test).
# Each is COMMAND:PACKAGE.
SYSTEM_DEPS := tmux:tmux redis-server:redis-server /usr/bin/chromium:chromium node:nodejs
system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do command -v $${dep%%:*} >/dev/null || missing="$$missing $${dep##*:}"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q$$missing; \
	fi

test: $(STAMP) system-deps proto-check
	$(PY) -m pytest

# chatrpc against a raw grpcio fan-out baseline, in one run (a few minutes); not part of test.
BENCH_ARGS ?=
bench: $(STAMP) system-deps
	$(PY) bench/run.py $(BENCH_ARGS)

# The README's screenshots of the browser client (docs/web-*.png) and the app's icons.
screenshots: $(STAMP) system-deps
	$(PY) -m tests.screenshots

# The loss checker for longer (SOAK_SECONDS, default 60), outside make test.
SOAK_SECONDS ?= 60
soak: $(STAMP)
	CHATRPC_SOAK_SECONDS=$(SOAK_SECONDS) $(PY) -m pytest tests/test_durability.py -k loss_checker -v

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: lint
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
