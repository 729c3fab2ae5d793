# EVA-00 Sync. `make setup` once, then `make demo` (everything on the embedded simulator) or
# `make up` / `make status` / `make down`. `make test` runs the whole test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup up down status test test-fast lint full-sync demo bench chaos db-init clean

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "eva00 needs Python 3.11 or newer"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,dev]'
	@touch $(STAMP)

setup: $(STAMP)

up: setup
	$(BIN)/eva00 up

down: setup
	$(BIN)/eva00 down

status: setup
	@$(BIN)/eva00 ps; echo; $(BIN)/eva00 backlog || true

db-init: setup
	$(BIN)/eva00 db init

test: setup
	$(BIN)/pytest -q

test-fast: setup
	$(BIN)/pytest -q tests/unit

lint: setup
	$(BIN)/ruff check eva00 processes tests
	$(BIN)/mypy eva00 processes

# FULL_SYNC_ARGS: e.g. "--project 10001 --phase 2" or "--new"; see `eva00 full-sync --help`.
full-sync: setup
	$(BIN)/eva00 up
	$(BIN)/eva00 full-sync --wait $(FULL_SYNC_ARGS)

# A fresh clone to a synced replica: sets up, starts the embedded stack (simulator with the standard
# data set), runs the full sync with progress bars, then prints where to look.
demo: setup
	$(BIN)/eva00 up
	$(BIN)/eva00 full-sync --wait --where

bench: setup
	$(BIN)/python -m eva00.bench

chaos: setup
	@echo "chaos: not built yet (issue 11)"; exit 2

clean:
	rm -rf $(VENV) build *.egg-info
