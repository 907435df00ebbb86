"""Load one object into the warehouse, atomically.

Two halves, so that parsing (Python, holds the GIL) overlaps with inserting
(DuckDB, releases it): ``parse_object`` turns bytes into Arrow batches with no
database work; ``store_object`` inserts them in one transaction: the object's
rows, its rejects and its ``ingest_files`` entry commit together or not at all,
so a crash mid-object
leaves nothing of it behind and the next run loads it again. Deduplication is
an anti-join limited to the batch's time range (see ``_INSERT_ROWS``), so the
cost of an object does not grow with the warehouse. (A primary-key index was
measured and rejected: DuckDB rewrites the whole index at each checkpoint, so
commits grew with the table.)

Counts hold for every loaded object: ``loaded + duplicates + rejected == records``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from core.schema import arrow_schema
from ingest.decrypt import Decryptor
from ingest.reader import ParsedRecord, Readable, iter_records
from ingest.records import ROW_FIELDS, InvalidRecord, normalize
from ingest.sources import StoredObject

__all__ = [
    "BATCH_ROWS",
    "ROW_SCHEMA",
    "ObjectCounts",
    "ParsedBatch",
    "make_batch",
    "parse_object",
    "parse_records",
    "record_object",
    "reject_of",
    "store_object",
]

MAX_RAW_BYTES: Final = 64 * 1024
BATCH_ROWS: Final = 20_000

ROW_SCHEMA: Final = arrow_schema((*ROW_FIELDS, "source_line"))
_SCHEMA: Final = ROW_SCHEMA
_ROW_TYPES: Final = _SCHEMA.types[: len(ROW_FIELDS)]
_COLUMNS: Final = ", ".join(("ts" if name == "ts_us" else name) for name in ROW_FIELDS)
_SELECT: Final = ", ".join(ROW_FIELDS)
# Deduplication against stored rows: a repeated record has the same log_id and the
# same ts, so only rows inside the batch's time range are probed. DuckDB's zone maps
# skip every row group outside that range, which keeps the cost flat as history grows.
# (Repeats inside the object never reach the batch: see ``parse_object``.)
_INSERT_ROWS: Final = f"""
INSERT INTO requests ({_COLUMNS}, source_line, source_file, ingested_at)
SELECT {_SELECT}, source_line, $source_file, $ingested_at
FROM _aigw_batch AS batch
WHERE NOT EXISTS (
    SELECT 1 FROM requests AS seen
    WHERE seen.ts BETWEEN $low AND $high
      AND seen.log_id = batch.log_id
      AND seen.ts = batch.ts_us
)
"""
_UPSERT_FILE: Final = """
INSERT INTO ingest_files VALUES (
    $key, $source, $size, $etag, $mtime, $status, $records, $loaded, $duplicates, $rejected,
    $error, 1, $now, $started, $now)
ON CONFLICT (object_key) DO UPDATE SET
    source = excluded.source, size = excluded.size, etag = excluded.etag,
    mtime = excluded.mtime, status = excluded.status, records = excluded.records,
    rows_loaded = excluded.rows_loaded, rows_duplicate = excluded.rows_duplicate,
    rows_rejected = excluded.rows_rejected, error = excluded.error,
    attempts = ingest_files.attempts + 1, started_at = excluded.started_at,
    finished_at = excluded.finished_at
