"""A small what-if warehouse, built once per test session with the real CLI: five
requests of 2026-04-18 with a price file, metadata dimensions and a batch key (the
requests and their costs are in ``tests/app/test_whatif_cli.py``'s docstring).
``whatif_warehouse`` is (the DuckDB file, its aigw.toml; budgets.toml beside it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import logpush_record, run_aigw, write_ndjson

AT = 1_776_506_400  # 2026-04-18T10:00:00Z, unix seconds
PRICES = """\
[[price]]
provider = "openai"
model = "gpt-4o"
input = 10
output = 30

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
CONFIG = """\
[models]
prices = "prices.toml"

[models.dimensions]
team = "team"
user = "user"
agent = "agent"
interactive = "interactive"

[whatif]
batch_key = "interactive"
batch_values = ["false"]
"""
BUDGETS = """\
[channels.outbox]
type = "outbox"
folder = "outbox"

[[budget]]
name = "agent-daily"
amount_usd = 0.015
period = "daily"
split_by = "agent"
channels = ["outbox"]
"""


def record(
    minute: int, agent: str, tokens_in: int, tokens_out: int, **fields: Any
) -> dict[str, Any]:
    interactive = "false" if agent == "summarizer" else "true"
    model = fields.pop("Model", "gpt-4o")
    return logpush_record(
        Timestamp=(AT + 60 * minute) * 1_000_000_000,
        Model=model,
        RequestedModel=model,
        Metrics={"durationMs": 100, "tokensIn": tokens_in, "tokensOut": tokens_out},
        Metadata={"team": "search", "user": "ana", "agent": agent, "interactive": interactive},
        **fields,
    )


RECORDS = [
    record(0, "summarizer", 1_000, 100, CacheKeyHash="h1"),
    record(2, "summarizer", 1_000, 100, CacheKeyHash="h1"),
    record(3, "summarizer", 1_000, 100, CacheKeyHash="h1", Cached=True),
    record(30, "chat", 2_000, 0, CacheKeyHash="h2"),
    record(60, "chat", 1_000, 100, Provider="anthropic", Model="claude-sonnet-4"),
]


@pytest.fixture(scope="session")
def whatif_warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("whatif")
    (root / "prices.toml").write_text(PRICES)
    (root / "aigw.toml").write_text(CONFIG)
    (root / "budgets.toml").write_text(BUDGETS)
    write_ndjson(root / "logs" / "a.log.gz", RECORDS)
    db = root / "aigw.duckdb"
    loaded = run_aigw(
        "ingest", str(root / "logs"), "--db", str(db), "--config", str(root / "aigw.toml")
    )
    assert loaded.returncode == 0, loaded.stderr
    return db, root / "aigw.toml"
