# opengate — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# `make run PORT=8080 HOST=0.0.0.0` serves elsewhere.
HOST   ?= 127.0.0.1
PORT   ?= 8000
# Re-install when the project or its C extension changes (setup.py compiles it).
BUILD_INPUTS := pyproject.toml setup.py native/sha256.h policies/_pseudonym.c audit/_chain.c
STAMP  := $(VENV)/.installed-$(shell cat $(BUILD_INPUTS) | cksum | cut -d' ' -f1)

.PHONY: install run test lint format bench clean

$(STAMP): $(BUILD_INPUTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## Set up, load the Qingdao demo catalog and serve it on http://$(HOST):$(PORT)
run: $(STAMP)
	$(BIN)/opengate demo --host $(HOST) --port $(PORT)

## Set up and run the whole test suite (SQLite always; PostgreSQL when it answers)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Benchmarks (need wrk: apt-get install wrk); see docs/performance.md
bench: $(STAMP)
	$(BIN)/python -m bench.records_vs_bare

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
