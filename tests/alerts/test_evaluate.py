"""Which alerts hold: thresholds, scopes, split budgets, forecasts, periods and time zones,
on small hand-made hourly rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from alerts.config import AlertsConfig, AnomalyRule, Budget, ChannelSpec, load_alerts_config
from alerts.errors import BudgetConfigError
from alerts.evaluate import anomaly_alerts, budget_alerts, evaluate, period_bounds
from alerts.message import alert_id
from models.config import ModelsSettings
from tests.models.test_root_cause import ROLLUP_SCHEMA

DIMENSIONS = ModelsSettings().all_dimensions


def _rollup(rows: list[tuple[datetime, str, str, str, float]]) -> pl.LazyFrame:
    """Hourly rollup rows: (hour, provider, model, agent, cost_usd)."""
    return pl.LazyFrame(
        rows,
        schema={
            "hour": pl.Datetime("us", "UTC"),
            "provider": pl.String,
            "model": pl.String,
            "agent": pl.String,
            "cost_usd": pl.Float64,
        },
        orient="row",
    )


def _budget(**overrides: object) -> Budget:
    fields: dict[str, object] = {
        "name": "b",
        "amount_usd": 100.0,
        "period": "monthly",
        "thresholds": (0.5, 0.8, 1.0),
        "channels": ("outbox",),
    }
    fields.update(overrides)
    return Budget(**fields)  # type: ignore[arg-type]


NOV = datetime(2026, 11, 10, tzinfo=UTC)


def test_several_thresholds_crossed_in_one_run_fire_in_order() -> None:
    """$85 of $100 crosses 50% and 80% (not 100%), listed in threshold order."""
    rollup = _rollup(
        [(NOV, "openai", "gpt-4o", "a", 60.0), (NOV, "anthropic", "claude", "b", 25.0)]
    )
    alerts = budget_alerts(rollup, _budget(), now=NOV + timedelta(hours=2), tz="UTC")
    assert [(a.kind, a.threshold, a.spent_usd) for a in alerts] == [
        ("budget", 0.5, 85.0),
        ("budget", 0.8, 85.0),
    ]
    assert alerts[0].top_contributors == [("gpt-4o", 60.0), ("claude", 25.0)]
    assert alerts[0].scope == "everything"
    assert len({a.alert_id for a in alerts}) == 2


def test_split_by_agent_makes_one_budget_per_agent() -> None:
    """A per-agent budget alerts for the agent over it only."""
    rollup = _rollup([(NOV, "openai", "gpt-4o", "bot", 9.0), (NOV, "openai", "gpt-4o", "ok", 2.0)])
    alerts = budget_alerts(
        rollup, _budget(amount_usd=10.0, split_by="agent"), now=NOV + timedelta(hours=1), tz="UTC"
    )
    assert [(a.scope, a.threshold) for a in alerts] == [("agent=bot", 0.5), ("agent=bot", 0.8)]


def test_a_filter_keeps_only_its_scope() -> None:
    """A provider-scoped budget counts that provider's spend only."""
    rollup = _rollup(
        [(NOV, "openai", "gpt-4o", "a", 90.0), (NOV, "anthropic", "claude", "a", 30.0)]
    )
    alerts = budget_alerts(
        rollup, _budget(filters={"provider": "anthropic"}), now=NOV + timedelta(hours=1), tz="UTC"
    )
    assert alerts == []
    alerts = budget_alerts(
        rollup,
        _budget(filters={"provider": "anthropic"}, amount_usd=50.0),
        now=NOV + timedelta(hours=1),
        tz="UTC",
    )
    assert [(a.scope, a.threshold, a.spent_usd) for a in alerts] == [
        ("provider=anthropic", 0.5, 30.0)
    ]


def test_forecast_alert_when_the_period_is_on_course_to_exceed() -> None:
    """$40 after 10 of 30 days projects $120 > $100: a forecast alert (and the 0.2 threshold)."""
    now = datetime(2026, 11, 11, tzinfo=UTC)  # 10 days into November
    rollup = _rollup([(datetime(2026, 11, 5, tzinfo=UTC), "openai", "gpt-4o", "a", 40.0)])
    alerts = budget_alerts(rollup, _budget(thresholds=(0.2,), forecast=True), now=now, tz="UTC")
    assert [(a.kind, a.threshold) for a in alerts] == [("budget", 0.2), ("forecast", None)]
    assert alerts[1].forecast_usd == pytest.approx(120.0)


