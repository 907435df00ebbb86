"""The read behind cost per unit on a real warehouse: each request's business key (any
key name), a dimension, the filters and window, and the effective cost the last rollup
refresh stored (none before one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.warehouse import open_warehouse, unit_cost_rows
from ingest import IngestSettings, run_ingest
from models import ModelsSettings, refresh_rollups
from tests.conftest import logpush_record, write_ndjson

DAY0 = datetime(2026, 4, 18, tzinfo=UTC)
KEY = 'ticket "id"'  # a key name that needs quoting in a JSON path


def _record(at: datetime, tokens_in: int, **metadata: str) -> dict[str, object]:
    return logpush_record(
        Timestamp=int(at.timestamp()) * 1_000_000_000,
        Metadata=metadata,
        Metrics={"tokensIn": tokens_in, "tokensOut": 0, "durationMs": 100},
    )


def test_keys_dimensions_filters_and_stored_costs(tmp_path: Path) -> None:
    records = [
        _record(DAY0, 1_000_000, team="search", agent="bot", **{KEY: "T-1"}),  # $1.00
        _record(DAY0 + timedelta(minutes=1), 2_000_000, team="support", **{KEY: "T-2"}),  # $2
        _record(DAY0 + timedelta(minutes=2), 500_000, team="search"),  # $0.50, no ticket
        _record(DAY0 + timedelta(days=1), 1_000_000, team="search", **{KEY: "T-1"}),  # later
    ]
    write_ndjson(tmp_path / "logs" / "a.log.gz", records)
    db = tmp_path / "w.duckdb"
    assert run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db)).rows_loaded == 4
    (tmp_path / "prices.toml").write_text(
        '[[price]]\nprovider = "openai"\nmodel = "gpt-4o-mini"\ninput = 1\noutput = 2\n'
    )
    settings = ModelsSettings(prices=tmp_path / "prices.toml")
    window = {"since": DAY0, "until": DAY0 + timedelta(days=1)}
    with open_warehouse(db) as warehouse:
        before = unit_cost_rows(warehouse.con, settings, unit_key=KEY, **window)
        refresh_rollups(warehouse, settings)
        after = unit_cost_rows(
            warehouse.con, settings, unit_key=KEY, by="agent", filters={"team": "search"}, **window
        )
    assert before.sort("ts").rows() == [
        (DAY0, "T-1", None),
        (DAY0 + timedelta(minutes=1), "T-2", None),
        (DAY0 + timedelta(minutes=2), None, None),
    ]
    assert after.columns == ["ts", "unit", "agent", "cost_usd"]
    assert after.sort("ts").rows() == [
        (DAY0, "T-1", "bot", 1.0),
        (DAY0 + timedelta(minutes=2), None, None, 0.5),
    ]
