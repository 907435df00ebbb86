"""`aigw whatif --prompt-cache` and its line in `aigw report savings`, on a real warehouse.

Catalogue rates of claude-sonnet-4-5 (USD per million tokens): input 3.00, output 15.00,
cache read 0.30, cache write 3.75. Three requests of aigw's gateway on 2026-04-18 at
10:00, 10:01 and 10:02 UTC, each 6,000 input tokens (a 5,000-token prompt prefix, same
hash) and 500 output tokens, no cache reads: 0.018 + 0.0075 = $0.0255 each, $0.0765 in
all. Cached: one write (3,000 + 18,750 + 7,500) / 1e6 = $0.02925 and two reads
(3,000 + 1,500 + 7,500) / 1e6 = $0.012: $0.05325, saving $0.02325. A fourth request,
logged by Cloudflare (no prefix hash), is not estimated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import logpush_record, run_aigw, write_ndjson

AT = 1_776_506_400  # 2026-04-18T10:00:00Z, unix seconds
PREFIX = "5e1d" * 8


def record(minute: int, **fields: Any) -> dict[str, Any]:
    return logpush_record(
        Timestamp=(AT + 60 * minute) * 1_000_000_000,
        Provider="anthropic",
        Model="claude-sonnet-4-5",
        RequestedModel="claude-sonnet-4-5",
        Endpoint="messages",
        Metrics={"durationMs": 100, "tokensIn": 6000, "tokensOut": 500},
        PromptPrefixHash=PREFIX,
        PromptPrefixTokens=5000,
        **fields,
    )


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prompt_cache")
    cloudflare = logpush_record(Timestamp=(AT + 180) * 1_000_000_000)
    write_ndjson(root / "logs" / "a.log.gz", [record(0), record(1), record(2), cloudflare])
    db = root / "aigw.duckdb"
    loaded = run_aigw("ingest", str(root / "logs"), "--db", str(db))
    assert loaded.returncode == 0, loaded.stderr
    return db


def test_the_prompt_cache_whatif_prices_one_write_and_two_reads(warehouse: Path) -> None:
    """By provider and model: $0.0765 now, $0.05325 cached, 1 write + 2 reads; the
    Cloudflare request is counted in a note."""
    result = run_aigw("whatif", "--prompt-cache", "--db", str(warehouse), "--format", "json")
    assert result.returncode == 0, result.stderr
    answer = orjson.loads(result.stdout)
    assert answer["change"] == "provider prompt caching (5 min TTL)"
    sonnet = answer["rows"][0]
    assert {k: sonnet[k] for k in ("provider", "model", "requests", "affected_requests")} == {
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "requests": 3,
        "affected_requests": 3,
    }
    assert (sonnet["cache_write_requests"], sonnet["cache_read_requests"]) == (1, 2)
    assert sonnet["current_cost_usd"] == pytest.approx(0.0765)
    assert sonnet["projected_cost_usd"] == pytest.approx(0.05325)
    assert sonnet["saving_usd"] == pytest.approx(0.02325)
    assert answer["rows"][1]["saving_usd"] == 0
    assert any(
        note.startswith("1 requests carry no prefix hash (logged by another gateway")
        for note in answer["notes"]
    )
    table = run_aigw("whatif", "--prompt-cache", "--db", str(warehouse))
    assert table.returncode == 0, table.stderr
    assert "what if: provider prompt caching (5 min TTL)" in table.stdout
    assert "claude-sonnet-4-5" in table.stdout
    assert "3 of 4 requests affected" in table.stdout


def test_the_savings_report_names_the_cache_control_change(warehouse: Path) -> None:
    """One hour of data (x720 for 30 days): $0.02325 saved is $16.74 a month."""
    result = run_aigw("report", "savings", "--db", str(warehouse), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = [row for row in orjson.loads(result.stdout)["rows"] if row["kind"] == "prompt-cache"]
    assert [(row["scope"], row["saving_per_month_usd"]) for row in rows] == [
        ("provider=anthropic, model=claude-sonnet-4-5", pytest.approx(16.74)),
    ]
    assert rows[0]["change"] == (
        "mark the system prompt and tools of claude-sonnet-4-5's requests cacheable "
        '(Anthropic cache_control: {"type": "ephemeral"} on the last system block)'
    )
    assert rows[0]["evidence"].startswith("3 requests repeat a prompt prefix of 1,024+ tokens")