"""


@dataclass(frozen=True, slots=True)
class ObjectCounts:
    """What loading one object did: records read and where each went."""

    records: int = 0
    loaded: int = 0
    duplicates: int = 0
    rejected: int = 0
    decrypt_errors: int = 0  # loaded rows with a field that did not decrypt
    locked_metadata: int = 0  # loaded rows whose Metadata is encrypted and no key was given


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    """Up to ``batch_rows`` normalised rows of one object, its rejects among them, and
    how many records repeated an earlier record of the same object (not in ``rows``)."""

    rows: pa.Table | None
    rejects: pa.Table | None
    repeats: int = 0

    @property
    def records(self) -> int:
        """Records this batch covers: rows, rejects and repeats."""
        rows = self.rows.num_rows if self.rows is not None else 0
        rejects = self.rejects.num_rows if self.rejects is not None else 0
        return rows + rejects + self.repeats


def parse_object(
    stream: Readable,
    key: str,
    batch_rows: int = BATCH_ROWS,
    decryptor: Decryptor | None = None,
) -> Iterator[ParsedBatch]:
    """Read, parse and normalise an object into Arrow batches in Python (no database work).

    The per-record path: ``ingest.engine`` uses it for decryption and for the lines its
    fast paths cannot vouch for. Safe to run in another thread than ``store_object``. Raises
    ``ObjectReadError`` when the bytes cannot be read to their end.
    """
    return parse_records(iter_records(stream, key), batch_rows, decryptor)


def parse_records(
    records: Iterable[ParsedRecord],
    batch_rows: int = BATCH_ROWS,
    decryptor: Decryptor | None = None,
) -> Iterator[ParsedBatch]:
    """Normalise parsed records into batches of up to ``batch_rows`` rows; a record whose
    ``log_id`` an earlier one of the same call had is counted as a repeat."""
    rows: list[tuple[Any, ...]] = []
    lines: list[int] = []
    rejects: list[tuple[int, str, bool, str]] = []
    repeats = 0
    # Repeats inside one object are dropped here (the first occurrence wins), which
    # spares the database a DISTINCT over whole rows: measured, it halved insert time.
    object_ids: set[str] = set()
    for number, raw, value in records:
        try:
            if isinstance(value, InvalidRecord):
                raise value
            row = normalize(value, raw, decryptor)
        except InvalidRecord as err:
            rejects.append(reject_of(number, raw, str(err)))
            continue
        if row[0] in object_ids:
            repeats += 1
            continue
        object_ids.add(row[0])
        rows.append(row)
        lines.append(number)
        if len(rows) >= batch_rows:
            yield make_batch(rows, lines, rejects, repeats)
            rows, lines, rejects, repeats = [], [], [], 0
    if rows or rejects or repeats:
        yield make_batch(rows, lines, rejects, repeats)


_ENCRYPTED_METADATA: Final = '{"type":"encrypted"'  # how both paths print one (compact JSON)


def locked_metadata(rows: pa.Table) -> int:
    """Rows whose Metadata is still an encrypted object and did not fail to open: no key
    was given, so their team, user and agent are unknown."""
    metadata = rows["metadata"]
    encrypted = pc.starts_with(metadata, _ENCRYPTED_METADATA)
    locked = pc.and_(encrypted, pc.is_null(rows["decrypt_error"]))
    return int(pc.sum(pc.cast(pc.fill_null(locked, False), pa.int64())).as_py() or 0)


def reject_of(number: int, raw: bytes, reason: str) -> tuple[int, str, bool, str]:
    """A ``rejects`` entry: line, raw text (at most ``MAX_RAW_BYTES``), truncated, reason."""
    text = raw[:MAX_RAW_BYTES].decode("utf-8", errors="replace")
    return number, text, len(raw) > MAX_RAW_BYTES, reason


def store_object(
    con: duckdb.DuckDBPyConnection,
    obj: StoredObject,
    batches: Iterable[ParsedBatch],
    *,
    source: str,
    started: datetime,
    seen_before: bool = True,
) -> ObjectCounts:
    """Insert an object's batches and mark it loaded, in one transaction.

    ``seen_before=False`` (the object is not in ``ingest_files``) skips clearing
    rejects left by an earlier version of the object.

    If ``batches`` raises (``ObjectReadError`` for bad bytes) or the database
    fails, the transaction is rolled back, nothing of the object remains, and
    the error propagates.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        if seen_before:
            con.execute("DELETE FROM rejects WHERE source_file = ?", [obj.key])
        records = loaded = rejected = undecrypted = locked = 0
        for batch in batches:
            records += batch.records
            if batch.rows is not None:
                loaded += _insert_rows(con, batch.rows, obj.key, started)
                column = batch.rows["decrypt_error"]
                undecrypted += len(column) - column.null_count
                locked += locked_metadata(batch.rows)
            if batch.rejects is not None:
                rejected += batch.rejects.num_rows
                _insert_rejects(con, batch.rejects, obj.key, started)
        duplicates = records - loaded - rejected
        counts = ObjectCounts(records, loaded, duplicates, rejected, undecrypted, locked)
        _upsert_file(con, obj, source, "loaded", counts, None, started)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return counts


