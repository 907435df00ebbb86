# aigw: `make demo` runs the main job on embedded defaults, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DB     := data/aigw.duckdb

.DEFAULT_GOAL := help
.PHONY: help demo test lint typecheck pytest browser bench bench-models bench-dashboard clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

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

demo: $(BIN)/.installed ## Ingest sample logs and 8 days of demo traffic; print reports; open the dashboard
	@echo "== aigw ingest sample_data/logs (Logpush and REST samples)"
	@$(BIN)/aigw ingest sample_data/logs --db $(DB)
	@echo "== aigw ingest data/demo-traffic (8 days of generated traffic with a runaway agent)"
	@$(BIN)/python sample_data/generate.py --traffic data/demo-traffic
	@$(BIN)/aigw ingest data/demo-traffic --db $(DB)
	@echo "== effective spend by provider and model (aigw report cost)"
	@$(BIN)/aigw report cost --db $(DB) --by provider,model
	@echo "== spend per team and day, top 3 (aigw report cost --by team --grain day --top 3)"
	@$(BIN)/aigw report cost --db $(DB) --by team --grain day --top 3 --since 2026-11-17
	@echo "== logged vs recomputed cost (aigw report reconcile)"
	@$(BIN)/aigw report reconcile --db $(DB)
	@echo "== runaway agents (aigw report anomalies)"
	@$(BIN)/aigw report anomalies --db $(DB) --now 2026-11-20T00:00:00 --hours 48
	@echo "== month-end forecast (aigw report forecast)"
	@$(BIN)/aigw report forecast --db $(DB) --now 2026-11-20T13:00:00
	@echo "== cache (aigw report cache)"
	@$(BIN)/aigw report cache --db $(DB) --candidates 3
	@echo "== FinOps FOCUS export (aigw export focus)"
	@$(BIN)/aigw export focus data/focus.parquet --db $(DB)
	@echo "== budget and anomaly alerts to data/outbox (aigw alerts run)"
	@$(BIN)/aigw alerts run --budgets sample_data/budgets.toml --db $(DB) --now 2026-11-19T23:00:00
	@echo "== what ingest kept aside (aigw sql)"
	@$(BIN)/aigw sql --db $(DB) "SELECT status, count(*) AS objects, sum(rows_loaded) AS rows, \
	    sum(rows_duplicate) AS duplicates, sum(rows_rejected) AS rejected FROM ingest_files GROUP BY ALL"
	@echo "== the dashboards on http://127.0.0.1:8501 (aigw dashboard; Ctrl-C to stop)"
	@$(BIN)/aigw dashboard --db $(DB) --budgets sample_data/budgets.toml --host 127.0.0.1 --port 8501

test: lint typecheck pytest ## Lint, type-check and run the whole test suite

lint: $(BIN)/.installed-dev ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed-dev ## mypy --strict over the packages
	$(BIN)/mypy

pytest: $(BIN)/.installed-dev browser ## The pytest suite (real S3 API server, real DuckDB files)
	$(BIN)/pytest

# The dashboard's end-to-end test drives Debian's chromium through Playwright's driver
# (never `playwright install`); where apt cannot install it, that one test is skipped.
browser: ## Install Debian's chromium for the dashboard's end-to-end test (when apt can)
	@command -v chromium >/dev/null 2>&1 || { \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
	    { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium; } \
	    || echo "no chromium: the dashboard's end-to-end test will be skipped"; }

bench: $(BIN)/.installed ## Ingest benchmark (1,000,000 records; see README, Performance)
	$(BIN)/python bench/ingest.py

bench-models: $(BIN)/.installed ## Models benchmark (10,000,000 requests; see README, Performance)
	$(BIN)/python bench/models.py

bench-dashboard: $(BIN)/.installed-dev browser ## Dashboard page render times (10,000,000 requests; see README)
	$(BIN)/python bench/dashboard.py

clean: ## Remove the venv, the demo warehouse and caches
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