def test_a_new_period_re_arms_the_same_threshold() -> None:
    """The same crossing in the next month has a new alert id; within a month it keeps its id."""
    rollup = _rollup(
        [
            (datetime(2026, 11, 3, tzinfo=UTC), "openai", "gpt-4o", "a", 60.0),
            (datetime(2026, 12, 3, tzinfo=UTC), "openai", "gpt-4o", "a", 60.0),
        ]
    )
    budget = _budget(thresholds=(0.5,))
    nov_a = budget_alerts(rollup, budget, now=datetime(2026, 11, 4, tzinfo=UTC), tz="UTC")
    nov_b = budget_alerts(rollup, budget, now=datetime(2026, 11, 20, tzinfo=UTC), tz="UTC")
    dec = budget_alerts(rollup, budget, now=datetime(2026, 12, 4, tzinfo=UTC), tz="UTC")
    assert nov_a[0].alert_id == nov_b[0].alert_id != dec[0].alert_id
    assert dec[0].spent_usd == 60.0


def test_calendar_periods_follow_the_configured_time_zone() -> None:
    """At 23:30 UTC on Nov 30 it is already December 1st in Paris: a new monthly period."""
    now = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    assert period_bounds(_budget(), now, "UTC") == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert period_bounds(_budget(), now, "Europe/Paris") == (
        datetime(2026, 11, 30, 23, tzinfo=UTC),
        datetime(2026, 12, 31, 23, tzinfo=UTC),
    )
    daily = _budget(period="daily")
    assert period_bounds(daily, now, "America/New_York") == (
        datetime(2026, 11, 30, 5, tzinfo=UTC),
        datetime(2026, 12, 1, 5, tzinfo=UTC),
    )
    weekly = _budget(period="weekly")  # Monday 2026-11-30
    assert period_bounds(weekly, now, "UTC")[0] == datetime(2026, 11, 30, tzinfo=UTC)
    rolling = _budget(period="rolling", days=7)
    assert period_bounds(rolling, now, "UTC") == (
        datetime(2026, 11, 24, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )


def test_spend_at_a_time_zone_boundary_counts_in_the_local_day() -> None:
    """Spend at 23:00 UTC belongs to the next day's daily budget in Paris, not in UTC."""
    rollup = _rollup([(datetime(2026, 11, 9, 23, tzinfo=UTC), "openai", "gpt-4o", "a", 80.0)])
    budget = _budget(period="daily", thresholds=(0.5,))
    now = datetime(2026, 11, 10, 1, tzinfo=UTC)
    assert budget_alerts(rollup, budget, now=now, tz="UTC") == []
    assert len(budget_alerts(rollup, budget, now=now, tz="Europe/Paris")) == 1


def test_evaluate_covers_every_budget_in_file_order() -> None:
    """evaluate() lists budget alerts in the order of the file."""
    config = AlertsConfig(
        budgets=(
            _budget(name="first", thresholds=(0.1,)),
            _budget(name="second", thresholds=(0.1,)),
        ),
        anomalies=(),
        channels={"outbox": ChannelSpec("outbox", "outbox", {"folder": "x"})},
    )
    rollup = _rollup([(NOV, "openai", "gpt-4o", "a", 20.0)])
    assert [a.rule for a in evaluate(rollup, config, now=NOV + timedelta(hours=1))] == [
        "first",
        "second",
    ]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "budgets.toml"
    path.write_text(text)
    return path


CHANNEL = '[channels.outbox]\ntype = "outbox"\nfolder = "out"\n'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[budget]]\nname = "b"\namount_usd = -1\nchannels = ["outbox"]\n',
            "budget b: `amount_usd`",
        ),
        (
            '[[budget]]\nname = "b"\namount_usd = 1\nperiod = "yearly"\nchannels = ["outbox"]\n',
            "`period`",
        ),
        (
            '[[budget]]\nname = "b"\namount_usd = 1\nsplit_by = "planet"\nchannels = ["outbox"]\n',
            "`split_by`",
        ),
        (
            '[[budget]]\nname = "b"\namount_usd = 1\nchannels = ["pager"]\n',
            "`channels` names 'pager'",
        ),
        (
            '[[budget]]\nname = "b"\namount_usd = 1\nthresholds = [0]\nchannels = ["outbox"]\n',
            "`thresholds`",
        ),
        (
            '[[anomaly]]\nname = "r"\nscope = "planet"\nchannels = ["outbox"]\n',
            "anomaly rule r: `scope`",
        ),
    ],
)
def test_config_errors_name_the_file_the_budget_and_the_key(
    tmp_path: Path, body: str, message: str
) -> None:
    """An invalid budgets file is refused with its path, the budget and the key."""
    path = _write(tmp_path, CHANNEL + body)
    with pytest.raises(BudgetConfigError, match=message) as caught:
        load_alerts_config(path, dimensions=DIMENSIONS)
    assert str(path) in str(caught.value)


