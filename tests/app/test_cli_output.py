"""What the CLI prints, as a user runs it: tables that fit and show values as typed,
exact CSV and JSON, one line for every wrong option, one line saying why a report is
empty, a failed ingest that leaves no file, locks and ports explained. Each case runs
the real command and pins stdout, stderr and the exit code."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.app.test_report_cli import RECORDS, ingest, write_config
from tests.conftest import run_aigw, write_ndjson

Warehouse = tuple[Path, Path]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """Six requests of three teams on 2026-04-18 and 19, priced by a price file."""
    root = tmp_path_factory.mktemp("output")
    config = write_config(root)
    write_ndjson(root / "logs" / "a.log.gz", RECORDS)
    db = root / "aigw.duckdb"
    ingest(root / "logs", db, config)
    return db, config


def aigw(warehouse: Warehouse, *args: str, columns: int = 200) -> tuple[int, str, str]:
    """Run ``aigw ARGS --db … --config …`` (``--config`` for report commands)."""
    db, config = warehouse
    extra = ["--config", str(config)] if args[0] == "report" else []
    result = run_aigw(*args, "--db", str(db), *extra, env={"COLUMNS": str(columns)})
    return result.returncode, result.stdout, result.stderr


def test_a_report_table_fits_the_terminal_and_formats_money_and_counts(
    warehouse: Warehouse,
) -> None:
    """At 60 columns: labels, money in dollars, identity and money columns first, numbers
    never wrapped; the columns left out are named on stderr. --columns picks others."""
    code, out, err = aigw(warehouse, "report", "cost", "--by", "team", columns=60)
    assert code == 0
    assert out.splitlines() == [
        "┏━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━┓",
        "┃ Team     ┃ Requests ┃ Errors ┃    Cost ┃   Saved ┃",
        "┡━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━┩",
        "│ platform │        2 │      1 │ $0.0120 │ $0.0000 │",
        "│ search   │        2 │      0 │ $0.0060 │ $0.0000 │",
        "│ support  │        2 │      0 │ $0.0045 │ $0.0045 │",
        "└──────────┴──────────┴────────┴─────────┴─────────┘",
    ]
    assert err == (
        "note: 7 columns left out to fit 60 characters: cached_requests, tokens_in, "
        "tokens_out, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, "
        "unknown_cost_requests "
        "(choose with --columns, or use --format csv)\n"
    )
    picked = ("--columns", "team,tokens_in")
    code, out, err = aigw(warehouse, "report", "cost", "--by", "team", *picked, columns=60)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "┏━━━━━━━━━━┳━━━━━━━━━━━┓",
        "┃ Team     ┃ Tokens in ┃",
        "┡━━━━━━━━━━╇━━━━━━━━━━━┩",
        "│ platform │    10,000 │",
        "│ search   │     3,000 │",
        "│ support  │     2,000 │",
        "└──────────┴───────────┘",
    ]


def test_columns_picks_and_day_periods_print_as_dates(warehouse: Warehouse) -> None:
    code, out, err = aigw(
        warehouse, "report", "cost", "--by", "team", "--grain", "day", "--top", "1",
        "--columns", "period,team,cost_usd", "--format", "csv",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "period,team,cost_usd",
        "2026-04-18,platform,0.012",
        "2026-04-18,other,0.0065",
        "2026-04-19,platform,0.0",
        "2026-04-19,other,0.004",
    ]


def test_sql_shows_markup_and_emoji_codes_as_typed_and_floats_without_noise(
    warehouse: Warehouse,
) -> None:
    code, out, err = aigw(warehouse, "sql", "SELECT '[bold]hi[/bold]' a, 'a:x:b' c, NULL n")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "┏━━━━━━━━━━━━━━━━━┳━━━━━━━┳━━━┓",
        "┃ a               ┃ c     ┃ n ┃",
        "┡━━━━━━━━━━━━━━━━━╇━━━━━━━╇━━━┩",
        "│ [bold]hi[/bold] │ a:x:b │ — │",
        "└─────────────────┴───────┴───┘",
    ]
    code, out, err = aigw(
        warehouse, "sql", "SELECT 0.1::DOUBLE + 0.2::DOUBLE AS x, 4.978219483999999 AS y",
        "--format", "json",
    )  # fmt: skip
    assert (code, out, err) == (0, '[{"x":0.3,"y":4.978219484}]\n', "")


def test_help_texts_keep_their_square_brackets() -> None:
    result = run_aigw("ingest", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "(default: [ingest] quality in aigw.toml, else fail)" in text
    assert "aigw.toml with [models] settings" in text
    proxy = run_aigw("proxy", "--help")
    assert proxy.returncode == 0
    text = " ".join(proxy.stdout.split())
    assert "Bind address (default: host under [server] in the config)." in text
    assert "Port (default: port under [server] in the config)." in text
    assert "\\" not in text


def test_report_help_lists_every_report_and_every_kind_of_saving() -> None:
    """The group's help names each report command (a new one fails here until the help
    names it too); the savings command's help names each kind of opportunity."""
    group = run_aigw("report", "--help")
    assert group.returncode == 0
    text = " ".join(group.stdout.split())
    assert (
        "Spend, cost drift (reconcile), cache, anomaly, forecast, unit-cost and savings reports."
        in text
    )
    listed = group.stdout.split("Commands:")[1].splitlines()
    assert [line.split()[0] for line in listed if line.strip()] == [
        "cost", "reconcile", "cache", "anomalies", "forecast", "unit-cost", "savings",
    ]  # fmt: skip
    savings = run_aigw("report", "savings", "--help")
    assert savings.returncode == 0
    assert "model switches, cache TTLs, batch APIs and provider prompt caching" in " ".join(
        savings.stdout.split()
    )


