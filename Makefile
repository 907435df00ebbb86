# aigw: `make demo` runs the main job on embedded defaults, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DB     := data/aigw.duckdb
PORT   ?= 8501
# The demo's aigw.toml: its batch dimension (metadata key `interactive`) for the savings.
DEMO_CONFIG := sample_data/aigw.toml

.DEFAULT_GOAL := help
.PHONY: help demo test system-deps lint typecheck pytest bench bench-models bench-whatif bench-proxy bench-dashboard sample-data clean

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
	$(BIN)/pip install --quiet -e '.[dev,lake,otel]'
	touch $(BIN)/.installed $@

demo: $(BIN)/.installed ## Simulated providers + gateway + 8 days of traffic -> ./data/aigw.duckdb; reports; dashboard (PORT=8501)
	@# Checked first, so a taken port fails at once (exit 2), not after the whole demo.
	@$(BIN)/python -m app.dashboard_cli 127.0.0.1 $(PORT)
	@rm -rf $(DB) $(DB).wal data/gateway-logs data/outbox data/focus.parquet  # the demo starts afresh
	@echo "== aigw ingest sample_data/logs (Cloudflare Logpush and REST samples)"
	@$(BIN)/aigw ingest sample_data/logs --db $(DB) --config $(DEMO_CONFIG)
	@echo "== aigw simulate: simulated providers, the gateway, 12,000 calls over 8 days (the savings cases, a runaway agent, an outage)"
	@$(BIN)/aigw simulate --requests 12000 --seed 7 --out data/gateway-logs
	@echo "== aigw ingest data/gateway-logs (the gateway's own Logpush files)"
	@$(BIN)/aigw ingest data/gateway-logs --db $(DB) --config $(DEMO_CONFIG)
	@echo "== effective spend by provider and model (aigw report cost)"
	@$(BIN)/aigw report cost --db $(DB) --config $(DEMO_CONFIG) --by provider,model
	@echo "== spend per team and day, top 3 (aigw report cost --by team --grain day --top 3)"
	@$(BIN)/aigw report cost --db $(DB) --config $(DEMO_CONFIG) --by team --grain day --top 3 --since 2026-11-17 --until 2026-11-21
	@echo "== logged vs recomputed cost (aigw report reconcile)"
	@$(BIN)/aigw report reconcile --db $(DB) --config $(DEMO_CONFIG)
	@echo "== runaway agents (aigw report anomalies)"
	@$(BIN)/aigw report anomalies --db $(DB) --config $(DEMO_CONFIG) --now 2026-11-20T00:00:00 --hours 48
	@echo "== month-end forecast (aigw report forecast)"
	@$(BIN)/aigw report forecast --db $(DB) --config $(DEMO_CONFIG) --now 2026-11-20T13:00:00
	@echo "== cache (aigw report cache)"
	@$(BIN)/aigw report cache --db $(DB) --config $(DEMO_CONFIG) --candidates 3
	@echo "== what would have saved the most (aigw report savings)"
	@$(BIN)/aigw report savings --db $(DB) --config $(DEMO_CONFIG) --top 10
	@echo "== FinOps FOCUS export (aigw export focus)"
	@$(BIN)/aigw export focus data/focus.parquet --db $(DB) --config $(DEMO_CONFIG)
	@echo "== budget and anomaly alerts to data/outbox (aigw alerts run)"
	@$(BIN)/aigw alerts run --budgets sample_data/budgets.toml --db $(DB) --config $(DEMO_CONFIG) --now 2026-11-19T23:00:00
	@echo "== November showback statements per team to data/statements (aigw statement)"
	@$(BIN)/aigw statement --month 2026-11 --out data/statements --budgets sample_data/budgets.toml --db $(DB) --config $(DEMO_CONFIG)
	@echo "== a November bill for OpenAI and Anthropic (the gateway's priced traffic, plus \$$1.25 that bypassed it) checked against the gateway (aigw reconcile invoice)"
	@$(BIN)/aigw sql --db $(DB) --config $(DEMO_CONFIG) --format csv "SELECT strftime(hour, '%Y-%m-%d') AS date, provider, model, \
	    round(sum(cost_usd), 2) AS amount_usd FROM rollup_daily WHERE provider IN ('openai', 'anthropic') \
	    AND cost_source IN ('catalog', 'override') GROUP BY ALL \
	    UNION ALL SELECT '2026-11-18', 'openai', 'gpt-4o-realtime-preview', 1.25 ORDER BY 1, 2, 3" \
	    > data/invoice-2026-11.csv
	@$(BIN)/aigw reconcile invoice data/invoice-2026-11.csv --db $(DB) --config $(DEMO_CONFIG)
	@echo "== what ingest kept aside (aigw sql)"
	@$(BIN)/aigw sql --db $(DB) --config $(DEMO_CONFIG) "SELECT status, count(*) AS objects, sum(rows_loaded) AS rows, \
	    sum(rows_duplicate) AS duplicates, sum(rows_rejected) AS rejected FROM ingest_files GROUP BY ALL"
	@echo "== the dashboards on http://127.0.0.1:$(PORT) (aigw dashboard; Ctrl-C to stop)"
	@$(BIN)/aigw dashboard --db $(DB) --config $(DEMO_CONFIG) --budgets sample_data/budgets.toml --host 127.0.0.1 --port $(PORT)