def test_channel_secrets_come_from_named_environment_variables(tmp_path: Path) -> None:
    """A *_env key reads the variable; a missing variable is an error naming it, not the value."""
    text = (
        '[channels.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:9/x"\n'
        'secret_env = "HOOK_SECRET"\n'
    )
    path = _write(tmp_path, text)
    config = load_alerts_config(path, dimensions=DIMENSIONS, environ={"HOOK_SECRET": "s3cr3t"})
    assert config.channels["hook"].settings["secret"] == "s3cr3t"  # noqa: S105 - a test value
    assert "s3cr3t" not in repr(config.channels["hook"])
    with pytest.raises(BudgetConfigError, match=r"\$HOOK_SECRET, which is not set"):
        load_alerts_config(path, dimensions=DIMENSIONS, environ={})


def test_literal_secrets_in_the_file_are_accepted_and_never_printed(tmp_path: Path) -> None:
    """A webhook URL and a secret written in the file load; an error in the same channel
    names the key, not the values."""
    url = "https://hooks.example.com/services/T0/B0/t0ken"
    text = f'[channels.hook]\ntype = "webhook"\nurl = "{url}"\nsecret = "s3cr3t"\n'
    path = _write(tmp_path, text)
    config = load_alerts_config(path, dimensions=DIMENSIONS, environ={})
    assert dict(config.channels["hook"].settings) == {"url": url, "secret": "s3cr3t"}
    path.write_text(text + "retries = 3\n")
    with pytest.raises(BudgetConfigError) as caught:
        load_alerts_config(path, dimensions=DIMENSIONS, environ={})
    assert str(caught.value) == (
        f"{path}: channel hook: `retries` is not a known key "
        "(known: secret, secret_env, type, url, url_env)"
    )


def test_an_email_login_without_starttls_is_refused_when_the_file_loads(tmp_path: Path) -> None:
    """`username` with `starttls = false` would fail every delivery: refused up front."""
    text = (
        '[channels.mail]\ntype = "email"\nhost = "127.0.0.1"\nsender = "a@example.com"\n'
        'recipients = ["b@example.com"]\nusername = "alerts"\npassword_env = "SMTP_PASSWORD"\n'
        "starttls = false\n"
    )
    path = _write(tmp_path, text)
    with pytest.raises(BudgetConfigError) as caught:
        load_alerts_config(path, dimensions=DIMENSIONS, environ={"SMTP_PASSWORD": "s3cr3t"})
    assert str(caught.value) == (
        f"{path}: channel mail: `starttls` is false but `username` is set: the password "
        "would travel in clear; set starttls = true or remove username"
    )
    path.write_text(text.replace('username = "alerts"\n', ""))
    config = load_alerts_config(path, dimensions=DIMENSIONS, environ={"SMTP_PASSWORD": "s3cr3t"})
    assert config.channels["mail"].settings["starttls"] is False


def test_the_sample_budgets_file_is_valid() -> None:
    """sample_data/budgets.toml, the demo's configuration, loads."""
    sample = Path(__file__).resolve().parents[2] / "sample_data" / "budgets.toml"
    config = load_alerts_config(sample, dimensions=DIMENSIONS)
    assert [budget.name for budget in config.budgets] == [
        "monthly-total",
        "daily-per-agent",
        "anthropic-weekly",
    ]
    assert [rule.name for rule in config.anomalies] == ["runaway-agents"]


def test_an_anomaly_rule_alerts_once_per_flagged_hour_with_its_signals_grouped() -> None:
    """A week of steady $1/hour for each agent, then one agent at $30 for an hour: one
    alert for that agent's hour (spend and requests signals in one message, linked to the
    anomalies page filtered to the agent and the day), none for the steady agent."""
    start = datetime(2026, 11, 2, tzinfo=UTC)
    hours = [start + timedelta(hours=h) for h in range(8 * 24)]
    spike = hours[-5]
    rows = []
    for hour in hours:
        for agent in ("bot", "steady"):
            cost = 30.0 if (agent == "bot" and hour == spike) else 1.0 + (hour.hour % 3) * 0.05
            rows.append((hour, agent, cost, 300 if cost == 30.0 else 10))
    rollup = pl.LazyFrame(
        rows,
        schema={
            "hour": pl.Datetime("us", "UTC"),
            "agent": pl.String,
            "cost_usd": pl.Float64,
            "requests": pl.Int64,
        },
        orient="row",
    )
    rule = AnomalyRule(name="runaway", scope="agent", channels=("outbox",), min_impact_usd=5.0)
    alerts = anomaly_alerts(
        rollup, rule, now=hours[-1] + timedelta(hours=1), dashboard_url="http://dash:8501/"
    )
    assert [(a.scope, a.signal, a.period_start) for a in alerts] == [
        ("agent=bot", "requests,spend", spike)
    ]
    (alert,) = alerts
    assert (alert.kind, alert.spent_usd) == ("anomaly", 30.0)
    assert alert.alert_id == alert_id("runaway", "agent=bot", spike.isoformat())
    assert alert.title == (
        "runaway: anomalous request rate and spend for agent=bot at 2026-11-09 19:00 UTC"
    )
    assert alert.dashboard_url == (
        "http://dash:8501/anomalies?from=2026-11-09&to=2026-11-09&scope=agent&agent=bot"
    )
    assert alert.lines()[2].startswith("Signals: requests (score ")
    assert alert.lines()[3] == "$30.00 against $1.05 expected; 300 requests against 10"


