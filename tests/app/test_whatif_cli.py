"""`aigw whatif` and `aigw report savings` as a user runs them, on a small real warehouse.

Prices (USD per million tokens, the price file): gpt-4o $10 in, $30 out; gpt-4o-mini $1
in, $2 out; claude-sonnet-4 $3 in, $15 out. The requests of 2026-04-18 (UTC):

    10:00 gpt-4o  summarizer (interactive false) 1,000 in 100 out, request h1   $0.013
    10:02 gpt-4o  summarizer (interactive false) the same request h1            $0.013
    10:03 gpt-4o  summarizer (interactive false) h1 again, a response-cache hit  free ($0.013 saved)
    10:30 gpt-4o  chat       (interactive true)  2,000 in, request h2           $0.020
    11:00 claude-sonnet-4 chat (interactive true) 1,000 in 100 out             $0.0045
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from tests.app.whatif_fixtures import CONFIG, PRICES, record
from tests.conftest import run_aigw, write_ndjson


@pytest.fixture
def warehouse(whatif_warehouse: tuple[Path, Path]) -> tuple[Path, Path]:
    return whatif_warehouse


def whatif(warehouse: tuple[Path, Path], *args: str) -> dict[str, Any]:
    """`aigw whatif ... --format json`, which must succeed."""
    db, config = warehouse
    result = run_aigw("whatif", *args, "--db", str(db), "--config", str(config), "--format", "json")
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = orjson.loads(result.stdout)
    return document


def test_a_model_switch_reports_current_projected_and_saving(warehouse: tuple[Path, Path]) -> None:
    """gpt-4o -> gpt-4o-mini: $0.046 now (what `aigw report cost` says), then 2 x $0.0012 +
    $0.002 = $0.0044: $0.0416 saved on 3 of 4 requests (the cache hit stays free)."""
    answer = whatif(warehouse, "--model", "gpt-4o=gpt-4o-mini")
    assert answer["change"] == "model gpt-4o -> gpt-4o-mini"
    assert answer["since"] == "2026-03-19T12:00:00+00:00"  # 30 days up to the newest data
    assert answer["until"] == "2026-04-18T12:00:00+00:00"
    assert answer["totals"] == {
        "requests": 4,
        "affected_requests": 3,
        "current_cost_usd": 0.046,
        "projected_cost_usd": 0.0044,
        "saving_usd": 0.0416,
    }
    db, config = warehouse
    cost = run_aigw(
        "report", "cost", "--by", "model", "--db", str(db), "--config", str(config),
        "--format", "json",
    )  # fmt: skip
    by_model = {row["model"]: row["cost_usd"] for row in orjson.loads(cost.stdout)}
    assert by_model["gpt-4o"] == answer["totals"]["current_cost_usd"]


def test_where_and_by_narrow_and_split_the_switch(warehouse: tuple[Path, Path]) -> None:
    answer = whatif(
        warehouse, "--model", "gpt-4o=gpt-4o-mini", "--where", "agent=summarizer", "--by", "agent"
    )
    assert answer["rows"] == [
        {
            "agent": "summarizer",
            "requests": 3,
            "affected_requests": 2,
            "current_cost_usd": 0.026,
            "projected_cost_usd": 0.0024,
            "saving_usd": 0.0236,
        }
    ]


def test_a_switch_across_families_is_refused_in_one_line(warehouse: tuple[Path, Path]) -> None:
    db, config = warehouse
    result = run_aigw(
        "whatif", "--model", "gpt-4o=anthropic/claude-sonnet-4", "--db", str(db),
        "--config", str(config),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("error: openai/gpt-4o -> anthropic/claude-sonnet-4 crosses")
    assert len(result.stderr.splitlines()) == 1
    ratio = whatif(
        warehouse, "--model", "gpt-4o=anthropic/claude-sonnet-4", "--cross-family-ratio", "1"
    )
    # 4,000 in x $3 + 200 out x $15 = $0.015
    assert ratio["totals"]["projected_cost_usd"] == 0.015


def test_cache_ttl_replays_identical_requests(warehouse: tuple[Path, Path]) -> None:
    """5m: the 10:02 repeat of h1 would have been a hit: $0.013 saved. 30s: the 10:03 hit
    would have expired (filled at 10:02): $0.013 paid again."""
    five = whatif(warehouse, "--cache-ttl", "5m")
    assert five["change"] == "response cache TTL 5m"
    row = five["rows"][0]
    assert (row["gateway"], row["endpoint"]) == ("prod", "chat/completions")
    assert (row["extra_hit_requests"], row["lost_hit_requests"], row["saving_usd"]) == (1, 0, 0.013)
    assert row["cache_saved_usd"] == 0.013
    thirty = whatif(warehouse, "--cache-ttl", "30s")
    assert thirty["totals"]["saving_usd"] == -0.013


def test_batch_prices_the_non_interactive_traffic(warehouse: tuple[Path, Path]) -> None:
    """interactive=false is the summarizer's gpt-4o: $0.026 at 50% off (OpenAI's batch API)."""
    answer = whatif(warehouse, "--batch")
    assert answer["rows"] == [
        {
            "interactive": "false",
            "requests": 3,
            "affected_requests": 2,
            "current_cost_usd": 0.026,
            "projected_cost_usd": 0.013,
            "saving_usd": 0.013,
        }
    ]


def test_budgets_replay_lists_refusals_users_and_hours(warehouse: tuple[Path, Path]) -> None:
    """$0.015 a day per agent: the summarizer's cache hit at 10:03 comes after $0.026 spent
    (refused, nothing avoided); chat's 11:00 call after $0.020 (refused, $0.0045 avoided)."""
    _, config = warehouse
    answer = whatif(warehouse, "--budgets", str(config.parent / "budgets.toml"))
    assert answer["totals"] == {}  # each budget's scopes overlap others': no total
    rows = {row["scope"]: row for row in answer["rows"]}
    assert rows["agent=summarizer"]["affected_requests"] == 1
    assert rows["agent=summarizer"]["saving_usd"] == 0.0
    assert rows["agent=chat"]["affected_requests"] == 1
    assert rows["agent=chat"]["saving_usd"] == 0.0045
    assert rows["agent=chat"]["first_refused"] == "2026-04-18T11:00:00+00:00"
    assert answer["users"] == [
        {"budget": "agent-daily", "scope": "agent=chat", "user": "ana", "refused_requests": 1,
         "avoided_usd": 0.0045},
        {"budget": "agent-daily", "scope": "agent=summarizer", "user": "ana",
         "refused_requests": 1, "avoided_usd": 0.0},
    ]  # fmt: skip
    assert [row["hour"] for row in answer["hours"]] == [
        "2026-04-18T11:00:00+00:00",
        "2026-04-18T10:00:00+00:00",
    ]


