"""Rollups of an Iceberg warehouse: the same hourly and daily rows and request costs as
the DuckDB warehouse's (computed in the driver; as one Ray task per day in
tests/ingest/test_lake_ray.py), and an incremental refresh that rewrites only the hours
that changed."""

from __future__ import annotations

from pathlib import Path

from core.warehouse import open_warehouse
from ingest import IngestSettings, run_ingest
from models import ModelsSettings, refresh_rollups
from tests.conftest import REPO, logpush_record, write_ndjson
from tests.lake_fixtures import lake_spec, read_all

SAMPLES = REPO / "sample_data" / "logs"
HOURLY = (
    "SELECT hour, provider, model, cost_source, requests, errors, cached_requests, tokens_in, "
    "tokens_out, round(cost_usd, 9), round(saved_usd, 9) FROM rollup_hourly ORDER BY ALL"
)
DAILY = "SELECT hour, provider, model, requests, round(cost_usd, 9) FROM rollup_daily ORDER BY ALL"
COSTS = "SELECT log_id, round(effective_cost_usd, 12), cost_source FROM request_costs ORDER BY 1"


def _load(target: object, source: Path = SAMPLES) -> None:
    run_ingest(IngestSettings(source=str(source), db_path=target, quality="off"))  # type: ignore[arg-type]


def _refresh(target: object) -> object:
    with open_warehouse(target) as warehouse:  # type: ignore[arg-type]
        return refresh_rollups(warehouse, ModelsSettings())


def test_rollups_equal_the_duckdb_warehouse_s(tmp_path: Path) -> None:
    """Computed in the driver (on Ray: tests/ingest/test_lake_ray.py, where Ray runs)."""
    spec = lake_spec(tmp_path)
    duck = tmp_path / "aigw.duckdb"
    for target in (spec, duck):
        _load(target)
        _refresh(target)
    assert read_all(spec, HOURLY) == read_all(duck, HOURLY)
    assert len(read_all(spec, HOURLY)) == 551
    assert read_all(spec, DAILY) == read_all(duck, DAILY)
    assert read_all(spec, COSTS) == read_all(duck, COSTS)
    assert len(read_all(spec, COSTS)) == 960


def test_an_incremental_refresh_rewrites_only_the_new_hours(tmp_path: Path) -> None:
    spec = lake_spec(tmp_path)
    duck = tmp_path / "aigw.duckdb"
    logs = tmp_path / "logs"
    write_ndjson(logs / "a.log.gz", [logpush_record(Timestamp=1_776_470_400_000_000_000)])
    for target in (spec, duck):
        _load(target, logs)
        _refresh(target)
    # a late record for the same hour and one for a new hour
    write_ndjson(
        logs / "b.log.gz",
        [
            logpush_record(Timestamp=1_776_470_500_000_000_000),
            logpush_record(Timestamp=1_776_477_600_000_000_000),
        ],
    )
    for target in (spec, duck):
        _load(target, logs)
    result = _refresh(spec)
    _refresh(duck)
    assert (result.full, result.hours) == (False, 2)  # type: ignore[attr-defined]
    assert read_all(spec, HOURLY) == read_all(duck, HOURLY)
    assert [row[4] for row in read_all(spec, HOURLY)] == [2, 1]
    assert read_all(spec, DAILY) == read_all(duck, DAILY)
    assert read_all(spec, "SELECT sum(requests) FROM rollup_daily") == [(3,)]
    assert read_all(spec, COSTS) == read_all(duck, COSTS)
