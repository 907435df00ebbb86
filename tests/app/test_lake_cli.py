"""``aigw maintain`` as a user runs it: what it did in a few lines on an Iceberg warehouse,
one line and exit 2 on the DuckDB file or a retention it cannot read."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import logpush_record, run_aigw, write_ndjson
from tests.lake_fixtures import ROW_QUERY, lake_config, lake_spec, read_all

DAY_ONE = 1_776_470_400_000_000_000  # 2026-04-18T00:00:00Z in unixnano


def _config(root: Path) -> Path:
    return lake_config(root, engine="\n[engine]\nbatch_objects = 1\n")


def test_maintain_compacts_a_day_and_expires_the_old_snapshots(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for index in range(5):  # five objects of one day, a commit each
        write_ndjson(
            logs / f"o{index}.log.gz", [logpush_record(Timestamp=DAY_ONE + index * 10**12)]
        )
    config = _config(tmp_path)
    ingest = run_aigw("ingest", str(logs), "--quality", "off", "--config", str(config))
    assert ingest.returncode == 0, ingest.stderr
    rows = read_all(lake_spec(tmp_path), ROW_QUERY)

    result = run_aigw("maintain", "--older-than", "0m", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "data files: requests 5 → 1 (1 day compacted)",
        "snapshots expired: 5 (older than 0m)",
        "data files deleted: 5 (no remaining snapshot reads them)",
        # the expired snapshots' 5 manifest lists and 5 manifests
        "metadata files deleted: 10 (manifests, manifest lists and metadata.json files the "
        "current metadata no longer references)",
    ]
    assert read_all(lake_spec(tmp_path), ROW_QUERY) == rows

    again = run_aigw("maintain", "--config", str(config))
    assert again.stdout.splitlines() == [
        "data files: nothing to compact",
        "snapshots expired: 0 (older than 7d)",
    ]


def test_maintain_on_the_duckdb_file_says_it_is_for_iceberg(tmp_path: Path) -> None:
    config = tmp_path / "aigw.toml"
    config.write_text("[warehouse]\npath = 'aigw.duckdb'\n")
    result = run_aigw("maintain", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        'error: aigw maintain is for Iceberg warehouses ([warehouse] kind = "iceberg"); '
        "the DuckDB file needs no maintenance"
    )
    bad = run_aigw("maintain", "--older-than", "a week", "--config", str(_config(tmp_path)))
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: --older-than 'a week' must look like 7d, 12h or 30m"
