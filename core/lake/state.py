"""The state database of a lakehouse warehouse (SQLAlchemy: SQLite alone, PostgreSQL when
several machines write): what needs transactions, not a table format.

Tables (same columns as the DuckDB warehouse's, see docs/schema.md): ``ingest_files``
(the object manifest, here also a work queue: ``claimed_by`` and ``claimed_at``),
``rollup_state``, ``alerts`` and ``alert_deliveries``. Times are stored as UTC and read
back as UTC. A claim is a lease: a claim older than ``LEASE`` is free again (its driver
died on another machine), and a claim whose driver was a process of this machine that is
gone is free at once (``owner_id`` names host and pid), so an object is never stuck.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from core.errors import WarehouseError
from core.lake.spec import make_sqlite_folder

__all__ = ["LEASE", "STATE_TABLES", "FileEntry", "StateDB", "owner_id"]

STATE_VERSION: Final = 1
_SCHEMA_LOCK: Final = 0x616967770001  # PostgreSQL advisory lock key: "aigw" and 1
LEASE: Final = timedelta(minutes=15)


def owner_id() -> str:
    """A claim owner's id: ``host:pid:random`` (unique per run, its process findable)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _abandoned(owner: str | None) -> bool:
    """Whether ``owner`` was a process of this machine that no longer runs."""
    if owner is None:
        return True
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:32] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored as naive UTC (SQLite has no zones) and read back aware, in UTC."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


