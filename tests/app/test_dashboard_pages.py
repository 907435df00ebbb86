"""Every dashboard page under Streamlit's AppTest on a real warehouse: no exception, and
the numbers a user reads equal what the models (and ``aigw report``) compute."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from alerts import load_alerts_config
from alerts.evaluate import budget_alerts
from app.dashboard.ui import CATEGORY_COLORS, count, ms, pct, usd, usd_exact
from app.service import anomaly_report, cache_report, cost_report, forecast_report
from ingest import open_warehouse
from models import ModelsSettings, read_rollup
from tests.app.dashboard_fixtures import ENTRY, DashboardWarehouse

SETTINGS = ModelsSettings()


@pytest.fixture
def app(
    dashboard_warehouse: DashboardWarehouse, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AppTest]:
    """The dashboard's entry script, pointed at the test warehouse, after one run."""
    monkeypatch.setenv("AIGW_DB", str(dashboard_warehouse.db))
    monkeypatch.setenv("AIGW_BUDGETS", str(dashboard_warehouse.budgets))
    monkeypatch.delenv("AIGW_CONFIG", raising=False)
    monkeypatch.delenv("AIGW_NOW", raising=False)
    monkeypatch.chdir(dashboard_warehouse.db.parent)
    test = AppTest.from_file(ENTRY, default_timeout=60)
    yield test


def _open(app: AppTest, page: str, **params: str) -> AppTest:
    app.query_params.update(params)
    app.switch_page(f"views/{page}.py").run()  # as a shared link opens the page
    assert not app.exception, [error.message for error in app.exception]
    return app


def _metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def _dollars(text: str) -> float:
    return float(text.removeprefix("$").replace(",", ""))


def _span(db: DashboardWarehouse) -> tuple[datetime, datetime, datetime]:
    """(first day, the day after the last, as of) as the dashboard's defaults compute them."""
    con = duckdb.connect(str(db.db), read_only=True)
    try:
        first, last = con.execute("SELECT min(hour), max(hour) FROM rollup_hourly").fetchone()  # type: ignore[misc]
    finally:
        con.close()
    first, last = first.astimezone(UTC), last.astimezone(UTC)
    since = first.replace(hour=0)
    until = last.replace(hour=0) + timedelta(days=1)
    return since, until, last + timedelta(hours=1)


def test_overview_shows_month_to_date_forecast_and_range_totals_of_the_models(
    app: AppTest, dashboard_warehouse: DashboardWarehouse
) -> None:
    _open(app, "overview")
    shown = _metrics(app)
    since, until, as_of = _span(dashboard_warehouse)
    forecast = forecast_report(dashboard_warehouse.db, SETTINGS, now=as_of).row(0, named=True)
    report = cost_report(dashboard_warehouse.db, SETTINGS, by=[], since=since, until=until)
    total = report.table.row(0, named=True)
    assert shown["Spend month to date (November 2026, UTC)"] == usd(forecast["mtd_usd"])
    assert shown["Forecast month end (daily trend)"] == usd(forecast["projected_usd"])
    assert shown["Spend"] == usd(total["cost_usd"])
    assert shown["Requests"] == count(total["requests"])
    assert shown["Tokens (in + out)"] == count(total["tokens_in"] + total["tokens_out"])
    assert shown["Cache hit rate"] == pct(total["cached_requests"] / total["requests"])
    assert shown["Cache savings"] == usd(total["saved_usd"])
    assert shown["Error rate"] == pct(total["errors"] / total["requests"])
    con = duckdb.connect(str(dashboard_warehouse.db), read_only=True)
    p95 = con.execute(
        "SELECT quantile_cont(duration_ms, 0.95) FROM requests WHERE ts >= ? AND ts < ?",
        [since, until],
    ).fetchone()[0]  # type: ignore[index]
    con.close()
    assert shown["p95 latency"] == ms(p95)
    assert shown["Budget monthly-total"] == "$40.00"
    assert app.query_params["from"] == since.date().isoformat()
    assert app.query_params["to"] == (until - timedelta(days=1)).date().isoformat()


def test_cost_attribution_follows_the_url_filters_and_matches_aigw_report_cost(
    app: AppTest, dashboard_warehouse: DashboardWarehouse
) -> None:
    _open(app, "attribution", provider="anthropic", by="team", **{"from": "2026-11-02"})
    shown = _metrics(app)
    since = datetime(2026, 11, 2, tzinfo=UTC)
    _, until, _ = _span(dashboard_warehouse)
    report = cost_report(
        dashboard_warehouse.db,
        SETTINGS,
        by=["team"],
        since=since,
        until=until,
        filters={"provider": "anthropic"},
    ).table
    assert shown["Total spend, 4 values of team"] == usd(report["cost_usd"].sum())
    top_team = app.selectbox(key="drill_value").value
    expected = report.filter(pl.col("team") == top_team)["cost_usd"][0]
    assert shown[f"Spend of team = {top_team}"] == usd(expected)
    assert app.selectbox(key="f_provider").value == "anthropic"
    assert app.query_params["by"] == "team"
    assert app.query_params["provider"] == "anthropic"
    assert len(app.get("download_button")) == 1


