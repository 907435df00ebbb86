"""The DuckDB warehouse file: opening it and its migrations (columns: ``core.schema``).

This module is the one place where ``duckdb.Error`` becomes an aigw error
(``warehouse_errors``). Connections are opened with the session time zone set
to UTC, so TIMESTAMPTZ values read back as UTC. The caller owns and closes the
connection; a DuckDB connection must not be shared between threads.

Schema changes are append-only migrations: ``MIGRATIONS[n]`` moves a warehouse
from version n-1 to n, applied in order inside one transaction each, and the
version reached is recorded in ``schema_migrations``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

import duckdb

from core.errors import SchemaTooNew, WarehouseError, WarehouseLocked
from core.schema import requests_ddl

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Warehouse",
    "open_warehouse",
    "table_exists",
    "warehouse_errors",
]

_V1: Final = (
    """
CREATE TABLE schema_migrations (
    version     INTEGER PRIMARY KEY,
    applied_at  TIMESTAMPTZ NOT NULL
);
"""
    + requests_ddl(1)
    + """
CREATE TABLE ingest_files (
    object_key      VARCHAR PRIMARY KEY,
    source          VARCHAR NOT NULL,
    size            BIGINT,
    etag            VARCHAR,
    mtime           TIMESTAMPTZ,
    status          VARCHAR NOT NULL,
    records         BIGINT NOT NULL,
    rows_loaded     BIGINT NOT NULL,
    rows_duplicate  BIGINT NOT NULL,
    rows_rejected   BIGINT NOT NULL,
    error           VARCHAR,
    attempts        INTEGER NOT NULL,
    first_seen_at   TIMESTAMPTZ NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ NOT NULL
);
CREATE TABLE rejects (
    source_file     VARCHAR NOT NULL,
    line_number     INTEGER NOT NULL,
    raw_line        VARCHAR NOT NULL,
    raw_truncated   BOOLEAN NOT NULL,
    reason          VARCHAR NOT NULL,
    rejected_at     TIMESTAMPTZ NOT NULL
);
"""
)

# v2: why an encrypted field did not open (null when it did, or was not encrypted).
_V2: Final = requests_ddl(2)

# v3: what aigw's own gateway adds to each record (Logpush extension fields).
_V3: Final = requests_ddl(3)

# v4: one row per data-quality check of an ingest batch's new rows.
_V4: Final = """
CREATE TABLE quality_runs (
    run_id              VARCHAR PRIMARY KEY,
    started_at          TIMESTAMPTZ NOT NULL,
    finished_at         TIMESTAMPTZ NOT NULL,
    source              VARCHAR NOT NULL,
    object_keys         VARCHAR[] NOT NULL,
    rows_checked        BIGINT NOT NULL,
    on_failure          VARCHAR NOT NULL,
    success             BOOLEAN NOT NULL,
    critical_failures   INTEGER NOT NULL,
    warnings            INTEGER NOT NULL,
    results             JSON NOT NULL
);
"""

# v5: the state tables of the rollups and the alerts (created on first use before v5,
# hence IF NOT EXISTS). The rollup tables themselves are derived: their columns follow
# the configured metadata dimensions, so each refresh creates them (see models.rollups).
_V5: Final = """
CREATE TABLE IF NOT EXISTS rollup_state (
    name          VARCHAR PRIMARY KEY,
    fingerprint   VARCHAR NOT NULL,
    watermark     TIMESTAMPTZ,
    refreshed_at  TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id      VARCHAR PRIMARY KEY,
    kind          VARCHAR NOT NULL,
    rule          VARCHAR NOT NULL,
    scope         VARCHAR NOT NULL,
    period_start  TIMESTAMPTZ NOT NULL,
    period_end    TIMESTAMPTZ NOT NULL,
    threshold     DOUBLE,
    spent_usd     DOUBLE NOT NULL,
    budget_usd    DOUBLE,
    forecast_usd  DOUBLE,
    payload       JSON NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_deliveries (
    alert_id      VARCHAR NOT NULL,
    channel       VARCHAR NOT NULL,
    status        VARCHAR NOT NULL,
    attempts      INTEGER NOT NULL,
    last_error    VARCHAR,
    updated_at    TIMESTAMPTZ NOT NULL,
    delivered_at  TIMESTAMPTZ,
    PRIMARY KEY (alert_id, channel)
);
"""

MIGRATIONS: Final[dict[int, str]] = {1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5}
SCHEMA_VERSION: Final = max(MIGRATIONS)

_LOCK_PID = re.compile(r"PID (\d+)")


@contextlib.contextmanager
def warehouse_errors(path: Path | str) -> Iterator[None]:
    """Translate ``duckdb.Error`` raised inside the block into ``WarehouseError``."""
    try:
        yield
    except duckdb.Error as err:
        raise _translate(err, str(path)) from err


@dataclass(frozen=True, slots=True)
class Warehouse:
    """An open warehouse: its path (for messages) and its connection (one thread)."""

    path: Path
    con: duckdb.DuckDBPyConnection

    def errors(self) -> contextlib.AbstractContextManager[None]:
        """``warehouse_errors`` for this file."""
        return warehouse_errors(self.path)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_warehouse(path: Path | str, *, read_only: bool = False) -> Warehouse:
    """Open (creating and migrating when writable) the warehouse at ``path``.

    Read-only opens never create or migrate; they fail if the file is missing
    or its schema is older or newer than this aigw's.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise WarehouseError(
            f"no warehouse at {path}; run `aigw ingest` first or pass --db", path=str(path)
        )
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise WarehouseError(
                f"cannot create folder for warehouse {path}: {err.strerror}", path=str(path)
            ) from err
    with warehouse_errors(path):
        con = duckdb.connect(str(path), read_only=read_only)
        try:
            con.execute("SET TimeZone = 'UTC'")
            # Checkpoint every 128 MB of WAL rather than DuckDB's 16 MB: loads commit once
            # per object, and frequent checkpoints rewrote the same row groups (measured:
            # -30% time loading 20,000-record objects; 1 GB left a long checkpoint at close).
            con.execute("SET checkpoint_threshold = '128MB'")
            version = _schema_version(con)
            _check_version(path, version, read_only=read_only)
            if version < SCHEMA_VERSION:
                _migrate(con, version)
        except BaseException:
            con.close()
            raise
    return Warehouse(path, con)


