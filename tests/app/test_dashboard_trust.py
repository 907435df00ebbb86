"""What a FinOps user must read right at a glance (issue 15, dashboards): formatted and
labelled tables, spend increases in red, budgets only against the traffic they count,
labelled forecasts, visible and removable filters, ignored link values named, hourly
grain for short ranges with the partial last period said, and the demo's runaway agent
on the anomalies page by default. Real warehouses, Streamlit's AppTest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from streamlit.proto.Metric_pb2 import Metric
from streamlit.testing.v1 import AppTest

from app.display import NONE
from tests.app.dashboard_fixtures import ENTRY, DashboardWarehouse, SampleWarehouse


def _app(monkeypatch: pytest.MonkeyPatch, db: object, budgets: object) -> AppTest:
    monkeypatch.setenv("AIGW_DB", str(db))
    monkeypatch.setenv("AIGW_BUDGETS", str(budgets))
    monkeypatch.delenv("AIGW_CONFIG", raising=False)
    monkeypatch.delenv("AIGW_NOW", raising=False)
    return AppTest.from_file(ENTRY, default_timeout=60)


@pytest.fixture
def app(
    dashboard_warehouse: DashboardWarehouse, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AppTest]:
    monkeypatch.chdir(dashboard_warehouse.db.parent)
    yield _app(monkeypatch, dashboard_warehouse.db, dashboard_warehouse.budgets)


def _open(app: AppTest, page: str, **params: str) -> AppTest:
    app.query_params.update(params)
    app.switch_page(f"views/{page}.py").run()
    assert not app.exception, [error.message for error in app.exception]
    return app


def _metric(app: AppTest, label: str) -> Metric:
    return next(metric.proto for metric in app.metric if metric.label == label)


def _columns(app: AppTest, index: int) -> dict[str, dict[str, object]]:
    """The column configuration the browser formats the table ``index`` with."""
    config = json.loads(app.dataframe[index].proto.columns)
    return {
        name: {"label": c.get("label"), **c.get("type_config", {})} for name, c in config.items()
    }


def test_a_spend_increase_reads_as_bad_and_more_cache_hits_as_good(app: AppTest) -> None:
    _open(app, "overview", **{"from": "2026-11-05", "to": "2026-11-08"})
    spend = _metric(app, "Spend")
    assert spend.delta, "the range before has traffic: there is a change to colour"
    red, green = Metric.MetricColor.RED, Metric.MetricColor.GREEN
    assert spend.color == (red if spend.delta.startswith("+") else green)
    hits = _metric(app, "Cache hit rate")
    assert hits.color == (green if hits.delta.startswith("+") else red)


def test_the_budget_is_shown_only_against_the_traffic_it_counts(app: AppTest) -> None:
    _open(app, "overview")
    assert _metric(app, "Budget monthly-total").body == "$40.00"
    assert app.get("progress")[0].proto.text.endswith("(budget monthly-total, all traffic)")
    app.selectbox(key="f_provider").set_value("anthropic").run()
    assert _metric(app, "Budget").body == NONE  # a provider's spend against the total: no
    assert not app.get("progress")


def test_both_forecasts_say_what_they_forecast(app: AppTest) -> None:
    _open(app, "overview")
    assert "Forecast month end (daily trend)" in [metric.label for metric in app.metric]
    _open(app, "budgets")
    assert "Forecast for the period (straight line)" in [metric.label for metric in app.metric]


def test_attribution_table_has_human_labels_money_counts_and_a_share_of_total(
    app: AppTest,
) -> None:
    _open(app, "attribution", by="team")
    columns = _columns(app, 0)
    assert columns["team"]["label"] == "Team"
    assert columns["cost_usd"] == {"label": "Cost", "type": "number", "format": "dollar"}
    assert columns["requests"] == {"label": "Requests", "type": "number", "format": "localized"}
    assert columns["share"] == {"label": "Share", "type": "number", "format": "%.1f%%"}
    table = app.dataframe[0].value
    assert list(table.columns).index("share") == list(table.columns).index("cost_usd") + 1
    assert table["share"].sum() == pytest.approx(100.0)
    assert app.dataframe[0].proto.placeholder == NONE  # one word for a missing value


def test_cache_ratios_show_as_percent_of_the_same_numbers(app: AppTest) -> None:
    _open(app, "cache")
    columns = _columns(app, 0)
    assert columns["request_hit_ratio"] == {
        "label": "Hit rate (requests)",
        "type": "number",
        "format": "%.1f%%",
    }
    routes = app.dataframe[0].value
    assert routes["request_hit_ratio"].between(0, 100).all()


def test_a_link_with_invalid_values_says_what_it_ignored_and_shows_real_numbers(
    app: AppTest,
) -> None:
    _open(app, "overview", provider="nosuch", **{"from": "2026-13-45"})
    assert [warning.value for warning in app.warning] == [
        "Ignored from the link: from=2026-13-45 (not a YYYY-MM-DD day); "
        "provider=nosuch (no such provider in the data)."
    ]
    assert _metric(app, "Spend").body != "$0.00"
    assert "provider" not in app.query_params


def test_active_filters_are_chips_that_remove_the_filter(app: AppTest) -> None:
    _open(app, "attribution", team="search", by="team")
    chip = app.button(key="chip_team")
    assert chip.label == "team: search ✕"
    chip.click().run()
    assert "team" not in app.query_params
    assert app.selectbox(key="f_team").value == "(all)"
    assert not any(button.key == "chip_team" for button in app.button)


def test_a_short_range_is_hourly_and_a_partial_last_day_is_said(app: AppTest) -> None:
    _open(app, "attribution", **{"from": "2026-11-08", "to": "2026-11-08"})
    assert app.subheader[0].value == "Spend by model per hour"
    app.date_input(key="f_range").set_value((date(2026, 11, 1), date(2026, 11, 9))).run()
    assert app.subheader[0].value == "Spend by model per day"
    captions = [caption.value for caption in app.caption]
    # the fixture's 12,000 records end in the 03:00 hour of Nov 9 (the runaway sends 30x)
    assert (
        "The last day (Nov 09 UTC, drawn lighter) is partial: data up to 2026-11-09 04:00 UTC."
        in captions
    )


def test_anomalies_page_shows_the_demos_runaway_agent_by_default_and_explains_the_sample(
    sample_warehouse: SampleWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defaults from sample_data/budgets.toml's rule: 48 hours, score 6, impact $0.50; the
    runaway's root cause is named beside its flags."""
    monkeypatch.chdir(sample_warehouse.db.parent)
    app = _open(_app(monkeypatch, sample_warehouse.db, sample_warehouse.budgets), "anomalies")
    flags = app.dataframe[0].value
    assert set(flags["agent"]) == {"summarizer"}
    assert set(flags["hour"]) == {datetime(2026, 11, 19, 10, tzinfo=UTC)}
    assert sorted(flags["signal"]) == ["requests", "spend"]
    # Its root cause: one user's loop on gpt-4o (Adtributor, models.root_cause).
    assert set(flags["root_cause"]) == {
        "99% of +$1.98: agent=summarizer \u00d7 user=support-user-1 \u00d7 model=gpt-4o"
    }
    # ... and in full under the table, which is wider than the page
    assert (
        "**Root cause**, agent summarizer at 2026-11-19 10:00 UTC: 99% of +\\$1.98: "
        "agent=summarizer \u00d7 user=support-user-1 \u00d7 model=gpt-4o"
    ) in [block.value for block in app.markdown]
    assert _metric(app, "Flags").body == "2"
    (note,) = [info.value for info in app.info]
    assert note.startswith("11 more flags score above 6 but spend less than $0.50 over expected:")
    assert (
        "- 2026-11-20 09:00 UTC: code-review, sql-helper, summarizer, triage-bot (4 values of "
        "agent at once: a burst of all traffic in that hour (a second log source or a "
        "backfill), not one runaway; at most $0.36 over expected)"
    ) in note