def test_sql_prints_every_statement_in_order(warehouse: Warehouse) -> None:
    code, out, err = aigw(warehouse, "sql", "SELECT 1 AS a; SELECT 'two' AS b")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "-- SELECT 1 AS a",
        "┏━━━┓",
        "┃ a ┃",
        "┡━━━┩",
        "│ 1 │",
        "└───┘",
        "",
        "-- SELECT 'two' AS b",
        "┏━━━━━┓",
        "┃ b   ┃",
        "┡━━━━━┩",
        "│ two │",
        "└─────┘",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sql", ""), "error: no SQL statement given"),
        (("sql", " ; "), "error: no SQL statement given"),
        (
            ("sql", "SELECT 1; SELECT 2", "--format", "csv"),
            "error: --format csv prints one result; the SQL has 2 statements that return rows "
            "(run them one at a time)",
        ),
        (("report", "cost", "--top", "-1"), "error: --top -1 must be 1 or more"),
        (("report", "cache", "--candidates", "-3"), "error: --candidates -3 must be 0 or more"),
        (
            ("report", "anomalies", "--min-repeats", "1"),
            "error: --min-repeats 1 must be 2 or more",
        ),
        (("report", "anomalies", "--min-score", "-1"), "error: --min-score -1 must be 0 or more"),
        (
            ("report", "anomalies", "--min-impact", "-0.5"),
            "error: --min-impact -0.5 must be 0 or more",
        ),
        (
            ("report", "cost", "--since", "2026-04-19", "--until", "2026-04-18"),
            "error: --since 2026-04-19 00:00 is not before --until 2026-04-18 00:00: "
            "the window is empty (--until is exclusive)",
        ),
        (
            ("report", "cost", "--columns", "cost_usd,nope", "--by", "team"),
            "error: --columns: no column 'nope'; the columns are team, requests, errors, "
            "cached_requests, tokens_in, tokens_out, cache_read_tokens, cache_write_tokens, "
            "cache_write_1h_tokens, cost_usd, saved_usd, unknown_cost_requests",
        ),
        (
            ("ingest", "s3://bucket/logs", "--endpoint-url", "not-a-url"),
            "error: --endpoint-url 'not-a-url' is not a URL; give http(s)://host[:port], "
            "e.g. https://ACCOUNT.r2.cloudflarestorage.com",
        ),
    ],
)
def test_a_wrong_option_is_one_line_and_exit_2(
    warehouse: Warehouse, args: tuple[str, ...], message: str
) -> None:
    assert aigw(warehouse, *args) == (2, "", message + "\n")


def test_sql_refuses_to_write_or_read_files(warehouse: Warehouse, tmp_path: Path) -> None:
    """The "read-only" connection is sandboxed: COPY TO writes nothing, other files stay
    unread, and SET cannot turn the sandbox off."""
    target = tmp_path / "out.csv"
    refused = (
        "error: refused: aigw sql reads only the warehouse (no COPY … TO, ATTACH, file reads, "
        "INSTALL or SET); save results with --format csv > FILE\n"
    )
    for sql in (
        f"COPY (SELECT 1) TO '{target}'",
        "SELECT * FROM read_csv('/etc/hostname')",
        "SET enable_external_access = true",
    ):
        assert aigw(warehouse, "sql", sql) == (2, "", refused)
    assert not target.exists()


def test_an_empty_report_says_why(warehouse: Warehouse) -> None:
    span = "the data covers 2026-04-18 00:00 to 2026-04-19 02:00 UTC"
    assert aigw(warehouse, "report", "cost", "--where", "model=nosuch") == (
        0,
        "",
        f"no spend matches --where model=nosuch; {span}\n",
    )
    assert aigw(warehouse, "report", "cost", "--since", "2026-05-01", "--format", "json") == (
        0,
        "[]\n",
        f"no spend matches --since 2026-05-01; {span}\n",
    )
    assert aigw(warehouse, "report", "forecast", "--now", "2026-06-10T00:00:00") == (
        0,
        "",
        "no forecast: no spend in the month up to 2026-06-10 00:00 UTC; the data ends "
        "2026-04-19 02:00 UTC (pass --now within the data)\n",
    )