test: system-deps lint typecheck pytest ## Lint, type-check and run the whole test suite

system-deps: ## Install the Debian packages the tests need (redis-server, chromium, postgresql) if missing
	@tools/system-deps.sh

lint: $(BIN)/.installed-dev ## ruff lint and format check; import-linter's floor-plan contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo --no-cache

typecheck: $(BIN)/.installed-dev ## mypy --strict over the packages
	$(BIN)/mypy

pytest: $(BIN)/.installed-dev system-deps ## The pytest suite (real S3 API server, real DuckDB files)
	$(BIN)/pytest --durations=25

# The dashboard's end-to-end test drives Debian's chromium through Playwright's driver
# (never `playwright install`); where apt cannot install it, that one test is skipped.
bench: $(BIN)/.installed ## Ingest benchmark: 1,000,000 records of 1.8 KB, then 300,000 of 550 bytes (docs/performance.md)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/ingest.py --profile small

bench-models: $(BIN)/.installed ## Models benchmark (10,000,000 requests; see README, Performance)
	$(BIN)/python bench/models.py

bench-whatif: $(BIN)/.installed ## What-if and savings benchmark (10,000,000 requests; docs/performance.md)
	$(BIN)/python bench/whatif.py

sample-data: $(BIN)/.installed ## Regenerate the committed samples (Cloudflare-shaped logs, gateway logs)
	$(BIN)/python sample_data/generate.py
	rm -rf sample_data/gateway-logs
	$(BIN)/aigw simulate --requests 3000 --seed 7 --out sample_data/gateway-logs

# LiteLLM lives in its own venv (its pins clash with ours). 1.106.12: the newest release whose
# [proxy] extra installs from PyPI here (later ones pin litellm-proxy packages not published).
LITELLM_VENV := bench/.venv-litellm
$(LITELLM_VENV)/.installed:
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install --quiet --upgrade pip
	$(LITELLM_VENV)/bin/pip install --quiet 'litellm[proxy]==1.106.12'
	touch $@

bench-proxy: $(BIN)/.installed $(LITELLM_VENV)/.installed ## Gateway benchmark: direct vs aigw vs LiteLLM, 0/50 ms provider (about 8 minutes)
	$(BIN)/python bench/proxy.py

bench-dashboard: $(BIN)/.installed-dev system-deps ## Dashboard page render times (10,000,000 requests; see README)
	$(BIN)/python bench/dashboard.py

clean: ## Remove the venv, the demo warehouse and caches
	rm -rf $(VENV) $(LITELLM_VENV) data .pytest_cache .mypy_cache .ruff_cache
