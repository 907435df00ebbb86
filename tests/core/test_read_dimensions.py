"""Raw reads with several metadata dimensions: each request's values are the ones its
metadata holds (the metadata parsed once for all keys), whatever the key's spelling."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from core.warehouse import open_warehouse, read_requests
from ingest import IngestSettings, run_ingest
from models import ModelsSettings
from tests.conftest import logpush_record, write_ndjson

NS = 1_000_000_000
DAY0 = 1_776_470_400  # 2026-04-18T00:00:00Z


def test_several_metadata_dimensions_read_as_each_alone(tmp_path: Path) -> None:
    """Four requests, three dimensions (one key with a dot and a quote in its name): the
    values come back per request, null where a key is missing or the metadata is empty,
    numbers and booleans as text; reading one dimension alone gives the same column."""
    metadata = [
        {"team": "search", "user": "ana", 'cost.center"x': "cc-1"},
        {"team": "ads", "user": 7},
        {"user": True, 'cost.center"x': "cc-2"},
        {},
    ]
    records = [
        logpush_record(Timestamp=(DAY0 + i) * NS, Metadata=meta) for i, meta in enumerate(metadata)
    ]
    write_ndjson(tmp_path / "logs" / "a.log.gz", records)
    db = tmp_path / "w.duckdb"
    assert run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db)).rows_loaded == 4
    dims = {"team": "team", "user": "user", "center": 'cost.center"x'}
    settings = ModelsSettings(dimensions=dims)
    window = {
        "since": datetime(2026, 4, 18, tzinfo=UTC),
        "until": datetime(2026, 4, 19, tzinfo=UTC),
    }
    with open_warehouse(db, read_only=True) as warehouse:
        together = (
            read_requests(warehouse.con, settings, columns=list(dims), **window)
            .sort("ts")
            .collect()
        )
        alone = {
            name: read_requests(warehouse.con, settings, columns=[name], **window)
            .sort("ts")
            .collect()[name]
            .to_list()
            for name in dims
        }
    assert together.select("team", "user", "center").rows() == [
        ("search", "ana", "cc-1"),
        ("ads", "7", None),
        (None, "true", "cc-2"),
        (None, None, None),
    ]
    assert {name: together[name].to_list() for name in dims} == alone
