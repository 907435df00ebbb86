"""`aigw report cost` and `aigw rollup` as a user runs them: JSON rows that add up to
the warehouse, grains, top-N, filters, one-line errors and warnings on stderr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from tests.conftest import logpush_record, run_aigw, write_ndjson

D1 = 1_776_470_400  # 2026-04-18T00:00:00Z, unix seconds
D2 = D1 + 86_400
PRICES = """\
[[price]]
provider = "openai"
model = "gpt-4o-mini"
input = 1
output = 2

[[price]]
provider = "anthropic"
model = "claude-sonnet-4"
input = 3
output = 15
"""
REPORT_COLUMNS = [
    "requests",
    "errors",
    "cached_requests",
    "tokens_in",
    "tokens_out",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "cost_usd",
    "saved_usd",
    "unknown_cost_requests",
]


def request(
    at: int, team: str, tokens_in: int | None, tokens_out: int | None, **fields: Any
) -> dict[str, Any]:
    """A Logpush record of ``team`` (openai gpt-4o-mini unless ``fields`` say otherwise)."""
    metrics: dict[str, Any] = {"durationMs": 100}
    if tokens_in is not None:
        metrics |= {"tokensIn": tokens_in, "tokensOut": tokens_out}
    return logpush_record(
        Timestamp=at, Metadata={"team": team, "user": "ana"}, Metrics=metrics, **fields
    )


SONNET = {"Provider": "anthropic", "Model": "claude-sonnet-4"}
RECORDS = [
    request(D1, "search", 1_000, 500),  # $0.002
    request(D2 + 3_600, "search", 2_000, 1_000),  # $0.004
    request(D1 + 60, "support", 1_000, 100, **SONNET),  # $0.0045
    request(D2 + 60, "support", 1_000, 100, Cached=True, **SONNET),  # free, saves $0.0045
    request(D1 + 120, "platform", 10_000, 1_000),  # $0.012
    request(D2 + 120, "platform", None, None, StatusCode=429, RateLimited=True),  # free
]
# The same spend computed straight from the raw requests, with the price file's rates.
SPEND_SQL = """
SELECT json_extract_string(metadata, '$.team') AS team,
       count(*)::BIGINT AS requests,
       sum(coalesce(tokens_in, 0))::BIGINT AS tokens_in,
       sum(CASE WHEN cached OR rate_limited THEN 0
                ELSE (tokens_in * p.input + tokens_out * p.output) / 1e6 END) AS cost_usd,
       coalesce(sum(CASE WHEN cached
                THEN (tokens_in * p.input + tokens_out * p.output) / 1e6 END), 0) AS saved_usd
FROM requests
JOIN (VALUES ('gpt-4o-mini', 1::DOUBLE, 2::DOUBLE), ('claude-sonnet-4', 3::DOUBLE, 15::DOUBLE))
     AS p(model, input, output) USING (model)
GROUP BY ALL ORDER BY team
"""


def write_config(folder: Path, prices: str = PRICES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prices.toml").write_text(prices)
    config = folder / "aigw.toml"
    config.write_text('[models]\nprices = "prices.toml"\n')
    return config


def ingest(logs: Path, db: Path, config: Path) -> str:
    # the gate is not what these tests check: off spares importing GX (about 6 s of CPU)
    result = run_aigw(
        "ingest", str(logs), "--db", str(db), "--config", str(config), "--quality", "off"
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A warehouse with six requests of three teams over two days, and its config."""
    root = tmp_path_factory.mktemp("report")
    config = write_config(root)
    write_ndjson(root / "logs" / "a.log.gz", RECORDS)
    db = root / "aigw.duckdb"
    assert "rollups: rebuilt (" in ingest(root / "logs", db, config)
    return db, config


