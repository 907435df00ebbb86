"""`aigw simulate`'s cases (sim/cases.py) reach the reports: through the real gateway and
the simulated providers, then ingest with the demo's aigw.toml, the savings report lists
one opportunity of each kind for them, and the runaway's root cause names its key and the
one request it resends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from app.service import (
    anomaly_report,
    explain_anomalies,
    ingest_and_refresh,
    savings_report,
    whatif_cache,
    whatif_prompt_cache,
)
from app.settings import Settings, load_settings
from ingest import IngestSettings
from sim.simulate import simulate
from sim.traffic import plan_traffic
from tests.conftest import REPO

GATEWAY = REPO / "sample_data" / "gateway.toml"
DEMO_CONFIG = REPO / "sample_data" / "aigw.toml"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings]:
    """1,500 calls (seed 7) through the gateway, ingested with the demo's aigw.toml."""
    root = tmp_path_factory.mktemp("cases")
    summary = simulate(GATEWAY, root / "logs", requests=1500, seed=7)
    assert summary.calls == 1500
    settings = load_settings(DEMO_CONFIG, {})
    ingest_and_refresh(
        IngestSettings(source=str(root / "logs"), db_path=root / "aigw.duckdb"), settings.models
    )
    return root / "aigw.duckdb", settings


def _rows(table: pl.DataFrame) -> dict[tuple[str, str], dict[str, object]]:
    return {(row["kind"], row["scope"]): row for row in table.iter_rows(named=True)}


def test_the_savings_report_lists_an_opportunity_for_each_case(
    warehouse: tuple[Path, Settings],
) -> None:
    """ticket-tagger's 37 calls are claude-opus-4-1's only ones (switch to claude-haiku-4-5);
    the batch agent's 45 calls (3% of 1,500) are the only interactive=false ones; the
    prompt-cache opportunity is handbook-qa's 30 calls (2%) in 9 sessions on
    claude-sonnet-4-5 (the other requests of the model send no large prefix); the
    chat route's 24-hour TTL counts status-digest's repeats among its extra hits."""
    db, settings = warehouse
    rows = _rows(savings_report(db, settings.models, settings.whatif, top=20).table)

    opus = rows[("model", "provider=anthropic, model=claude-opus-4-1")]
    assert opus["change"] == "model name: request claude-haiku-4-5 instead of claude-opus-4-1"
    assert opus["requests"] == 37
    assert opus["evidence"] == (
        "37 priced requests of claude-opus-4-1: $0.17; the same tokens at "
        "claude-haiku-4-5's prices: $0.01"
    )

    batch = rows[("batch", "interactive=false")]
    assert (batch["requests"], batch["evidence"]) == (
        45,
        "45 non-interactive requests: $0.16 now, $0.08 at batch prices",
    )

    prompt = rows[("prompt-cache", "provider=anthropic, model=claude-sonnet-4-5")]
    # its costs cover all of the model's requests; handbook-qa's 30 (a prefix of about
    # 5,100 tokens at $3 a million, $0.46, plus their answers) save about $0.25: 9 writes
    # at $3.75 a million ($0.17) and 21 reads at $0.30 ($0.03) instead
    assert prompt["evidence"] == (
        "30 requests repeat a prompt prefix of 1,024+ tokens without cache reads: $0.80 now; "
        "9 cache writes and 21 reads (5-minute TTL): $0.55"
    )

    # 17 of its 194 extra hits are status-digest's (below), the rest FAQs asked again
    # after more than an hour; none is the runaway's loop (its 82 identical requests were
    # sent with cf-aig-skip-cache, which the gateway logs: counted, the item said 275)
    chat = rows[("cache", "gateway=prod, endpoint=chat/completions")]
    assert "cache_ttl_s = 86400" in chat["change"]
    assert chat["evidence"] == (
        "194 identical requests paid within 24h of the same answer, replayed with a 24h TTL "
        "(11 hits now, 205 replayed; 0 lost)"
    )
    assert {kind for kind, _ in rows} == {"model", "cache", "batch", "prompt-cache"}


def test_status_digest_repeats_just_past_the_one_hour_ttl(
    warehouse: tuple[Path, Settings],
) -> None:
    """status-digest sends one request 18 times (1.25% of 1,500), 65 to 75 minutes apart:
    the route's 1-hour TTL never served it (no hit, none in the replay: the gateway's cache
    runs on the simulated clock, where on the wall clock every repeat was a hit), a
    24-hour one serves all but the first."""
    db, settings = warehouse
    digest = {"agent": "status-digest"}
    now = whatif_cache(db, settings.models, timedelta(hours=1), filters=digest, per_key=True)
    longer = whatif_cache(db, settings.models, timedelta(hours=24), filters=digest, per_key=True)
    assert now.totals()["requests"] == 18
    assert (now.totals()["cached_requests"], now.totals()["extra_hit_requests"]) == (0, 0)
    assert longer.totals()["extra_hit_requests"] == 17


def test_handbook_qa_reads_its_prefix_within_sessions(warehouse: tuple[Path, Settings]) -> None:
    """handbook-qa's 30 calls (2% of 1,500) come in 9 sessions of 3 or 4 calls (the last cut),
    40 s to 4 minutes apart, sessions 2 to 3 hours apart: each session's first call
    writes the 5,000-token prefix, the 21 others read it."""
    db, settings = warehouse
    answer = whatif_prompt_cache(db, settings.models, filters={"agent": "handbook-qa"})
    totals = answer.totals()
    assert (totals["affected_requests"], totals["cache_write_requests"]) == (30, 9)
    assert totals["cache_read_requests"] == 21
    assert totals["saving_usd"] > 0


def test_the_runaway_root_cause_names_the_key_and_the_repeated_request(
    warehouse: tuple[Path, Settings],
) -> None:
    """The runaway job sends 90 calls (6% of 1,500) on the support-jobs key in the hour
    from 2026-11-19 10:00, 82 of them one identical request with cf-aig-skip-cache: all
    reach the provider, and the root cause says so."""
    db, settings = warehouse
    flags = anomaly_report(
        db,
        settings.models,
        now=datetime(2026, 11, 20, tzinfo=UTC),
        window=timedelta(hours=48),
    )
    assert set(flags["value"]) == {"summarizer"}
    (summary,) = explain_anomalies(db, settings.models, flags).summary.iter_rows(named=True)
    assert summary["headline"] == (
        "100% of +$0.80: agent=summarizer \u00d7 api_key=support-jobs; "
        "82 of its 90 requests repeat one request"
    )


def test_every_planned_call_falls_in_the_simulated_days() -> None:
    """50,000 calls over 8 days: the handbook sessions (2 to 3 hours apart) cannot all fit,
    so fewer are planned: none starts after the window (a session begun in its last hour
    may end in the next), and the plan keeps 50,000 calls (it was 2026-12-11 here)."""
    plan = plan_traffic(50_000, seed=7)
    start, end = datetime(2026, 11, 12, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)
    times = [datetime.fromtimestamp(call.ts_ns / 1e9, UTC) for call in plan.calls]
    assert len(times) == 50_000
    assert start <= min(times) and max(times) < end + timedelta(hours=1)