def _check_version(path: Path, version: int, *, read_only: bool) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"warehouse {path} has schema v{version}, newer than this aigw "
            f"(v{SCHEMA_VERSION}); upgrade aigw",
            path=str(path),
        )
    if version < SCHEMA_VERSION and read_only:
        raise WarehouseError(
            f"warehouse {path} has schema v{version}; run `aigw ingest` to migrate it",
            path=str(path),
        )


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the warehouse has a table called ``name``."""
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])


def _schema_version(con: duckdb.DuckDBPyConnection) -> int:
    if not table_exists(con, "schema_migrations"):
        return 0
    row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _migrate(con: duckdb.DuckDBPyConnection, current: int) -> None:
    for version in range(current + 1, SCHEMA_VERSION + 1):
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(MIGRATIONS[version])
            con.execute("INSERT INTO schema_migrations VALUES (?, now())", [version])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def _translate(err: duckdb.Error, path: str) -> WarehouseError:
    message = str(err)
    if "Could not set lock" in message or "Conflicting lock" in message:
        pid = _LOCK_PID.search(message)
        holder = f" (pid {pid.group(1)})" if pid else ""
        return WarehouseLocked(
            f"warehouse {path} is in use by another process{holder}; "
            "wait for it to finish or pass another --db",
            path=path,
            detail=message,
        )
    first_line = message.splitlines()[0] if message else type(err).__name__
    return WarehouseError(f"warehouse {path}: {first_line}", path=path, detail=message)