_META: Final = sa.MetaData()
_TEXT = sa.Text
_FILES: Final = sa.Table(
    "ingest_files",
    _META,
    sa.Column("object_key", sa.String(2048), primary_key=True),
    sa.Column("source", _TEXT, nullable=False),
    sa.Column("size", sa.BigInteger),
    sa.Column("etag", _TEXT),
    sa.Column("mtime", UtcDateTime),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("records", sa.BigInteger, nullable=False),
    sa.Column("rows_loaded", sa.BigInteger, nullable=False),
    sa.Column("rows_duplicate", sa.BigInteger, nullable=False),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False),
    sa.Column("error", _TEXT),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("first_seen_at", UtcDateTime, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=False),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claimed_at", UtcDateTime),
)
_ROLLUP_STATE: Final = sa.Table(
    "rollup_state",
    _META,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("fingerprint", _TEXT, nullable=False),
    sa.Column("watermark", UtcDateTime),
    sa.Column("refreshed_at", UtcDateTime),
)
_ALERTS: Final = sa.Table(
    "alerts",
    _META,
    sa.Column("alert_id", sa.String(128), primary_key=True),
    sa.Column("kind", _TEXT, nullable=False),
    sa.Column("rule", _TEXT, nullable=False),
    sa.Column("scope", _TEXT, nullable=False),
    sa.Column("period_start", UtcDateTime, nullable=False),
    sa.Column("period_end", UtcDateTime, nullable=False),
    sa.Column("threshold", sa.Float),
    sa.Column("spent_usd", sa.Float, nullable=False),
    sa.Column("budget_usd", sa.Float),
    sa.Column("forecast_usd", sa.Float),
    sa.Column("payload", _TEXT, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
_DELIVERIES: Final = sa.Table(
    "alert_deliveries",
    _META,
    sa.Column("alert_id", sa.String(128), primary_key=True),
    sa.Column("channel", sa.String(128), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", _TEXT),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("delivered_at", UtcDateTime),
)
_VERSION: Final = sa.Table("state_version", _META, sa.Column("version", sa.Integer))
STATE_TABLES: Final[Mapping[str, sa.Table]] = {
    t.name: t for t in (_FILES, _ROLLUP_STATE, _ALERTS, _DELIVERIES)
}
# The manifest's columns as the DuckDB warehouse has them (claims are the queue's own).
FILE_COLUMNS: Final = tuple(c.name for c in _FILES.columns if not c.name.startswith("claimed_"))


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One object's outcome, as ``StateDB.finish`` records it."""

    key: str
    source: str
    size: int
    etag: str
    mtime: datetime | None
    status: str  # loaded | skipped | failed
    records: int = 0
    loaded: int = 0
    duplicates: int = 0
    rejected: int = 0
    error: str | None = None


class StateDB:
    """The state database at a SQLAlchemy ``url``; tables created on first open."""

    def __init__(self, url: str, *, describe: str = "state database") -> None:
        self._describe = describe
        options: dict[str, Any] = {}
        if url.startswith("sqlite"):
            make_sqlite_folder(url)
            options["connect_args"] = {"timeout": 30}
        with self.errors():
            self.engine = sa.create_engine(url, **options)
            if url.startswith("sqlite"):
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
                sa.event.listen(self.engine, "begin", _sqlite_begin)
            with self.engine.begin() as con:
                _lock_schema(con)
                _META.create_all(con)
                if con.execute(sa.select(sa.func.count()).select_from(_VERSION)).scalar() == 0:
                    con.execute(_VERSION.insert().values(version=STATE_VERSION))

    def errors(self) -> _Translate:
        """A context that turns a SQLAlchemy error into a one-line ``WarehouseError``."""
        return _Translate(self._describe)

    def close(self) -> None:
        self.engine.dispose()

    def manifest(
        self, keys: Iterable[str] | None = None, *, prefix: str | None = None
    ) -> dict[str, tuple[str | None, str]]:
        """``{key: (etag, status)}`` of the objects named, or of those under ``prefix``."""
        query = sa.select(_FILES.c.object_key, _FILES.c.etag, _FILES.c.status)
        if prefix is not None:
            query = query.where(_FILES.c.object_key.startswith(prefix, autoescape=True))
        with self.errors(), self.engine.connect() as con:
            if keys is None:
                rows = list(con.execute(query).all())
            else:  # looked up by key, a thousand at a time: never the whole table
                wanted = sorted(set(keys))
                rows = []
                for start in range(0, len(wanted), 1000):
                    part = wanted[start : start + 1000]
                    rows += con.execute(query.where(_FILES.c.object_key.in_(part))).all()
        return {k: (e, s) for k, e, s in rows}

    def newest_day_folder(self, prefix: str) -> str | None:
        """The newest ``YYYYMMDD`` folder right under ``prefix`` among the manifest's keys
        (Logpush's layout), or None: keys read newest first along the primary key, up to
        the first in a day folder, so a manifest of millions is not read whole."""
        query = (
            sa.select(_FILES.c.object_key)
            .where(_FILES.c.object_key.startswith(prefix, autoescape=True))
            .order_by(_FILES.c.object_key.desc())
            .execution_options(yield_per=1000)
        )
        with self.errors(), self.engine.connect() as con:
            for (key,) in con.execute(query):
                folder, slash, _ = str(key)[len(prefix) :].partition("/")
                if slash and len(folder) == 8 and folder.isascii() and folder.isdigit():
                    return folder
        return None

    def claim(self, entries: Sequence[FileEntry], owner: str, *, now: datetime) -> list[str]:
        """Claim the objects of ``entries`` nobody else holds and nobody has finished with
        the same etag (listing them if new); return the keys this ``owner`` now holds.
        PostgreSQL locks with ``FOR UPDATE SKIP LOCKED``, SQLite takes its write lock at
        the start (``BEGIN IMMEDIATE``), so two drivers never claim the same object."""
        stale = now - LEASE
        keys = [e.key for e in entries]
        with self.errors(), self.engine.begin() as con:
            known = set(
                con.execute(sa.select(_FILES.c.object_key).where(_FILES.c.object_key.in_(keys)))
                .scalars()
                .all()
            )
            new = sorted((e for e in entries if e.key not in known), key=lambda e: e.key)
            if new:
                con.execute(_insert_new(con), [_pending(e, now) for e in new])
            held = con.execute(
                sa.select(_FILES.c.object_key, _FILES.c.claimed_by)
                .where(_FILES.c.object_key.in_(keys))
                .where(_FILES.c.claimed_by.is_not(None))
            ).all()
            dead = {key: h for key, h in held if h != owner and _abandoned(h)}
            if dead:
                # only while the dead owner still holds it: a driver may have taken it over
                # meanwhile (PostgreSQL re-checks the condition after waiting for its lock)
                con.execute(
                    _FILES.update()
                    .where(_FILES.c.object_key.in_(dead))
                    .where(_FILES.c.claimed_by.in_(set(dead.values())))
                    .values(claimed_by=None, claimed_at=None)
                )
            free = (
                sa.select(_FILES.c.object_key, _FILES.c.etag, _FILES.c.status)
                .where(_FILES.c.object_key.in_(keys))
                .where(sa.or_(_FILES.c.claimed_by.is_(None), _FILES.c.claimed_at < stale))
                .with_for_update(skip_locked=True)
            )
            wanted = {e.key: e.etag for e in entries}
            # an object another driver finished meanwhile (same etag) is not taken again
            mine = [
                key
                for key, etag, status in con.execute(free).all()
                if not (status in {"loaded", "skipped"} and etag == wanted[key])
            ]
            if mine:
                con.execute(
                    _FILES.update()
                    .where(_FILES.c.object_key.in_(mine))
                    .values(claimed_by=owner, claimed_at=now)
                )
        return mine

    def finish(self, entries: Sequence[FileEntry], owner: str, *, started: datetime) -> None:
        """Record the outcomes of claimed objects and release them, in one transaction.
        An object whose claim ``owner`` no longer holds (its lease ran out and another
        driver took it) is left to that driver, which finds this run's commit in the
        snapshot summaries."""
        now = datetime.now(tz=UTC)
        with self.errors(), self.engine.begin() as con:
            for entry in entries:
                con.execute(
                    _FILES.update()
                    .where(_FILES.c.object_key == entry.key)
                    .where(_FILES.c.claimed_by == owner)
                    .values(
                        source=entry.source,
                        size=entry.size,
                        etag=entry.etag,
                        mtime=entry.mtime,
                        status=entry.status,
                        records=entry.records,
                        rows_loaded=entry.loaded,
                        rows_duplicate=entry.duplicates,
                        rows_rejected=entry.rejected,
                        error=entry.error,
                        attempts=_FILES.c.attempts + 1,
                        started_at=started,
                        finished_at=now,
                        claimed_by=None,
                        claimed_at=None,
                    )
                )

    def release(self, owner: str) -> None:
        """Give up every claim ``owner`` still holds (a run that stopped early)."""
        with self.errors(), self.engine.begin() as con:
            con.execute(
                _FILES.update()
                .where(_FILES.c.claimed_by == owner)
                .values(claimed_by=None, claimed_at=None)
            )

    def rollup_state(self, name: str) -> tuple[str, datetime | None] | None:
        """``(fingerprint, watermark)`` of the derived table ``name``, None when never built."""
        query = sa.select(_ROLLUP_STATE.c.fingerprint, _ROLLUP_STATE.c.watermark).where(
            _ROLLUP_STATE.c.name == name
        )
        with self.errors(), self.engine.connect() as con:
            row = con.execute(query).first()
        return None if row is None else (row[0], row[1])

    def set_rollup_state(self, name: str, fingerprint: str, watermark: datetime | None) -> None:
        """Record that ``name`` is built with ``fingerprint`` up to ``watermark``."""
        now = datetime.now(tz=UTC)
        with self.errors(), self.engine.begin() as con:
            con.execute(_ROLLUP_STATE.delete().where(_ROLLUP_STATE.c.name == name))
            con.execute(
                _ROLLUP_STATE.insert().values(
                    name=name, fingerprint=fingerprint, watermark=watermark, refreshed_at=now
                )
            )

    def rows(self, name: str) -> list[tuple[Any, ...]]:
        """Every row of the state table ``name`` (manifest: the DuckDB columns only)."""
        table = STATE_TABLES[name]
        columns = [table.c[c] for c in FILE_COLUMNS] if name == "ingest_files" else [table]
        with self.errors(), self.engine.connect() as con:
            return [tuple(row) for row in con.execute(sa.select(*columns)).all()]


def _lock_schema(con: sa.Connection) -> None:
    """On PostgreSQL, wait for any other driver creating the tables (its transaction):
    two drivers opening a new database at once would both create them, and one fail.
    SQLite's ``BEGIN IMMEDIATE`` already serialises them."""
    if con.dialect.name == "postgresql":
        con.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))


def _insert_new(con: sa.Connection) -> sa.Insert:
    """An insert of manifest rows that skips a key another driver listed meanwhile: on
    PostgreSQL two claims of the same new objects run at once (the second waits for the
    first to commit, then skips its rows); SQLite's write lock serialises them anyway."""
    if con.dialect.name == "postgresql":
        return postgresql.insert(_FILES).on_conflict_do_nothing(index_elements=["object_key"])
    if con.dialect.name == "sqlite":
        return sqlite.insert(_FILES).on_conflict_do_nothing(index_elements=["object_key"])
    return _FILES.insert()


def _pending(entry: FileEntry, now: datetime) -> dict[str, Any]:
    return {
        "object_key": entry.key,
        "source": entry.source,
        "size": entry.size,
        "etag": entry.etag,
        "mtime": entry.mtime,
        "status": "pending",
        "records": 0,
        "rows_loaded": 0,
        "rows_duplicate": 0,
        "rows_rejected": 0,
        "error": None,
        "attempts": 0,
        "first_seen_at": now,
        "started_at": now,
        "finished_at": now,
    }


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    """WAL: readers do not wait for the writer; one writer at a time, waiting 30 s. The
    driver's own transaction handling is off: ``_sqlite_begin`` starts each one."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(con: sa.Connection) -> None:
    """BEGIN IMMEDIATE: a transaction takes the write lock when it starts, so two drivers'
    claims are serialised (SQLite has no SKIP LOCKED) instead of failing at the update."""
    con.exec_driver_sql("BEGIN IMMEDIATE")


class _Translate:
    def __init__(self, describe: str) -> None:
        self._describe = describe

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, err: BaseException | None, tb: Any) -> None:
        if isinstance(err, sa.exc.SQLAlchemyError):
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise WarehouseError(
                f"{self._describe}: {first[:200]}", path=self._describe, detail=str(err)
            ) from err