def test_a_filter_changed_in_the_sidebar_lands_in_the_url_and_the_numbers(
    app: AppTest, dashboard_warehouse: DashboardWarehouse
) -> None:
    _open(app, "overview")
    app.selectbox(key="f_model").set_value("gpt-4o").run()
    since, until, _ = _span(dashboard_warehouse)
    report = cost_report(
        dashboard_warehouse.db,
        SETTINGS,
        by=[],
        since=since,
        until=until,
        filters={"model": "gpt-4o"},
    ).table
    assert app.query_params["model"] == "gpt-4o"
    assert _metrics(app)["Spend"] == usd(report["cost_usd"][0])


def test_cache_page_shows_the_cache_reports_ratios_savings_and_candidates(
    app: AppTest, dashboard_warehouse: DashboardWarehouse
) -> None:
    _open(app, "cache")
    shown = _metrics(app)
    since, until, as_of = _span(dashboard_warehouse)
    summary = cache_report(dashboard_warehouse.db, SETTINGS, by=[], since=since, until=until)
    row = summary.summary.row(0, named=True)
    assert shown["Hit rate (requests)"] == pct(row["request_hit_ratio"])
    assert shown["Savings"] == usd(row["saved_usd"])
    assert shown["Hit rate (cost)"] == pct(row["cost_hit_ratio"])
    window = cache_report(
        dashboard_warehouse.db,
        SETTINGS,
        by=[],
        since=min(until, as_of) - timedelta(hours=12),
        until=min(until, as_of),
        candidates=20,
    ).candidates
    assert window.height > 0
    assert shown["Potential saving (top 20)"] == usd(window["potential_saving_usd"].sum())


def test_anomalies_page_flags_what_aigw_report_anomalies_flags(
    app: AppTest, dashboard_warehouse: DashboardWarehouse
) -> None:
    _open(app, "anomalies")
    _, _, as_of = _span(dashboard_warehouse)
    flags = anomaly_report(
        dashboard_warehouse.db, SETTINGS, scope="agent", now=as_of, window=timedelta(hours=24)
    )
    assert flags.height > 0
    assert set(flags["value"].to_list()) == {"summarizer"}
    assert _metrics(app)["Flags"] == f"{flags.height:,}"
    assert len(app.get("vega_lite_chart")) == 2  # spend per agent, and summarizer's band


def test_budgets_page_counts_spend_and_forecast_as_alerts_run_does(
    app: AppTest, dashboard_warehouse: DashboardWarehouse
) -> None:
    _open(app, "budgets")
    shown = [(metric.label, metric.value) for metric in app.metric]
    _, _, as_of = _span(dashboard_warehouse)
    config = load_alerts_config(
        dashboard_warehouse.budgets, dimensions=SETTINGS.all_dimensions, environ={}
    )
    with open_warehouse(dashboard_warehouse.db, read_only=True) as warehouse:
        rollup = read_rollup(warehouse.con, since=as_of - timedelta(days=40), until=as_of)
        expected = budget_alerts(rollup, config.budgets[0], now=as_of, tz="UTC")[0]
    assert shown[0] == ("Spent", usd(expected.spent_usd))
    assert shown[2] == ("Forecast for the period (straight line)", usd(expected.forecast_usd))
    con = duckdb.connect(str(dashboard_warehouse.db), read_only=True)
    delivered = con.execute(
        "SELECT count(*) FROM alert_deliveries WHERE status = 'delivered'"
    ).fetchone()[0]  # type: ignore[index]
    con.close()
    assert delivered > 0
    assert ("Deliveries delivered", f"{delivered:,}") in shown


def test_policy_page_counts_each_kind_of_event_and_never_shows_bodies(
    app: AppTest, dashboard_warehouse: DashboardWarehouse
) -> None:
    _open(app, "policy")
    shown = _metrics(app)
    con = duckdb.connect(str(dashboard_warehouse.db), read_only=True)
    counts = con.execute(
        "SELECT count(*) FILTER (guardrail_action IS NOT NULL), "
        "count(*) FILTER (dlp_action IS NOT NULL), "
        "count(*) FILTER (rate_limited OR status_code = 429), count(*) FILTER (step > 0) "
        "FROM requests"
    ).fetchone()
    con.close()
    assert counts is not None and min(counts) > 0
    assert [
        shown[label] for label in ("Guardrail", "DLP", "Rate limited", "Failover attempts")
    ] == [f"{number:,}" for number in counts]
    recent = app.dataframe[-1].value
    assert "request_body" not in recent.columns and "response_body" not in recent.columns
    assert len(recent) == 50


