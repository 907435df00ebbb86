"""The DuckDB warehouse file: opening it (migrations: ``core.warehouse.migrations``).

This module is the one place where ``duckdb.Error`` becomes an aigw error
(``warehouse_errors``). Connections are opened with the session time zone set
to UTC, so TIMESTAMPTZ values read back as UTC. The caller owns and closes the
connection; a DuckDB connection must not be shared between threads.

Opening a writable warehouse brings its schema up to ``SCHEMA_VERSION``; a read-only
open refuses a schema older or newer than this aigw's.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import duckdb

from core.errors import SchemaTooNew, WarehouseError, WarehouseLocked
from core.lake.extra import require_lake
from core.lake.spec import LakeSpec, WarehouseTarget
from core.warehouse.migrations import SCHEMA_VERSION, migrate, schema_version, table_exists

if TYPE_CHECKING:
    from core.lake.lake import Lake

__all__ = [
    "Warehouse",
    "lock_holder",
    "open_warehouse",
    "table_exists",
    "warehouse_errors",
]


_LOCK_PID = re.compile(r"PID (\d+)")


@contextlib.contextmanager
def warehouse_errors(path: Path | str, *, reader: bool = False) -> Iterator[None]:
    """Translate ``duckdb.Error`` raised inside the block into ``WarehouseError``
    (a lock message tells a ``reader`` what it can do, a writer what it can)."""
    try:
        yield
    except duckdb.Error as err:
        raise _translate(err, str(path), reader=reader) from err


@dataclass(frozen=True, slots=True)
class Warehouse:
    """An open warehouse: its path (for messages) and its connection (one thread).

    For an Iceberg warehouse, ``lake`` is the open lake (writers use it), ``path`` the
    location, and ``con`` an in-memory DuckDB view of the snapshot it opened on
    (``core.warehouse.lake``).
    """

    path: Path
    con: duckdb.DuckDBPyConnection
    lake: Lake | None = None

    def errors(self) -> contextlib.AbstractContextManager[None]:
        """``warehouse_errors`` for this file."""
        return warehouse_errors(self.path)

    def load_manifest(self) -> None:
        """Make ``ingest_files`` readable on ``con``: an Iceberg warehouse's readers copy
        the manifest from the state database only when asked (``core.warehouse.lake``);
        a DuckDB file has it already."""
        if self.lake is not None:
            from core.warehouse.lake import attach_manifest  # noqa: PLC0415 - lake extra

            attach_manifest(self.con, self.lake)

    def close(self) -> None:
        self.con.close()
        if self.lake is not None:
            self.lake.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_warehouse(
    path: WarehouseTarget | str,
    *,
    read_only: bool = False,
    sandbox: bool = False,
    create: bool = True,
) -> Warehouse:
    """Open (creating and migrating when writable) the warehouse at ``path``: a DuckDB
    file, or an Iceberg warehouse (a ``LakeSpec``: ``core.warehouse.lake``).

    Read-only opens never create or migrate; they fail if the file is missing
    or its schema is older or newer than this aigw's. ``create=False`` refuses a
    missing file for a writable open too (commands that update a warehouse but do
    not load one: ``aigw rollup``, ``aigw alerts run``). ``sandbox`` (for SQL typed by
    a person) also turns off every file-system and network access but the warehouse
    itself (no ``COPY … TO``, ``ATTACH``, ``read_csv``, ``INSTALL``) and locks the
    configuration so that the query cannot turn it back on.
    """
    if isinstance(path, LakeSpec):
        return _open_lake(path, sandbox=sandbox)
    path = Path(path)
    if (read_only or not create) and not path.exists():
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
    with warehouse_errors(path, reader=read_only):
        con = duckdb.connect(str(path), read_only=read_only)
        try:
            con.execute("SET TimeZone = 'UTC'")
            # Checkpoint every 128 MB of WAL rather than DuckDB's 16 MB: loads commit once
            # per object, and frequent checkpoints rewrote the same row groups (measured:
            # -30% time loading 20,000-record objects; 1 GB left a long checkpoint at close).
            con.execute("SET checkpoint_threshold = '128MB'")
            if sandbox:
                con.execute("SET enable_external_access = false")
                con.execute("SET lock_configuration = true")
            version = schema_version(con)
            _check_version(path, version, read_only=read_only)
            if version < SCHEMA_VERSION:
                migrate(con, version)
        except BaseException:
            con.close()
            raise
    return Warehouse(path, con)


def _open_lake(spec: LakeSpec, *, sandbox: bool) -> Warehouse:
    require_lake()
    from core.lake.lake import Lake  # noqa: PLC0415 - the lake extra, only when asked for
    from core.warehouse.lake import connect_snapshot  # noqa: PLC0415

    lake = Lake(spec)
    try:
        con = connect_snapshot(lake, sandbox=sandbox)
    except BaseException:
        lake.close()
        raise
    return Warehouse(Path(spec.location), con, lake)


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


def _translate(err: duckdb.Error, path: str, *, reader: bool = False) -> WarehouseError:
    message = str(err)
    if "Could not set lock" in message or "Conflicting lock" in message:
        holder = lock_holder(message)
        if reader:
            text = (
                f"warehouse {path} is in use by {holder}, which is writing it; it can be read "
                "again when that finishes: retry in a moment"
            )
        else:
            text = (
                f"warehouse {path} is in use by {holder}; wait for it to finish, "
                "stop it, or pass another --db"
            )
        return WarehouseLocked(text, path=path, detail=message)
    first_line = message.splitlines()[0] if message else type(err).__name__
    return WarehouseError(f"warehouse {path}: {first_line}", path=path, detail=message)


def lock_holder(message: str) -> str:
    """Who holds the lock DuckDB's ``message`` names: ``aigw ingest (pid 12)``, or
    ``another program (duckdb, pid 12)``; ``another process`` when DuckDB names none."""
    found = _LOCK_PID.search(message)
    if found is None:
        return "another process"
    pid = int(found.group(1))
    argv = _command_line(pid)
    if argv is not None and _is_aigw(argv):
        words = [a for a in argv[1:] if not a.startswith("-") and Path(a).name not in _AIGW_NAMES]
        return f"aigw {words[0]} (pid {pid})" if words else f"aigw (pid {pid})"
    program = Path(argv[0]).name if argv else None
    if program is None:
        named = _LOCK_PROGRAM.search(message)
        program = Path(named.group(1)).name if named else None
    return f"another program ({program}, pid {pid})" if program else f"another program (pid {pid})"


_AIGW_NAMES = frozenset({"app", "aigw"})
_LOCK_PROGRAM = re.compile(r"held in (\S+) \(PID")


def _command_line(pid: int) -> list[str] | None:
    """The process's arguments (Linux ``/proc``), or None where they cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part] or None


def _is_aigw(argv: list[str]) -> bool:
    """Whether ``argv`` runs aigw: the ``aigw`` script or ``python -m app``."""
    if Path(argv[0]).name == "aigw" or (len(argv) > 1 and Path(argv[1]).name == "aigw"):
        return True
    return any(a == "-m" and b == "app" for a, b in itertools.pairwise(argv))