def test_one_change_must_be_named(warehouse: tuple[Path, Path]) -> None:
    db, config = warehouse
    for args in ([], ["--batch", "--cache-ttl", "5m"]):
        result = run_aigw("whatif", *args, "--db", str(db), "--config", str(config))
        assert result.returncode == 2
        assert (
            result.stderr == "error: name one change: --model, --cache-ttl, --batch, "
            "--prompt-cache, --budgets or --limits\n"
        )


def test_the_savings_report_lists_each_change_with_its_monthly_saving(
    warehouse: tuple[Path, Path],
) -> None:
    """Over the 2 hours of data (x360 for 30 days): gpt-4o -> gpt-4o-mini saves $0.0416
    ($14.976 a month); the batch API and a 5-minute cache $0.013 each ($4.68)."""
    db, config = warehouse
    result = run_aigw(
        "report", "savings", "--db", str(db), "--config", str(config), "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    rows = report["rows"]
    assert [(row["kind"], row["scope"], row["saving_per_month_usd"]) for row in rows] == [
        ("model", "provider=openai, model=gpt-4o", 14.976),
        ("batch", "interactive=false", 4.68),
        ("cache", "gateway=prod, endpoint=chat/completions", 4.68),
    ]
    assert rows[0]["change"] == "model name: request gpt-4o-mini instead of gpt-4o"
    assert rows[0]["filters"] == {"provider": "openai", "model": "gpt-4o"}
    assert "cache_ttl_s = 300" in rows[2]["change"]
    table = run_aigw("report", "savings", "--db", str(db), "--config", str(config))
    assert table.returncode == 0, table.stderr
    assert "1. change: model name: request gpt-4o-mini instead of gpt-4o" in table.stdout


GATEWAY = """\
[auth]
required = false

[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:9"
api_key_env = "AIGW_TEST_NO_KEY"

[routes.claude]
match = ["claude-*"]
rate_limits = [{ name = "per-ip", per = "ip", limit = 1 }]

[routes.chat]
match = ["*"]
provider = "openai"
rate_limits = [
    { name = "per-agent", per = "metadata:agent", unit = "requests", limit = 1, window_s = 3600 },
]
"""


def test_limits_replay_refuses_past_the_limit_per_window_and_user(
    warehouse: tuple[Path, Path],
) -> None:
    """One request an hour per agent on the chat route: the summarizer's 10:02 request
    ($0.013) and its 10:03 cache hit are refused; chat's 10:30 request passes; the
    claude-sonnet-4 request is on the claude route, whose only limit is per ip (not in
    the logs)."""
    _, config = warehouse
    gateway = config.parent / "gateway.toml"
    gateway.write_text(GATEWAY)
    answer = whatif(warehouse, "--limits", str(gateway))
    assert answer["change"] == "rate limits: chat.per-agent"
    assert answer["rows"] == [
        {"route": "chat", "requests": 4, "affected_requests": 2, "current_cost_usd": 0.046,
         "projected_cost_usd": 0.033, "saving_usd": 0.013, "rerouted_requests": 0,
         "refused_users": 1, "first_refused": "2026-04-18T10:02:00+00:00"},
    ]  # fmt: skip
    assert answer["users"] == [
        {"route": "chat", "user": "ana", "refused_requests": 2, "rerouted_requests": 0,
         "avoided_usd": 0.013}
    ]  # fmt: skip
    assert answer["windows"] == [
        {"route": "chat", "limit": "per-agent", "subject": "summarizer",
         "window_start": "2026-04-18T10:00:00+00:00", "refused_requests": 2,
         "rerouted_requests": 0, "avoided_usd": 0.013},
    ]  # fmt: skip
    assert (
        "limits per ip are not replayed (no client address in the logs): claude.per-ip"
        in (answer["notes"])
    )
    db, _ = warehouse
    table = run_aigw("whatif", "--limits", str(gateway), "--db", str(db), "--config", str(config))
    assert table.returncode == 0, table.stderr
    assert "refused requests per user (the disruption):" in table.stdout
    assert "refused (and rerouted) requests per limit, subject and window:" in table.stdout


BUDGETS_GATEWAY = """\
[auth]
required = false

[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:9"

[routes.claude]
match = ["claude-*"]
provider = "openai"
budget = { usd = 0.001, period = "day", per = "route" }

[routes.chat]
match = ["*"]
provider = "openai"
budget = { usd = 0.01, period = "day", per = "metadata:agent", action = "reroute", reroute = "openai/gpt-4o-mini" }
"""  # noqa: E501 - a TOML inline table is one line


def test_limits_replay_reroutes_and_refuses_by_the_routes_budgets(
    warehouse: tuple[Path, Path],
) -> None:
    """$0.01 a day per agent on chat, then gpt-4o-mini: the summarizer's 10:00 request
    ($0.013) passes and spends it; its 10:02 request costs 1,000 x $1 + 100 x $2 per
    million = $0.0012 rerouted, and its cache hit is rerouted free; the chat agent's $0.02
    passes. The claude route's $0.001 a day: its one request passes (nothing spent yet)."""
    _, config = warehouse
    gateway = config.parent / "budgets-gateway.toml"
    gateway.write_text(BUDGETS_GATEWAY)
    answer = whatif(warehouse, "--limits", str(gateway))
    assert answer["change"] == (
        "budgets: claude ($0.001 a day per route); chat ($0.01 a day per metadata:agent, "
        "then reroute to openai/gpt-4o-mini)"
    )
    assert answer["rows"] == [
        {"route": "chat", "requests": 4, "affected_requests": 2, "current_cost_usd": 0.046,
         "projected_cost_usd": 0.0342, "saving_usd": 0.0118, "rerouted_requests": 2,
         "refused_users": 0, "first_refused": None},
        {"route": "claude", "requests": 1, "affected_requests": 0, "current_cost_usd": 0.0045,
         "projected_cost_usd": 0.0045, "saving_usd": 0.0, "rerouted_requests": 0,
         "refused_users": 0, "first_refused": None},
    ]  # fmt: skip
    assert answer["users"] == [
        {"route": "chat", "user": "ana", "refused_requests": 0, "rerouted_requests": 2,
         "avoided_usd": 0.0118}
    ]  # fmt: skip
    assert answer["windows"] == [
        {"route": "chat", "limit": "budget", "subject": "summarizer",
         "window_start": "2026-04-18T00:00:00+00:00", "refused_requests": 0,
         "rerouted_requests": 2, "avoided_usd": 0.0118},
    ]  # fmt: skip
    # From 10:01: the 10:00 request ($0.013), before the window, spent the day's budget.
    later = whatif(warehouse, "--limits", str(gateway), "--since", "2026-04-18T10:01:00Z")
    assert later["rows"][0] == {
        "route": "chat", "requests": 3, "affected_requests": 2, "current_cost_usd": 0.033,
        "projected_cost_usd": 0.0212, "saving_usd": 0.0118, "rerouted_requests": 2,
        "refused_users": 0, "first_refused": None,
    }  # fmt: skip
    db, _ = warehouse
    table = run_aigw("whatif", "--limits", str(gateway), "--db", str(db), "--config", str(config))
    assert table.returncode == 0, table.stderr
    assert "Rerouted requests" in table.stdout
    assert "refused (and rerouted) requests per limit, subject and window:" in table.stdout


def test_limits_replay_with_budgets_that_only_refuse(warehouse: tuple[Path, Path]) -> None:
    """One route for every model, $0.01 a day for the route, refusing over it (no reroute,
    so no pricing columns are read): the 10:00 request ($0.013) passes with nothing spent
    yet and spends the day's budget; the other four are refused: $0.013 + the free cache
    hit + $0.020 + $0.0045 = $0.0375 avoided."""
    _, config = warehouse
    gateway = config.parent / "refuse-gateway.toml"
    gateway.write_text(
        '[auth]\nrequired = false\n\n[providers.openai]\nkind = "openai"\n'
        'base_url = "http://127.0.0.1:9"\n\n[routes.chat]\nmatch = ["*"]\n'
        'provider = "openai"\nbudget = { usd = 0.01, period = "day", per = "route" }\n'
    )
    answer = whatif(warehouse, "--limits", str(gateway))
    [row] = answer["rows"]
    assert (row["route"], row["requests"], row["affected_requests"]) == ("chat", 5, 4)
    assert (row["saving_usd"], row["rerouted_requests"]) == (0.0375, 0)


def test_limits_replay_folds_the_records_of_one_log_id_at_two_times(tmp_path: Path) -> None:
    """The warehouse keeps one row a (log id, time): log id "same" at 10:00 (object a) and
    at 10:05 (object b) are two rows, replayed as one request at 10:00 ($0.026), which
    passes and spends the route's $0.000001; "other" at 10:07 ($0.013) is rerouted to
    gpt-4o-mini ($0.0012): 2 requests, $0.0118 avoided, the same in every table."""
    (tmp_path / "prices.toml").write_text(PRICES)
    (tmp_path / "aigw.toml").write_text(CONFIG)
    same = [
        record(0, "chat", 1_000, 100, LogId="same"),
        record(5, "chat", 1_000, 100, LogId="same"),
    ]
    write_ndjson(
        tmp_path / "logs" / "a.log.gz", [same[0], record(7, "chat", 1_000, 100, LogId="other")]
    )
    write_ndjson(tmp_path / "logs" / "b.log.gz", [same[1]])
    db = tmp_path / "aigw.duckdb"
    config = str(tmp_path / "aigw.toml")
    # the gate flags the log id seen twice (the rows stay loaded): not this test's subject
    loaded = run_aigw(
        "ingest", str(tmp_path / "logs"), "--db", str(db), "--config", config, "--quality", "off"
    )
    assert loaded.returncode == 0, loaded.stderr
    gateway = tmp_path / "gateway.toml"
    gateway.write_text(
        BUDGETS_GATEWAY.split("[routes.claude]", maxsplit=1)[0] + '[routes.chat]\nmatch = ["*"]\n'
        'provider = "openai"\nbudget = { usd = 0.000001, period = "day", per = "route", '
        'action = "reroute", reroute = "openai/gpt-4o-mini" }\n'
    )
    answer = whatif((db, tmp_path / "aigw.toml"), "--limits", str(gateway))
    [row] = answer["rows"]
    assert (row["requests"], row["affected_requests"], row["rerouted_requests"]) == (2, 1, 1)
    assert (row["current_cost_usd"], row["projected_cost_usd"]) == (0.039, 0.0272)
    assert row["saving_usd"] == 0.0118
    assert [window["avoided_usd"] for window in answer["windows"]] == [0.0118]


def test_a_gateway_file_without_limits_or_missing_is_one_line(
    warehouse: tuple[Path, Path],
) -> None:
    db, config = warehouse
    bare = config.parent / "bare-gateway.toml"
    bare.write_text(GATEWAY.split("[routes.claude]", maxsplit=1)[0])
    for path, message in (
        (
            bare,
            f"error: {bare}: no route has rate_limits per key, route or metadata, or a "
            "budget, to replay\n",
        ),
        (
            config.parent / "nosuch.toml",
            f"error: {config.parent / 'nosuch.toml'}: no such file; pass --config\n",
        ),
    ):
        result = run_aigw("whatif", "--limits", str(path), "--db", str(db), "--config", str(config))
        assert (result.returncode, result.stderr) == (2, message)


def test_a_request_the_client_sent_past_the_cache_is_not_replayed_as_cacheable(
    tmp_path: Path,
) -> None:
    """The same gpt-4o request ($0.013) at 10:00 and 10:02; the first sent with
    cf-aig-skip-cache (the gateway logs CacheSkipped): it fills nothing, so a 5-minute
    TTL saves nothing. Without the flag the 10:02 request would be a hit ($0.013)."""
    (tmp_path / "prices.toml").write_text(PRICES)
    (tmp_path / "aigw.toml").write_text(CONFIG)
    records = [
        record(0, "summarizer", 1_000, 100, CacheKeyHash="h9", CacheSkipped=True),
        record(2, "summarizer", 1_000, 100, CacheKeyHash="h9"),
    ]
    write_ndjson(tmp_path / "logs" / "a.log.gz", records)
    db, config = tmp_path / "aigw.duckdb", tmp_path / "aigw.toml"
    loaded = run_aigw("ingest", str(tmp_path / "logs"), "--db", str(db), "--config", str(config))
    assert loaded.returncode == 0, loaded.stderr
    totals = whatif((db, config), "--cache-ttl", "5m")["totals"]
    assert (totals["requests"], totals["extra_hit_requests"], totals["saving_usd"]) == (2, 0, 0.0)
    without_flag = [record(0, "summarizer", 1_000, 100, CacheKeyHash="h9"), records[1]]
    write_ndjson(tmp_path / "logs" / "a.log.gz", without_flag)
    db.unlink()
    loaded = run_aigw("ingest", str(tmp_path / "logs"), "--db", str(db), "--config", str(config))
    assert loaded.returncode == 0, loaded.stderr
    totals = whatif((db, config), "--cache-ttl", "5m")["totals"]
    assert (totals["extra_hit_requests"], totals["saving_usd"]) == (1, 0.013)


def test_limits_replay_with_a_reroute_budget_orders_ties_by_event_id(tmp_path: Path) -> None:
    """Two gpt-4o requests at 10:00 ($0.013 each), one a route an hour: the tie goes by
    the request's key, its event id, as its 64-bit hash (DuckDB's ``hash``: the order of
    the refresh's kept inputs too), not by its log id, also with a reroute budget (whose
    pricing columns hold the log id, read the long way): the request whose event id
    hashes lower passes, the other is refused."""
    (tmp_path / "prices.toml").write_text(PRICES)
    (tmp_path / "aigw.toml").write_text(CONFIG)
    records = [
        {**record(0, "chat", 1_000, 100, LogId=log_id, EventId=event), "Metadata": {"user": user}}
        for log_id, event, user in (("a", "z", "ana"), ("b", "y", "bob"))
    ]
    write_ndjson(tmp_path / "logs" / "a.log.gz", records)
    db, config = tmp_path / "aigw.duckdb", tmp_path / "aigw.toml"
    loaded = run_aigw("ingest", str(tmp_path / "logs"), "--db", str(db), "--config", str(config))
    assert loaded.returncode == 0, loaded.stderr
    gateway = tmp_path / "gateway.toml"
    limited = (
        BUDGETS_GATEWAY.split("[routes.claude]", maxsplit=1)[0] + '[routes.chat]\nmatch = ["*"]\n'
        'provider = "openai"\nrate_limits = [{ name = "one", per = "route", limit = 1, '
        "window_s = 3600 }]\n"
    )
    reroute = (
        'budget = { usd = 1, period = "day", per = "route", action = "reroute", '
        'reroute = "openai/gpt-4o-mini" }\n'
    )
    with duckdb.connect(str(db), read_only=True) as con:
        first = con.execute("SELECT hash('y') < hash('z')").fetchone()
    refused = "ana" if first and first[0] else "bob"  # ana's event is "z", bob's "y"
    for text in (limited, limited + reroute):
        gateway.write_text(text)
        answer = whatif((db, config), "--limits", str(gateway))
        assert answer["users"] == [
            {"route": "chat", "user": refused, "refused_requests": 1, "rerouted_requests": 0,
             "avoided_usd": 0.013}
        ]  # fmt: skip