def test_request_explorer_opens_a_request_with_its_cost_breakdown(
    app: AppTest, dashboard_warehouse: DashboardWarehouse
) -> None:
    con = duckdb.connect(str(dashboard_warehouse.db), read_only=True)
    log_id, tokens_in, tokens_out, cost = con.execute(
        "SELECT log_id, tokens_in, tokens_out, cost FROM requests "
        "WHERE provider = 'openai' AND model = 'gpt-4o' AND status_code = 200 AND NOT cached "
        "AND step = 1 ORDER BY ts LIMIT 1"
    ).fetchone()  # type: ignore[misc]
    con.close()
    _open(app, "explorer", id=log_id, status="failover")
    shown = _metrics(app)
    assert app.query_params["id"] == log_id
    assert shown["Tokens in / out"] == f"{tokens_in:,} / {tokens_out:,}"
    # gpt-4o at $2.50 / $10.00 per million tokens (the catalogue's price)
    # shown to the millionth of a dollar: equal to the price within half of one
    assert _dollars(shown["Effective cost"]) == pytest.approx(
        tokens_in * 2.5e-6 + tokens_out * 10e-6, abs=5.01e-7
    )
    breakdown = app.table[0].value
    assert _dollars(breakdown["input"].iloc[0]) == pytest.approx(tokens_in * 2.5e-6, abs=5.01e-7)
    assert _dollars(breakdown["output"].iloc[0]) == pytest.approx(tokens_out * 10e-6, abs=5.01e-7)
    assert breakdown["logged by the gateway"].iloc[0] == usd_exact(cost)
    found = app.dataframe[0].value
    assert (found["step"] > 0).all()


def test_data_health_shows_the_manifest_rejects_failures_and_the_gate_run(
    app: AppTest, dashboard_warehouse: DashboardWarehouse
) -> None:
    """The manifest, rejects and failed objects, and the quality gate's run of the load."""
    _open(app, "health")
    shown = _metrics(app)
    assert shown["Objects loaded"] == "8"
    assert shown["Objects failed"] == "1"
    assert shown["Rows loaded"] == f"{12_000:,}"
    assert shown["Rejected records"] == "1"
    assert (shown["Quality runs"], shown["Failed runs"], shown["Critical failures"]) == (
        "1",
        "0",
        "0",
    )


def test_data_health_lists_quality_runs_when_the_gate_recorded_some(
    dashboard_warehouse: DashboardWarehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "aigw.duckdb"
    shutil.copy(dashboard_warehouse.db, db)
    con = duckdb.connect(str(db))
    con.execute(
        "INSERT INTO quality_runs VALUES "
        "('run-1', '2026-11-09 05:00:00+00', '2026-11-09 05:00:01+00', 'logs', ['a', 'b'], "
        "1500, 'quarantine', FALSE, 2, 1, '[]'), "
        "('run-2', '2026-11-09 06:00:00+00', '2026-11-09 06:00:01+00', 'logs', ['c'], "
        "900, 'quarantine', TRUE, 0, 0, '[]')"
    )
    con.close()
    monkeypatch.setenv("AIGW_DB", str(db))
    monkeypatch.delenv("AIGW_BUDGETS", raising=False)
    app = AppTest.from_file(ENTRY, default_timeout=60)
    _open(app, "health")
    shown = _metrics(app)
    assert (shown["Quality runs"], shown["Failed runs"], shown["Critical failures"]) == (
        "3",  # the two above and the gate's own run of the fixture's load
        "1",
        "2",
    )
    runs = app.dataframe[2].value
    assert list(runs["rows_checked"]) == [12_000, 900, 1500]  # newest first


def test_anomalies_page_draws_every_flagged_value_including_traffic_without_one(
    app: AppTest, dashboard_warehouse: DashboardWarehouse
) -> None:
    _open(app, "anomalies")
    app.selectbox(key="hours").set_value(168).run()
    app.number_input(key="min_score").set_value(1.0).run()
    assert not app.exception, [error.message for error in app.exception]
    _, _, as_of = _span(dashboard_warehouse)
    flags = anomaly_report(
        dashboard_warehouse.db,
        SETTINGS,
        scope="agent",
        now=as_of,
        window=timedelta(hours=168),
        min_score=1.0,
    )
    assert None in flags["value"].to_list()  # the series of requests without an agent
    assert _metrics(app)["Flags"] == f"{flags.height:,}"


def test_spend_stacked_by_team_wears_no_verdict_colours(app: AppTest) -> None:
    """Teams are names, not good or bad: the stacked spend draws them from colours with no
    red or green (Vega's default gave the fourth team red)."""
    _open(app, "attribution")
    spec = json.loads(app.get("vega_lite_chart")[0].proto.spec)
    scale = spec["encoding"]["color"]["scale"]
    assert scale == {"range": list(CATEGORY_COLORS)}
    assert not {"#d62728", "#e45756", "#2ca02c", "#54a24b"} & set(scale["range"])