def test_an_anomaly_message_names_the_cell_that_explains_the_excess() -> None:
    """The same week, the agent's spend split evenly over two models x two keys; the spike
    hour puts $29.2125 of its $30 on model b with key k2: the message's last detail line
    is its root cause, that cell with 100% of the $28.95 over expected."""
    start = datetime(2026, 11, 2, tzinfo=UTC)
    hours = [start + timedelta(hours=h) for h in range(8 * 24)]
    spike = hours[-5]
    cells = [("a", "k1"), ("a", "k2"), ("b", "k1"), ("b", "k2")]
    rows = []
    for hour in hours:
        total = 1.0 + (hour.hour % 3) * 0.05
        for model, key in cells:
            cost = total / 4
            if hour == spike:
                cost = 29.2125 if (model, key) == ("b", "k2") else 0.2625
            rows.append((hour, "bot", model, key, cost, 300 if hour == spike else 10))
    rollup = pl.LazyFrame(
        rows,
        schema=ROLLUP_SCHEMA,
        orient="row",
    )
    rule = AnomalyRule(name="runaway", scope="agent", channels=("outbox",), min_impact_usd=5.0)
    (alert,) = anomaly_alerts(rollup, rule, now=hours[-1] + timedelta(hours=1))
    assert alert.lines()[3] == "$30.00 against $1.05 expected; 1200 requests against 40"
    assert alert.lines()[4] == (
        "Root cause: 100% of +$28.95: agent=bot \u00d7 model=b \u00d7 api_key=k2"
    )
    assert alert.as_json()["detail"].endswith(alert.lines()[4])
    # With the raw requests of the hour: 250 of the cell's 300 are one request.
    asked: list[list[datetime]] = []

    def requests_of(wanted: list[datetime]) -> pl.LazyFrame:
        asked.append(wanted)
        return pl.LazyFrame(
            {
                "ts": [spike + timedelta(seconds=i) for i in range(300)],
                "agent": ["bot"] * 300,
                "model": ["b"] * 300,
                "api_key": ["k2"] * 300,
                "request_hash": ["loop"] * 250 + [f"other-{i}" for i in range(50)],
            },
            schema_overrides={"ts": pl.Datetime("us", "UTC")},
        )

    (alert,) = anomaly_alerts(
        rollup, rule, now=hours[-1] + timedelta(hours=1), requests_of=requests_of
    )
    assert asked == [[spike]]
    assert alert.lines()[4] == (
        "Root cause: 100% of +$28.95: agent=bot \u00d7 model=b \u00d7 api_key=k2; "
        "250 of its 300 requests repeat one request"
    )


def test_a_budget_message_rounds_down_so_it_never_contradicts_its_threshold() -> None:
    """$2.4949 of $2.50 crosses 80%: the message says $2.49 (99%), never (100%); its link
    opens the budgets page filtered to the scope and the period's days so far."""
    rollup = _rollup([(NOV + timedelta(hours=2), "openai", "gpt-4o", "bot", 2.4949)])
    budget = _budget(
        name="daily", amount_usd=2.5, period="daily", split_by="agent", thresholds=(0.8, 1.0)
    )
    (alert,) = budget_alerts(
        rollup, budget, now=NOV + timedelta(hours=5), tz="UTC", dashboard_url="http://dash"
    )
    assert alert.title == "daily: 80% of $2.50 reached for agent=bot"
    assert alert.lines()[1] == (
        "Spent $2.49 of $2.50 (99%) in 2026-11-10 00:00 - 2026-11-11 00:00 UTC"
    )
    assert alert.dashboard_url == "http://dash/budgets?from=2026-11-10&to=2026-11-10&agent=bot"
