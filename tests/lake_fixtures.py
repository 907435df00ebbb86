"""Shared helpers for the lakehouse tests: an Iceberg warehouse in a temporary folder
(SQL catalog and state database on SQLite) and the queries that compare it with a DuckDB
warehouse."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from core.lake import EngineSpec, LakeSpec
from core.lake.lake import Lake
from core.warehouse import open_warehouse

__all__ = ["ROW_QUERY", "LosesTheRace", "lake_config", "lake_spec", "read_all"]

T = TypeVar("T")

# Every stored column but the run time, in a stable order.
ROW_QUERY = "SELECT * EXCLUDE (ingested_at) FROM requests ORDER BY log_id, ts"


def lake_spec(
    root: Path, *, location: str | None = None, engine: EngineSpec | None = None, **s3: str
) -> LakeSpec:
    """An Iceberg warehouse under ``root`` (or data files at ``location``), run by
    ``engine`` (default: in-process, 64 objects a commit)."""
    return LakeSpec(
        location=location or str(root / "lake"),
        state=f"sqlite:///{root}/state.db",
        catalog={"type": "sql", "uri": f"sqlite:///{root}/catalog.db"},
        s3=s3,
        engine=engine or EngineSpec(),
    )


def lake_config(root: Path, *, engine: str = "") -> Path:
    """``root/aigw.toml`` naming the Iceberg warehouse ``lake_spec(root)`` describes (with
    ``engine``, the text of an ``[engine]`` table, appended)."""
    path = root / "aigw.toml"
    path.write_text(
        "[warehouse]\n"
        'kind = "iceberg"\n'
        f'location = "{root / "lake"}"\n'
        f'catalog = {{ type = "sql", uri = "sqlite:///{root}/catalog.db" }}\n'
        f'state = "sqlite:///{root}/state.db"\n' + engine
    )
    return path


def read_all(target: Path | LakeSpec, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` on the warehouse ``target`` (read-only; the manifest loaded,
    which an Iceberg warehouse's readers copy only when asked)."""
    with open_warehouse(target, read_only=True) as warehouse:
        warehouse.load_manifest()
        return warehouse.con.execute(sql).fetchall()


class LosesTheRace(Lake):
    """A lake whose first ``requests`` commit loses a race: ``rival`` (another driver's
    commit) runs after the table is loaded and before the change is computed."""

    def __init__(self, spec: LakeSpec, rival: Callable[[], object]) -> None:
        super().__init__(spec)
        self._rival: Callable[[], object] | None = rival
        self.attempts = 0

    def commit(self, name: str, change: Callable[[Any], T]) -> T:
        def late(table: Any) -> T:
            self.attempts += 1
            if self._rival is not None:
                rival, self._rival = self._rival, None
                rival()
            return change(table)

        return super().commit(name, late if name == "requests" else change)