def report(warehouse: tuple[Path, Path], *args: str) -> list[dict[str, Any]]:
    """`aigw report cost ... --format json`, which must succeed without warnings."""
    db, config = warehouse
    result = run_aigw(
        "report", "cost", *args, "--db", str(db), "--config", str(config), "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows: list[dict[str, Any]] = orjson.loads(result.stdout)
    return rows


def summary(rows: list[dict[str, Any]], *keys: str) -> list[tuple[Any, ...]]:
    """Key values, requests as an int and cost rounded to the micro-dollar, per row."""
    return [
        (*(row[key] for key in keys), int(row["requests"]), round(row["cost_usd"], 6))
        for row in rows
    ]


def test_report_by_team_adds_up_to_the_raw_requests(warehouse: tuple[Path, Path]) -> None:
    """Per team, the report's requests, tokens, cost and savings equal SQL over the requests."""
    rows = report(warehouse, "--by", "team")
    assert [list(row) for row in rows] == [["team", *REPORT_COLUMNS]] * 3
    assert summary(rows, "team") == [
        ("platform", 2, 0.012),
        ("search", 2, 0.006),
        ("support", 2, 0.0045),
    ]
    db, _ = warehouse
    result = run_aigw("sql", SPEND_SQL, "--db", str(db), "--format", "json")
    assert result.returncode == 0, result.stderr
    expected = {row["team"]: row for row in orjson.loads(result.stdout)}
    assert sorted(expected) == sorted(row["team"] for row in rows)
    for row in rows:
        want = expected[row["team"]]
        assert int(row["requests"]) == want["requests"]
        assert int(row["tokens_in"]) == want["tokens_in"]
        assert row["cost_usd"] == pytest.approx(want["cost_usd"])
        assert row["saved_usd"] == pytest.approx(want["saved_usd"])
    assert sum(row["cost_usd"] for row in rows) == pytest.approx(0.0225)
    assert sum(row["saved_usd"] for row in rows) == pytest.approx(0.0045)


@pytest.mark.parametrize("grain", [None, "hour", "day", "month"])
def test_json_report_counts_are_numbers_not_strings(
    warehouse: tuple[Path, Path], grain: str | None
) -> None:
    """Counts and token sums are JSON integers at every grain, so scripts can add them up."""
    rows = report(warehouse, "--by", "team", *(["--grain", grain] if grain else []))
    for row in rows:
        for name in REPORT_COLUMNS:
            kind = float if name.endswith("_usd") else int
            assert type(row[name]) is kind, (name, row[name])


def test_report_by_day_has_one_row_per_day_and_team(warehouse: tuple[Path, Path]) -> None:
    """--grain day splits spend by UTC day (printed as dates), days in order, biggest cost
    first in each."""
    rows = report(warehouse, "--by", "team", "--grain", "day")
    day1, day2 = "2026-04-18", "2026-04-19"  # day periods are dates
    assert summary(rows, "period", "team") == [
        (day1, "platform", 1, 0.012),
        (day1, "support", 1, 0.0045),
        (day1, "search", 1, 0.002),
        (day2, "search", 1, 0.004),
        (day2, "platform", 1, 0.0),
        (day2, "support", 1, 0.0),
    ]


def test_hourly_and_daily_reports_have_the_same_totals(warehouse: tuple[Path, Path]) -> None:
    """Whatever the grain, the report's total requests and cost are the same."""
    totals = []
    for grain in ("hour", "day", "week"):
        rows = report(warehouse, "--by", "team", "--grain", grain)
        totals.append(
            (sum(int(row["requests"]) for row in rows), round(sum(r["cost_usd"] for r in rows), 9))
        )
    assert totals == [(6, 0.0225)] * 3


def test_top_keeps_the_biggest_team_and_sums_the_rest_as_other(
    warehouse: tuple[Path, Path],
) -> None:
    """--top 1 lists the biggest team, then one "other" row holding everyone else."""
    rows = report(warehouse, "--by", "team", "--top", "1")
    assert summary(rows, "team") == [("platform", 2, 0.012), ("other", 4, 0.0105)]


def test_where_reports_one_team_only(warehouse: tuple[Path, Path]) -> None:
    """--where team=search keeps the search team's requests, reported by model."""
    rows = report(warehouse, "--by", "model", "--where", "team=search")
    assert summary(rows, "model") == [("gpt-4o-mini", 2, 0.006)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--by", "colour"),
            "error: unknown dimension 'colour'; use one of gateway, provider, model, endpoint, "
            "api_key, request_type, model_type, team, user, agent, feature",
        ),
        (
            ("--where", "colour=red"),
            "error: unknown dimension 'colour'; use one of gateway, provider, model, endpoint, "
            "api_key, request_type, model_type, team, user, agent, feature",
        ),
        (
            ("--grain", "fortnight"),
            "error: unknown grain 'fortnight'; use one of hour, day, week, month",
        ),
    ],
    ids=["by", "where", "grain"],
)
def test_unknown_dimension_or_grain_is_a_one_line_error(
    warehouse: tuple[Path, Path], args: tuple[str, ...], message: str
) -> None:
    """A typo in --by, --where or --grain is one line on stderr listing the choices, exit 2."""
    db, config = warehouse
    result = run_aigw("report", "cost", *args, "--db", str(db), "--config", str(config))
    assert (result.returncode, result.stderr.splitlines(), result.stdout) == (2, [message], "")


