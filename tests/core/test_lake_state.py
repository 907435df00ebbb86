"""The lakehouse's state database on SQLite and the `[warehouse]`/`[engine]` settings:
claims are leases, a finished object is not claimed again, a driver whose lease ran out
does not overwrite the driver that took its object over, and misconfigurations are one
line naming the file and the key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.lake import LakeSpec, engine_spec_from, warehouse_target_from
from core.lake.state import LEASE, FileEntry, StateDB

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)


def _entry(key: str, status: str = "pending", etag: str = "e1", **counts: int) -> FileEntry:
    return FileEntry(key, "/logs", 10, etag, None, status, **counts)


@pytest.fixture
def state(tmp_path: Path) -> StateDB:
    return StateDB(f"sqlite:///{tmp_path}/state.db")


def test_an_object_is_claimed_by_one_driver_until_its_lease_runs_out(state: StateDB) -> None:
    entries = [_entry("a"), _entry("b")]
    assert state.claim(entries, "other-host:1:x", now=NOW) == ["a", "b"]
    assert state.claim(entries, "other-host:2:y", now=NOW + LEASE - timedelta(seconds=1)) == []
    assert state.claim(entries, "other-host:2:y", now=NOW + LEASE + timedelta(seconds=1)) == [
        "a",
        "b",
    ]


def test_a_finished_object_is_not_claimed_again_unless_it_changed(state: StateDB) -> None:
    state.claim([_entry("a")], "h:1:x", now=NOW)
    state.finish([_entry("a", "loaded", records=3, loaded=3)], "h:1:x", started=NOW)
    assert state.claim([_entry("a")], "h:2:y", now=NOW) == []
    assert state.claim([_entry("a", etag="e2")], "h:2:y", now=NOW) == ["a"]  # rewritten


def test_a_driver_whose_lease_ran_out_does_not_overwrite_the_new_holder(state: StateDB) -> None:
    state.claim([_entry("a")], "far:1:slow", now=NOW)
    assert state.claim([_entry("a")], "far:2:new", now=NOW + LEASE * 2) == ["a"]
    state.finish([_entry("a", "loaded", records=5, loaded=5)], "far:1:slow", started=NOW)
    assert state.manifest(["a"]) == {"a": ("e1", "pending")}
    state.finish(
        [_entry("a", "loaded", records=5, loaded=0, duplicates=5)], "far:2:new", started=NOW
    )
    assert state.manifest(["a"]) == {"a": ("e1", "loaded")}


def test_the_claims_of_a_dead_process_of_this_machine_are_free_at_once(state: StateDB) -> None:
    import socket  # noqa: PLC0415

    dead = f"{socket.gethostname()[:32]}:999999999:gone"  # no such pid
    assert state.claim([_entry("a")], dead, now=NOW) == ["a"]
    assert state.claim([_entry("a")], "h:3:z", now=NOW + timedelta(seconds=1)) == ["a"]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"kind": "delta"}, 'kind must be "duckdb" or "iceberg"'),
        (
            {"kind": "iceberg", "state": "sqlite:///s.db", "catalog": {"uri": "sqlite:///c.db"}},
            "location is required",
        ),
        (
            {"kind": "iceberg", "location": "lake", "catalog": {"uri": "sqlite:///c.db"}},
            "state is required",
        ),
        ({"kind": "iceberg", "location": "lake", "state": "sqlite:///s.db"}, "catalog needs a uri"),
        ({"kind": "duckdb", "location": "lake"}, 'location needs kind = "iceberg"'),
        (
            {
                "kind": "iceberg",
                "location": "l",
                "state": "s",
                "catalog": {"uri": "u", "tokn": "x"},
            },
            "unknown key 'tokn'",
        ),
    ],
)
def test_a_bad_warehouse_table_is_one_line_naming_the_key(
    section: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        warehouse_target_from(Path("aigw.toml"), section)
    assert str(caught.value).startswith("aigw.toml: ")
    assert "\n" not in str(caught.value)


def test_warehouse_and_engine_tables_as_documented() -> None:
    spec = warehouse_target_from(
        Path("aigw.toml"),
        {
            "kind": "iceberg",
            "location": "s3://bucket/aigw",
            "catalog": {
                "type": "rest",
                "uri": "https://catalog",
                "warehouse": "w",
                "token_env": "T",
            },
            "state": "postgresql+psycopg://aigw@db/aigw",
            "s3": {"endpoint": "https://acct.r2.cloudflarestorage.com", "region": "auto"},
        },
    )
    assert isinstance(spec, LakeSpec)
    assert (spec.location, spec.namespace, spec.catalog["type"]) == (
        "s3://bucket/aigw",
        "aigw",
        "rest",
    )
    assert warehouse_target_from(Path("aigw.toml"), {}) == Path("data/aigw.duckdb")
    engine = engine_spec_from(
        Path("aigw.toml"), {"kind": "ray", "address": "auto", "batch_objects": 8}
    )
    assert (engine.kind, engine.address, engine.batch_objects) == ("ray", "auto", 8)
    with pytest.raises(ConfigError, match=r"\[engine\] batch_objects must be"):
        engine_spec_from(Path("aigw.toml"), {"batch_objects": 0})


def test_the_newest_day_folder_under_a_prefix(state: StateDB) -> None:
    """Watch mode's starting point: the newest YYYYMMDD folder right under the prefix;
    other names (sorting after digits), deeper or shorter folders and other prefixes do
    not count."""
    keys = [
        "s3://b/logs/20261203/a.log.gz",
        "s3://b/logs/20261205/b.log.gz",
        "s3://b/logs/20261204/c.log.gz",
        "s3://b/logs/2026120/short.log.gz",
        "s3://b/logs/202612099/long.log.gz",
        "s3://b/logs/zz/20261231/deep.log.gz",
        "s3://b/logs/readme.txt",
        "s3://b/logs-old/20261230/x.log.gz",
    ]
    state.claim([_entry(key) for key in keys], "h:1:x", now=NOW)
    assert state.newest_day_folder("s3://b/logs/") == "20261205"
    assert state.newest_day_folder("s3://b/logs-old/") == "20261230"
    assert state.newest_day_folder("s3://b/none/") is None