def record_object(
    con: duckdb.DuckDBPyConnection,
    obj: StoredObject,
    *,
    source: str,
    status: str,
    error: str | None,
    started: datetime,
) -> None:
    """Record an object that was skipped or failed (no rows), in its own transaction."""
    con.execute("BEGIN TRANSACTION")
    try:
        _upsert_file(con, obj, source, status, ObjectCounts(), error, started)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def make_batch(
    rows: list[tuple[Any, ...]],
    lines: list[int],
    rejects: list[tuple[int, str, bool, str]],
    repeats: int,
) -> ParsedBatch:
    """Python rows (``ROW_FIELDS`` tuples), their line numbers and rejects as a batch."""
    table = None
    if rows:
        columns = [
            pa.array(values, kind)
            for values, kind in zip(zip(*rows, strict=True), _ROW_TYPES, strict=True)
        ]
        columns.append(pa.array(lines, pa.int32()))
        table = pa.Table.from_arrays(columns, schema=_SCHEMA)
    rejected = None
    if rejects:
        numbers, texts, truncated, reasons = zip(*rejects, strict=True)
        rejected = pa.table(
            {
                "line_number": pa.array(numbers, pa.int32()),
                "raw_line": pa.array(texts, pa.string()),
                "raw_truncated": pa.array(truncated, pa.bool_()),
                "reason": pa.array(reasons, pa.string()),
            }
        )
    return ParsedBatch(table, rejected, repeats)


def _insert_rows(
    con: duckdb.DuckDBPyConnection, batch: pa.Table, key: str, started: datetime
) -> int:
    span = pc.min_max(batch["ts_us"])
    con.register("_aigw_batch", batch)
    try:
        inserted = con.execute(
            _INSERT_ROWS,
            {
                "source_file": key,
                "ingested_at": started,
                "low": span["min"].as_py(),
                "high": span["max"].as_py(),
            },
        ).fetchone()
    finally:
        con.unregister("_aigw_batch")
    return int(inserted[0]) if inserted else 0


def _insert_rejects(
    con: duckdb.DuckDBPyConnection, rejects: pa.Table, key: str, started: datetime
) -> None:
    con.register("_aigw_rejects", rejects)
    try:
        con.execute(
            "INSERT INTO rejects SELECT $key, line_number, raw_line, raw_truncated, reason, "
            "$started FROM _aigw_rejects",
            {"key": key, "started": started},
        )
    finally:
        con.unregister("_aigw_rejects")


def _upsert_file(  # noqa: PLR0917 - private, called in three places with the same order
    con: duckdb.DuckDBPyConnection,
    obj: StoredObject,
    source: str,
    status: str,
    counts: ObjectCounts,
    error: str | None,
    started: datetime,
) -> None:
    con.execute(
        _UPSERT_FILE,
        {
            "key": obj.key,
            "source": source,
            "size": obj.size,
            "etag": obj.etag,
            "mtime": obj.mtime,
            "status": status,
            "records": counts.records,
            "loaded": counts.loaded,
            "duplicates": counts.duplicates,
            "rejected": counts.rejected,
            "error": error,
            "now": datetime.now(tz=started.tzinfo),
            "started": started,
        },
    )