def test_an_unpriced_model_is_named_in_a_warning(tmp_path: Path) -> None:
    """Spend that aigw cannot price is not silently $0: stderr names the provider/model."""
    config = write_config(tmp_path)
    write_ndjson(
        tmp_path / "logs" / "a.log.gz",
        [
            request(D1, "search", 1_000, 500),
            request(D1 + 1, "search", 10, 10, Provider="replicate", Model="acme/llama-ft"),
            logpush_record(  # no price but a logged cost: priced, so not in the warning
                Timestamp=D1 + 2,
                Provider="replicate",
                Model="acme/logged",
                Metrics={"tokensIn": 10, "tokensOut": 10, "cost": 0.25},
            ),
        ],
    )
    db = tmp_path / "aigw.duckdb"
    ingest(tmp_path / "logs", db, config)
    result = run_aigw(
        "report", "cost", "--by", "provider", "--db", str(db), "--config", str(config)
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: 1 requests have no price")
    assert "replicate/acme/llama-ft" in lines[0] and "acme/logged" not in lines[0]
    assert "replicate" in result.stdout and "openai" in result.stdout


def test_rollup_full_rebuilds_and_an_idle_rollup_does_nothing(tmp_path: Path) -> None:
    """`aigw rollup --full` rebuilds; plain `aigw rollup` then has nothing to do."""
    config = write_config(tmp_path)
    write_ndjson(tmp_path / "logs" / "a.log.gz", RECORDS)
    db = tmp_path / "aigw.duckdb"
    ingest(tmp_path / "logs", db, config)
    common = ("--db", str(db), "--config", str(config))

    full = run_aigw("rollup", "--full", *common)
    assert full.returncode == 0, full.stderr
    assert full.stdout.startswith("rollups: rebuilt (") and full.stdout.endswith(" rows written)\n")

    idle = run_aigw("rollup", *common)
    assert (idle.returncode, idle.stdout) == (0, "rollups: 0 hours refreshed (0 rows written)\n")

    write_ndjson(tmp_path / "logs" / "b.log.gz", [request(D1 + 30, "search", 3_000, 1_000)])
    assert "rollups: 1 hours refreshed" in ingest(tmp_path / "logs", db, config)
    rows = report((db, config), "--by", "team")
    assert summary(rows, "team")[1] == ("search", 3, 0.011)


def test_a_report_after_a_price_change_warns_until_rollup_runs(tmp_path: Path) -> None:
    """Changing the price file makes reports warn the rollups are behind; `aigw rollup` fixes it."""
    config = write_config(tmp_path)
    write_ndjson(tmp_path / "logs" / "a.log.gz", RECORDS)
    db = tmp_path / "aigw.duckdb"
    ingest(tmp_path / "logs", db, config)
    (tmp_path / "prices.toml").write_text(PRICES.replace("input = 1\n", "input = 10\n"))
    common = ("--db", str(db), "--config", str(config))

    stale = run_aigw("report", "cost", "--by", "team", *common)
    assert stale.returncode == 0
    assert stale.stderr.splitlines() == [
        "warning: rollups are behind the warehouse or the settings; run `aigw rollup`"
    ]
    rebuilt = run_aigw("rollup", *common)
    assert rebuilt.stdout.startswith("rollups: rebuilt (")
    rows = report((db, config), "--by", "team")
    # platform: 10,000 x $10 + 1,000 x $2 per million
    assert summary(rows, "team")[0] == ("platform", 2, 0.102)


def test_focus_export_writes_parquet_and_csv_with_the_same_rows(
    warehouse: tuple[Path, Path], tmp_path: Path
) -> None:
    """`aigw export focus` writes one row per day x gateway x provider x model x key x team
    x priced meter, as Parquet and as CSV: ListCost = ListUnitPrice x PricingQuantity on
    every row, the price file's rate beside the catalogue's, and EffectiveCost adding up to
    the report's cost."""
    db, config = warehouse
    for name in ("focus.parquet", "focus.csv"):
        result = run_aigw(
            "export", "focus", str(tmp_path / name), "--db", str(db), "--config", str(config)
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"wrote 8 FOCUS rows to {tmp_path / name}"
    parquet = pl.read_parquet(tmp_path / "focus.parquet")
    csv = pl.read_csv(tmp_path / "focus.csv")
    # day 1: gpt-4o-mini (search, platform) and Sonnet, input and output each; day 2:
    # gpt-4o-mini (search); the cache hit and the rate-limited attempt are free: no row
    assert parquet.height == csv.height == 8
    assert parquet.columns == csv.columns
    gap = (pl.col("ListUnitPrice") * pl.col("PricingQuantity") - pl.col("ListCost")).abs().max()
    assert parquet.select(gap).item() < 1e-9
    total = sum(row["cost_usd"] for row in report(warehouse, "--by", "provider"))
    assert round(parquet["EffectiveCost"].sum(), 9) == round(total, 9) == 0.0225
    # search's first call: 1,000 input tokens at the catalogue's $0.15/M, the price file's $1/M
    search_input = parquet.filter(
        pl.col("Tags").str.contains('"team":"search"', literal=True)
        & (pl.col("SkuMeter") == "input")
        & (pl.col("x_Model") == "gpt-4o-mini")
    ).select(
        "ConsumedQuantity", "ListUnitPrice", "ListCost", "ContractedUnitPrice", "EffectiveCost"
    )
    assert search_input.rows() == [
        (1000.0, 0.15, 0.00015, 1.0, 0.001),
        (2000.0, 0.15, 0.0003, 1.0, 0.002),
    ]


def test_cache_report_counts_the_hit_and_its_saving(warehouse: tuple[Path, Path]) -> None:
    """`aigw report cache --by model --format json`: one hit of two Sonnet calls, $0.0045 saved."""
    db, config = warehouse
    result = run_aigw(
        "report",
        "cache",
        "--by",
        "model",
        "--db",
        str(db),
        "--config",
        str(config),
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    document = orjson.loads(result.stdout)
    sonnet = next(row for row in document["summary"] if row["model"] == "claude-sonnet-4")
    assert (sonnet["requests"], sonnet["cached_requests"], sonnet["request_hit_ratio"]) == (
        2,
        1,
        0.5,
    )
    assert round(sonnet["saved_usd"], 9) == 0.0045
    assert document["candidates"] == []


def test_forecast_projects_the_month_from_complete_days(warehouse: tuple[Path, Path]) -> None:
    """`aigw report forecast` as of Apr 20: $0.0225 so far, from two days of spend
    ($0.0185 and $0.004), projected with their mean for the 11 days left of April."""
    db, config = warehouse
    result = run_aigw(
        "report",
        "forecast",
        "--now",
        "2026-04-20T00:00:00",
        "--db",
        str(db),
        "--config",
        str(config),
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    [row] = orjson.loads(result.stdout)
    assert round(row["mtd_usd"], 9) == 0.0225
    assert row["days_in_month"] == 30
    assert row["basis_days"] == 2
    assert row["days_elapsed"] == 19
    assert round(row["projected_usd"], 9) == round(0.0225 + 11 * (0.0185 + 0.004) / 2, 9)


def test_anomalies_name_the_cell_and_the_repeated_request_behind_a_spike(
    tmp_path: Path,
) -> None:
    """Eight days of agent bot at $0.0264 an hour (users ana and bo, each on gpt-4o-mini
    and gpt-4o), then 100 more gpt-4o-mini requests of ana in one hour, 80 of them one
    identical request: the hour's root cause is that cell, with 100% of the +$0.12, in a
    line under the table, a CSV column and the JSON breakdown, for each of its signals."""
    config = write_config(
        tmp_path,
        PRICES + '\n[[price]]\nprovider = "openai"\nmodel = "gpt-4o"\ninput = 10\noutput = 20\n',
    )
    spike = D1 + 8 * 86_400 + 10 * 3_600

    def call(at: int, user: str, model: str, body: dict[str, Any] | None = None) -> Any:
        return logpush_record(
            Timestamp=at,
            Model=model,
            RequestedModel=model,
            Metadata={"team": "support", "user": user, "agent": "bot"},
            Metrics={"durationMs": 100, "tokensIn": 1_000, "tokensOut": 100},
            **({"RequestBody": body} if body else {}),
        )

    records = [
        call(D1 + hour * 3_600 + 60, user, model)
        for hour in range(8 * 24 + 12)
        for user in ("ana", "bo")
        for model in ("gpt-4o-mini", "gpt-4o")
    ]
    records += [
        call(spike + 600 + i, "ana", "gpt-4o-mini", {"prompt": "again" if i < 80 else f"n{i}"})
        for i in range(100)
    ]
    write_ndjson(tmp_path / "logs" / "a.log.gz", records)
    db = tmp_path / "aigw.duckdb"
    ingest(tmp_path / "logs", db, config)
    args = ("report", "anomalies", "--db", str(db), "--config", str(config))
    window = ("--now", "2026-04-26T11:00:00", "--hours", "1")
    headline = (
        "100% of +$0.12: agent=bot \u00d7 model=gpt-4o-mini \u00d7 user=ana; "
        "80 of its 101 requests repeat one request"
    )

    table = run_aigw(*args, *window)
    assert table.returncode == 0, table.stderr
    assert f"root cause, agent=bot at 2026-04-26 10:00 UTC: {headline}" in table.stdout

    csv_rows = run_aigw(*args, *window, "--format", "csv", "--columns", "signal,root_cause")
    assert csv_rows.stdout.splitlines() == [
        "signal,root_cause",
        f"repeated_prompt,{headline}",
        f"requests,{headline}",
        f"spend,{headline}",
    ]

    result = run_aigw(*args, *window, "--format", "json")
    flags = orjson.loads(result.stdout)
    assert [flag["signal"] for flag in flags] == ["repeated_prompt", "requests", "spend"]
    cause = flags[2]["root_cause"]
    assert flags[0]["root_cause"] == cause  # one hour, one root cause for its every signal
    assert (cause["measure"], cause["headline"]) == ("cost_usd", headline)
    assert cause["excess"] == pytest.approx(0.12)
    (cell,) = cause["cells"]
    assert cell["conditions"] == [
        {"dimension": "model", "item": "gpt-4o-mini"},
        {"dimension": "user", "item": "ana"},
    ]
    assert (cell["actual"], cell["expected"], cell["requests"], cell["repeated_requests"]) == (
        pytest.approx(0.1212),
        pytest.approx(0.0012),
        101,
        80,
    )
    models = [row for row in cause["breakdown"] if row["dimension"] == "model"]
    assert [(row["item"], row["candidate"]) for row in models] == [
        ("gpt-4o-mini", True),
        ("gpt-4o", False),
    ]
    assert models[0]["explanatory_power"] == pytest.approx(1.0)
