# aigw: `make demo` runs the main job on embedded defaults, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DB     := data/aigw.duckdb

.DEFAULT_GOAL := help
.PHONY: help demo test lint typecheck pytest bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.installed-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/.installed $@

demo: $(BIN)/.installed ## Ingest sample_data/ into ./data/aigw.duckdb and print spend by provider and model
	@echo "== aigw ingest sample_data/logs --db $(DB)"
	@$(BIN)/aigw ingest sample_data/logs --db $(DB)
	@echo "== spend by provider and model (aigw sql)"
	@$(BIN)/aigw sql --db $(DB) "SELECT provider, model, count(*) AS requests, \
	    sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out, \
	    round(sum(cost), 4) AS cost_usd FROM requests GROUP BY ALL ORDER BY cost_usd DESC NULLS LAST"

test: lint typecheck pytest ## Lint, type-check and run the whole test suite

lint: $(BIN)/.installed-dev ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed-dev ## mypy --strict over the packages
	$(BIN)/mypy

pytest: $(BIN)/.installed-dev ## The pytest suite (real S3 API server, real DuckDB files)
	$(BIN)/pytest

bench: $(BIN)/.installed ## Ingest benchmark (1,000,000 records; see README, Performance)
	$(BIN)/python bench/ingest.py

clean: ## Remove the venv, the demo warehouse and caches
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
