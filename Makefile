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

demo: $(BIN)/.installed ## Ingest sample_data/ into ./data/aigw.duckdb and print spend reports
	@echo "== aigw ingest sample_data/logs --db $(DB)"
	@$(BIN)/aigw ingest sample_data/logs --db $(DB)
	@echo "== effective spend by provider and model (aigw report cost)"
	@$(BIN)/aigw report cost --db $(DB) --by provider,model
	@echo "== top 3 teams (aigw report cost --by team --top 3)"
	@$(BIN)/aigw report cost --db $(DB) --by team --top 3
	@echo "== logged vs recomputed cost (aigw report reconcile)"
	@$(BIN)/aigw report reconcile --db $(DB)
	@echo "== what ingest kept aside (aigw sql)"
	@$(BIN)/aigw sql --db $(DB) "SELECT status, count(*) AS objects, sum(rows_loaded) AS rows, \
	    sum(rows_duplicate) AS duplicates, sum(rows_rejected) AS rejected FROM ingest_files GROUP BY ALL"

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