def test_a_failed_ingest_leaves_no_warehouse_behind(tmp_path: Path) -> None:
    db = tmp_path / "new" / "deeper" / "new.duckdb"
    result = run_aigw("ingest", str(tmp_path / "nonexistent"), "--db", str(db))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: folder {tmp_path / 'nonexistent'} does not exist\n"
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def writer(warehouse: Warehouse) -> Iterator[subprocess.Popen[str]]:
    """Another program holding the warehouse open for writing."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(warehouse[0])!r}); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    yield holder
    holder.kill()
    holder.wait()
    holder.stdout.close()


def test_a_reader_blocked_by_a_writer_is_told_who_and_what_to_do(
    warehouse: Warehouse, writer: subprocess.Popen[str]
) -> None:
    assert aigw(warehouse, "sql", "SELECT 1") == (
        2,
        "",
        f"error: warehouse {warehouse[0]} is in use by another program "
        f"({Path(sys.executable).name}, pid {writer.pid}), which is writing it; it can be "
        "read again when that finishes: retry in a moment\n",
    )


def test_a_taken_dashboard_port_is_one_line_with_the_fix(warehouse: Warehouse) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code, out, err = aigw(warehouse, "dashboard", "--port", str(port))
    assert (code, out) == (2, "")
    assert err == (
        f"error: port {port} on 127.0.0.1 is not available (Address already in use): stop "
        f"what listens there or pick another port: --port {port + 1} "
        f"(make demo PORT={port + 1})\n"
    )


def test_the_readme_sql_example_sums_what_report_cost_says(warehouse: Warehouse) -> None:
    """The README's `aigw sql` line sums each request's effective cost (requests_costed,
    migration v6): the same dollars per model as `aigw report cost`; the views agree."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    (example,) = re.findall(r'^aigw sql "(.*)"$', readme, flags=re.MULTILINE)
    code, out, err = aigw(warehouse, "sql", example, "--format", "json")
    assert (code, err) == (0, "")
    by_sql = {(row["provider"], row["model"]): row["cost_usd"] for row in orjson.loads(out)}
    code, out, err = aigw(warehouse, "report", "cost", "--format", "json")
    by_report = {(row["provider"], row["model"]): row["cost_usd"] for row in orjson.loads(out)}
    assert (
        by_sql
        == by_report
        == {
            ("openai", "gpt-4o-mini"): 0.018,
            ("anthropic", "claude-sonnet-4"): 0.0045,
        }
    )
    views = (
        "SELECT (SELECT sum(effective_cost_usd) FROM spend_by_day_team) AS by_team, "
        "(SELECT sum(saved_usd) FROM cache_savings) AS saved, "
        "(SELECT count(DISTINCT api_key) FROM requests_costed) AS keys"
    )
    code, out, err = aigw(warehouse, "sql", views, "--format", "json")
    assert (code, out, err) == (0, '[{"by_team":0.0225,"saved":0.0045,"keys":0}]\n', "")


def test_a_reader_that_stops_early_is_not_an_error(warehouse: Warehouse) -> None:
    """`aigw sql … | head -1`: the closed pipe ends the command quietly with exit 0."""
    command = [sys.executable, "-m", "app", "sql", "SELECT * FROM range(300000)"]
    process = subprocess.Popen(
        [*command, "--format", "csv", "--db", str(warehouse[0])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert process.stdout is not None and process.stdout.readline() == "range\n"
    process.stdout.close()
    assert process.stderr is not None
    assert (process.wait(timeout=120), process.stderr.read()) == (0, "")
    process.stderr.close()


def test_the_cache_table_leaves_out_estimated_savings_when_there_are_none(
    warehouse: Warehouse,
) -> None:
    """Every hit here was priced from its tokens: the table has no "Saved (estimated)"
    column of $0.0000 (JSON keeps the field, 0) and no "of which estimated" line."""
    code, out, _ = aigw(warehouse, "report", "cache", "--candidates", "0")
    assert code == 0
    header = out.splitlines()[1]
    assert "Saved" in header and "estimated" not in header
    assert "of which estimated" not in out
    code, out, _ = aigw(warehouse, "report", "cache", "--candidates", "0", "--format", "json")
    rows = orjson.loads(out)["summary"]
    assert [row["saved_estimated_usd"] for row in rows] == [0.0] * len(rows)
    assert sum(row["saved_usd"] for row in rows) == pytest.approx(0.0045, abs=1e-12)
