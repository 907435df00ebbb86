"""`aigw statement` and `aigw report unit-cost` as a user runs them, on a small real
warehouse: statements whose totals equal `aigw report cost` for the month to the cent,
the allocation rules, budgets of one team only, escaped HTML, and cost per unit."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from alerts import Budget
from app.service import team_budgets
from app.statement_files import statement_files, team_file_stem
from models import AllocationRule, Statements, TeamBudget, build_statements
from tests.conftest import logpush_record, run_aigw, write_ndjson

PRICES = """\
[[price]]
provider = "openai"
model = "gpt-4o-mini"
input = 1
output = 2
"""
SCRIPT = "<script>alert(1)</script>"
BUDGETS = """\
[channels.box]
type = "outbox"
folder = "outbox"

[channels.slack]  # its secret is not set: statements do not need it
type = "slack"
webhook_url_env = "AIGW_TEST_UNSET_SLACK_URL"

[[budget]]
name = "support-monthly"
amount_usd = 10.0
filter = { team = "support" }
channels = ["box"]

[[budget]]
name = "search-openai"
amount_usd = 5.0
filter = { team = "search", provider = "openai" }
channels = ["box"]

[[budget]]
name = "weekly-per-team"
amount_usd = 1.0
period = "weekly"
split_by = "team"
channels = ["box"]
"""


def call(day: int, tokens_in: int, tokens_out: int = 0, month: int = 11, **metadata: str) -> Any:
    """A gpt-4o-mini request at $1 per million tokens in, $2 out."""
    at = datetime(2026, month, day, 12, tzinfo=UTC)
    return logpush_record(
        Timestamp=int(at.timestamp()) * 1_000_000_000,
        Metadata=metadata,
        Metrics={"durationMs": 100, "tokensIn": tokens_in, "tokensOut": tokens_out},
    )


RECORDS = [
    call(3, 1_000_000, team="search", user="ana", conversation_id="c1"),  # $1.00
    call(4, 500_000, team="search", user="ana", conversation_id="c1"),  # $0.50
    call(5, 2_000_000, 1_000_000, team="support", user="cy", conversation_id="c2"),  # $4.00
    call(6, 1_000_000, team=SCRIPT, user="<b>x</b>", conversation_id="c3"),  # $1.00
    call(7, 333_333, conversation_id="c4"),  # $0.333333, no team
    call(8, 1_000_000, user="zed"),  # $1.00, no team, no conversation
    {**call(9, 1_000_000, team="platform", conversation_id="c5"), "Cached": True},  # free
    call(20, 250_000, month=10, team="search", user="ana"),  # October: $0.25
]
# November: $7.833333 in all; $6.50 with a team (search 1.50, support 4.00, <script> 1.00,
# platform 0) and $1.333333 without one.


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("statements")
    (root / "prices.toml").write_text(PRICES)
    config = root / "aigw.toml"
    config.write_text('[models]\nprices = "prices.toml"\n')
    (root / "budgets.toml").write_text(BUDGETS)
    write_ndjson(root / "logs" / "a.log.gz", RECORDS)
    db = root / "aigw.duckdb"
    # the gate is not what these tests check: off spares importing GX (about 6 s of CPU)
    result = run_aigw(
        "ingest", str(root / "logs"), "--db", str(db), "--config", str(config), "--quality", "off"
    )
    assert result.returncode == 0, result.stderr
    return db, config


def statement(warehouse: tuple[Path, Path], out: Path, *args: str) -> str:
    db, config = warehouse
    result = run_aigw(
        "statement", "--month", "2026-11", "--out", str(out), "--db", str(db),
        "--config", str(config), *args,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_totals_equal_report_cost_for_the_month_to_the_cent(
    warehouse: tuple[Path, Path], tmp_path: Path
) -> None:
    db, config = warehouse
    said = statement(warehouse, tmp_path)
    assert said.startswith("wrote 4 team statements and a summary for 2026-11")
    assert "total $7.83, $1.33 without a team (proportional)" in said
    report = run_aigw(
        "report", "cost", "--by", "team", "--since", "2026-11-01", "--until", "2026-12-01",
        "--db", str(db), "--config", str(config), "--format", "json",
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    reported = round(sum(row["cost_usd"] for row in orjson.loads(report.stdout)), 2)
    summary = read_csv(tmp_path / "2026-11-summary.csv")
    assert round(sum(float(row["total_usd"]) for row in summary), 2) == reported == 7.83
    # $1.333333 shared by own cost (of $6.50): search 1.50 + 0.307692, support 4.00 +
    # 0.820513, <script> 1.00 + 0.205128. Floors 180 + 482 + 120 = 782 of 783 cents; the
    # largest remainder (search's .77) takes the last one.
    assert [
        (row["team"], row["direct_usd"], row["allocated_usd"], row["total_usd"]) for row in summary
    ] == [
        ("support", "4.0", "0.82", "4.82"),
        ("search", "1.5", "0.31", "1.81"),
        (SCRIPT, "1.0", "0.2", "1.2"),
        ("platform", "0.0", "0.0", "0.0"),
    ]
    search = read_csv(tmp_path / "2026-11-team-search.csv")
    total = {"section": "total", "item": "total", "requests": "2", "cost_usd": "1.81"}
    assert search[-1] == {**total, "saved_usd": "0.0"}
    assert {"section": "model", "item": "openai/gpt-4o-mini", "requests": "2",
            "cost_usd": "1.5", "saved_usd": "0.0"} in search  # fmt: skip
    summary_rows = {row["team"]: row for row in summary}
    assert summary_rows["search"]["previous_usd"] == "0.25"  # October
    assert float(summary_rows["search"]["change_ratio"]) == pytest.approx(1.81 / 0.25 - 1)
    assert summary_rows["platform"]["saved_usd"] == "1.0"


@pytest.mark.parametrize(
    ("rule", "rows", "says"),
    [
        (
            "owner:platform",
            [("support", "4.0"), ("platform", "1.33"), ("search", "1.5"), (SCRIPT, "1.0")],
            "(owner:platform)",
        ),
        (
            "none",
            [("support", "4.0"), ("search", "1.5"), ("", "1.33"), (SCRIPT, "1.0"),
             ("platform", "0.0")],
            "(left unallocated)",
        ),
    ],
)  # fmt: skip
def test_the_allocation_rule_from_the_flag_or_aigw_toml(
    warehouse: tuple[Path, Path], tmp_path: Path, rule: str, rows: list[Any], says: str
) -> None:
    said = statement(warehouse, tmp_path / "flag", "--unallocated", rule)
    assert says in said
    summary = read_csv(tmp_path / "flag" / "2026-11-summary.csv")
    assert sorted((row["team"], row["total_usd"]) for row in summary) == sorted(rows)
    db, config = warehouse
    configured = tmp_path / "aigw.toml"
    configured.write_text(
        config.read_text().replace('"prices.toml"', f'"{config.parent}/prices.toml"')
        + f'\n[statements]\nunallocated = "{rule}"\n'
    )
    said = statement((db, configured), tmp_path / "file")
    assert says in said
    html = (tmp_path / "file" / "2026-11-summary.html").read_text()
    assert f"rule {rule}" in html or "left unallocated" in html


def test_html_escapes_every_name_and_files_have_safe_names(
    warehouse: tuple[Path, Path], tmp_path: Path
) -> None:
    statement(warehouse, tmp_path)
    names = sorted(path.name for path in tmp_path.iterdir())
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in names)
    (page,) = [name for name in names if "script" in name and name.endswith(".html")]
    assert page.startswith("2026-11-team-script_alert_1_script-")  # and a hash of the name
    html = (tmp_path / page).read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;: AI spend statement, November 2026" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<b>" not in html
    summary = (tmp_path / "2026-11-summary.html").read_text()
    assert "<script" not in summary.lower()
    assert f'href="{page}"' in summary
    assert "Spend without a team: $1.33, allocated in proportion" in summary
    assert "<h2>Spend without a team, by model</h2>" in summary
    assert "@media print" in summary
    assert "http://" not in summary and "https://" not in summary  # nothing fetched


def test_only_a_budget_for_the_team_alone_is_shown(
    warehouse: tuple[Path, Path], tmp_path: Path
) -> None:
    statement(warehouse, tmp_path, "--budgets", str(warehouse[1].parent / "budgets.toml"))
    support = (tmp_path / "2026-11-team-support.html").read_text()
    assert "Budget support-monthly: $10.00 a month; own cost $4.00 used 40.0% of it." in support
    search = (tmp_path / "2026-11-team-search.html").read_text()
    assert "No monthly budget for this team alone" in search
    assert "search-openai" not in search and "weekly-per-team" not in search
    summary = {row["team"]: row for row in read_csv(tmp_path / "2026-11-summary.csv")}
    assert (summary["support"]["budget"], summary["support"]["budget_used"]) == (
        "support-monthly",
        "0.4",
    )
    assert summary["search"]["budget"] == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "2026-13"], "error: --month '2026-13' must be YYYY-MM, e.g. 2026-11\n"),
        (
            ["--month", "2026-11", "--unallocated", "share"],
            "error: --unallocated 'share' must be proportional, owner:TEAM or none\n",
        ),
        (
            ["--month", "2026-11", "--by", "provider"],
            "error: --by 'provider' is not a metadata dimension; use one of team, user, agent, "
            "feature\n",
        ),
    ],
)
def test_bad_options_are_one_line(
    warehouse: tuple[Path, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    db, config = warehouse
    result = run_aigw(
        "statement", *args, "--out", str(tmp_path), "--db", str(db), "--config", str(config)
    )
    assert result.returncode == 2
    assert result.stderr == message
    assert not list(tmp_path.iterdir())


def unit_cost(warehouse: tuple[Path, Path], *args: str, config: Path | None = None) -> Any:
    db, default = warehouse
    result = run_aigw(
        "report", "unit-cost", "--since", "2026-11-01", "--until", "2026-12-01",
        "--db", str(db), "--config", str(config or default), "--format", "json", *args,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)


def test_unit_cost_per_conversation(warehouse: tuple[Path, Path], tmp_path: Path) -> None:
    # Conversations: c5 0 (a cache hit), c4 0.333333, c3 1, c1 1.50 (two requests), c2 4:
    # mean 6.833333 / 5; p50 1; p95 at rank 3.8: 1.5 + 0.8 * 2.5 = 3.5; max 4. One request
    # without a conversation: $1.00.
    report = unit_cost(warehouse, "--per", "conversation_id", "--top", "2")
    assert report["summary"] == [
        {
            "units": 5,
            "requests": 6,
            "cost_usd": 6.833333,
            "mean_usd": 1.3666666,
            "p50_usd": 1.0,
            "p95_usd": 3.5,
            "max_usd": 4.0,
            "untagged_requests": 1,
            "untagged_usd": 1.0,
        }
    ]
    assert [(row["unit"], row["requests"], row["cost_usd"]) for row in report["top"]] == [
        ("c2", 1, 4.0),
        ("c1", 2, 1.5),
    ]
    assert [(row["week"], row["units"]) for row in report["weekly"]] == [
        ("2026-11-02", 4),  # c1 (3 Nov), c2, c3, c4, c5 by their first request's week
        ("2026-11-09", 1),
    ]
    # The key from aigw.toml, and outcomes: c1 and c2 resolved (5.50 over 2: 2.75 each;
    # every conversation's 6.833333 over the 2 resolved: 3.4166665).
    configured = tmp_path / "aigw.toml"
    configured.write_text(
        f'[models]\nprices = "{warehouse[1].parent}/prices.toml"\n'
        '[outcomes]\nunit_key = "conversation_id"\n'
    )
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text("unit_id,outcome,value\nc1,resolved,\nc2,resolved,40\n")
    report = unit_cost(warehouse, "--outcomes", str(outcomes), config=configured)
    resolved = [row for row in report["outcomes"] if row["outcome"] == "resolved"]
    assert resolved == [
        {
            "outcome": "resolved",
            "units": 2,
            "cost_usd": 5.5,
            "cost_per_unit_usd": 2.75,
            "value": 40.0,
            "cost_per_outcome_usd": 3.4166665,
        }
    ]


def test_unit_cost_without_a_key_says_how_to_name_one(warehouse: tuple[Path, Path]) -> None:
    db, config = warehouse
    result = run_aigw("report", "unit-cost", "--db", str(db), "--config", str(config))
    assert result.returncode == 2
    assert result.stderr == (
        "error: name the unit's metadata key: --per conversation_id, or "
        '[outcomes] unit_key = "conversation_id" in aigw.toml\n'
    )


def budget(name: str, period: str = "monthly", split_by: str | None = None, **filters: str) -> Any:
    return Budget(name, 10.0, period, (1.0,), ("box",), filters=filters, split_by=split_by)


def test_team_budgets_are_monthly_and_for_the_team_alone() -> None:
    budgets = [
        budget("search", team="search"),
        budget("search-openai", team="search", provider="openai"),  # part of its spend
        budget("weekly-search", "weekly", team="search"),  # another period
        budget("per-team", split_by="team"),
        budget("per-team-anthropic", split_by="team", provider="anthropic"),
        budget("per-agent", split_by="agent"),
        budget("everything"),
    ]
    assert team_budgets(budgets, "team") == [
        TeamBudget("search", 10.0, "search"),
        TeamBudget("per-team", 10.0, None),
    ]


def test_file_names_are_safe_and_distinct() -> None:
    statements = Statements(
        "2026-11",
        "team",
        AllocationRule(),
        "proportional",
        0.0,
        0.0,
        pl.DataFrame(),
        pl.DataFrame(),
    )
    assert team_file_stem(statements, "search") == "2026-11-team-search"
    stems = {team_file_stem(statements, name) for name in ("Search", "search", "a/b", "a_b", "..")}
    assert len(stems) == 5
    assert all(re.fullmatch(r"2026-11-team-[a-zA-Z0-9._-]+", stem) for stem in stems)
    assert team_file_stem(statements, "..").startswith("2026-11-team-_-")


def test_statements_by_another_dimension_name_it_in_files_and_headers() -> None:
    rollup = pl.LazyFrame(
        {
            "hour": [datetime(2026, 11, 2, tzinfo=UTC)],
            "customer": ["acme"],
            "provider": ["openai"],
            "model": ["gpt-4o-mini"],
            "requests": [2],
            "cost_usd": [1.25],
            "saved_usd": [None],
            "unknown_cost_requests": [0],
        },
        schema_overrides={"saved_usd": pl.Float64},
    )
    statements = build_statements(rollup, month="2026-11", dimension="customer", sections=())
    files = statement_files(statements)
    assert sorted(files) == [
        "2026-11-customer-acme.csv",
        "2026-11-customer-acme.html",
        "2026-11-summary.csv",
        "2026-11-summary.html",
    ]
    assert files["2026-11-summary.csv"].decode().splitlines()[:2] == [
        "customer,requests,direct_usd,allocated_usd,total_usd,share,allocated_share,saved_usd,"
        "unpriced_requests,previous_usd,change_ratio,budget,budget_usd,budget_used",
        "acme,2,1.25,0.0,1.25,1.0,,0.0,0,,,,,",
    ]
    assert "<th>Customer</th>" in files["2026-11-summary.html"].decode()
