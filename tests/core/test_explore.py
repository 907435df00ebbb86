"""p95 latency on a real warehouse: interpolated like DuckDB's quantile_cont, per day and
over the range, exact for durations logged in milliseconds with up to three decimals."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from core.warehouse.explore import latency_p95
from ingest import IngestSettings, run_ingest
from models import ModelsSettings
from tests.conftest import logpush_record, write_ndjson

DAY0 = 1_776_470_400  # 2026-04-18T00:00:00Z, unix seconds
DAY = 86_400
NS = 1_000_000_000


def _record(at: int, duration_ms: float | None) -> dict[str, object]:
    metrics: dict[str, object] = {"tokensIn": 10, "tokensOut": 5}
    if duration_ms is not None:
        metrics["durationMs"] = duration_ms
    return logpush_record(Timestamp=at * NS, Metrics=metrics)


def test_p95_per_day_and_over_the_range(tmp_path: Path) -> None:
    """Day 1: 100..1000 ms -> 955; day 2: 1.5, 2.25, 10.25 ms -> 9.45; both -> 940.
    A record without a duration is not counted."""
    first = [_record(DAY0 + i, 100.0 * (i + 1)) for i in range(10)]
    second = [_record(DAY0 + DAY + i, d) for i, d in enumerate((10.25, 1.5, 2.25))]
    second.append(_record(DAY0 + DAY + 9, None))
    db = tmp_path / "w.duckdb"
    write_ndjson(tmp_path / "logs" / "a.log.gz", first + second)
    assert run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db)).rows_loaded == 14
    con = duckdb.connect(str(db), read_only=True)
    try:
        frame = latency_p95(
            con,
            ModelsSettings(),
            since=datetime(2026, 4, 18, tzinfo=UTC),
            until=datetime(2026, 4, 20, tzinfo=UTC),
        )
        whole = latency_p95(con, ModelsSettings(), grain=None)
    finally:
        con.close()
    assert frame.rows() == [
        (None, 940.0, 13),
        (datetime(2026, 4, 18, tzinfo=UTC), 955.0, 10),
        (datetime(2026, 4, 19, tzinfo=UTC), 9.45, 3),
    ]
    assert whole.rows() == [(None, 940.0, 13)]


def test_an_absurd_duration_does_not_break_the_query(tmp_path: Path) -> None:
    """A corrupt 1e17 ms duration is left out of the percentile (it is still a request)."""
    records = [_record(DAY0 + i, 100.0 * (i + 1)) for i in range(10)]
    records.append(_record(DAY0 + 20, 1e17))
    db = tmp_path / "w.duckdb"
    write_ndjson(tmp_path / "logs" / "a.log.gz", records)
    settings = IngestSettings(source=str(tmp_path / "logs"), db_path=db, quality="warn")
    assert run_ingest(settings).rows_loaded == 11
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert latency_p95(con, ModelsSettings(), grain=None).rows() == [(None, 955.0, 11)]
    finally:
        con.close()
