"""The ingest engine: one object's bytes in, Arrow batches of rows and rejects out.

``read_object`` is a library function independent of where rows are stored: it needs
the object's stream (and, for the opt-in SQL path, a ``SqlEngine``: a private in-memory
DuckDB connection), and touches no warehouse. The object is read in blocks of whole
lines (a few MB), and each block's lines are normalised by a fast path that handles every
line it can vouch for; the other lines (bad JSON, broken rules, unusual shapes: about
none in Logpush's own output) go through the Python path of ``ingest.records`` one by
one, which gives them today's rows and reject reasons. So every path gives the same rows
for the same line (``tests/ingest/test_engine_typed.py`` and ``test_engine.py`` check it
on random records), and every line is accounted for: ``rows + rejects + repeats ==
records``.

The fast paths: by default the typed one (``ingest.engine_typed``: msgspec parses each
line once into typed fields, and the rows are built column by column: measured 2.2-2.7
times faster than orjson and Python on small records, 1.3-1.5 times on records with
encrypted bodies, docs/performance.md); with a ``SqlEngine``, one DuckDB query per block
(``ingest.engine_sql``, opt-in: ``IngestSettings.sql_engine``; it measured no faster than
the Python path). Objects read with a ``Decryptor`` (decryption is Python) and JSON
documents (REST API pages, arrays) take the Python path whole, as before.

Repeats inside an object (same ``log_id``) are dropped here, the first occurrence
winning, as the Python path does. Thread-safety: a ``SqlEngine`` is used by one thread
(the prefetcher's); DuckDB releases the GIL while it works, so the writer runs beside it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from itertools import chain
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ingest.decrypt import Decryptor
from ingest.engine_sql import NORMALISE_SQL
from ingest.engine_typed import normalise_lines
from ingest.loader import (
    BATCH_ROWS,
    ROW_SCHEMA,
    ParsedBatch,
    make_batch,
    parse_object,
    parse_records,
    reject_of,
)
from ingest.reader import Readable, is_document, iter_records, line_records, text_blocks
from ingest.records import ROW_FIELDS, InvalidRecord, normalize

__all__ = ["SqlEngine", "read_object"]

_RECYCLE_BYTES: Final = 256 * 1024 * 1024  # lines a connection holds before a new one
_Line = tuple[int, bytes]  # a line left to the Python path: its number and bytes


class SqlEngine:
    """A private in-memory DuckDB connection that normalises lines; one thread; ``close``
    it. The connection is made, and the query prepared (about 0.3 s), on first use.

    Blocks of fewer than ``min_lines`` lines go to the Python path whole: each execution
    of the query costs about 50 ms however few its lines, what Python needs for about
    2,000 records (small incremental runs stay as fast as before).
    """

    def __init__(self, *, min_lines: int = 2_000, threads: int = 1) -> None:
        self.min_lines = min_lines
        self._threads = threads
        self._con: duckdb.DuckDBPyConnection | None = None
        self._held = 0  # bytes of lines the connection has held

    def normalise(self, lines: pa.Array, first_number: int) -> pa.Table:
        """Columns ``n``, ``fast`` and ``ROW_FIELDS`` for each non-blank line of ``lines``
        (UTF-8 strings, numbered from ``first_number``), in line order."""
        if self._held > _RECYCLE_BYTES:
            # An in-memory database keeps deleted rows' memory (measured: every block
            # stayed, 1.6 GB more at peak on 1 M records of 1.8 KB), and replacing the table
            # would make DuckDB bind the query again at each execution: a new connection.
            self.close()
        con = self._connect()
        self._held += lines.nbytes
        numbers = pa.array(range(first_number, first_number + len(lines)), pa.int32())
        con.execute("DELETE FROM _aigw_lines")
        # Not con.register: a view changes the catalog, and DuckDB then binds the prepared
        # query again at every execution (0.4 s each).
        con.from_arrow(pa.table({"n": numbers, "raw": lines})).insert_into("_aigw_lines")
        return con.execute("EXECUTE _aigw_normalise").to_arrow_table()

    def close(self) -> None:
        """Close the connection, if one was made."""
        if self._con is not None:
            self._con.close()
            self._con = None
        self._held = 0

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            con = duckdb.connect()
            try:
                con.execute(f"SET threads = {int(self._threads)}")
                con.execute("CREATE TEMP TABLE _aigw_lines (n INTEGER, raw VARCHAR)")
                con.execute("PREPARE _aigw_normalise AS " + NORMALISE_SQL)
            except BaseException:
                con.close()
                raise
            self._con = con
        return self._con


def read_object(
    stream: Readable,
    key: str,
    engine: SqlEngine | None,
    batch_rows: int = BATCH_ROWS,
    decryptor: Decryptor | None = None,
) -> Iterator[ParsedBatch]:
    """The object's rows, rejects and repeats in batches of up to ``batch_rows`` rows.

    Lines are normalised by the typed path (``ingest.engine_typed``), or by ``engine``'s
    SQL if one is given, and by the Python path for the lines either leaves. Raises
    ``ObjectReadError`` when the bytes cannot be read to their end (the batches already
    yielded must then be discarded: the loader rolls the object back).
    """
    if decryptor is not None:
        yield from parse_object(stream, key, batch_rows, decryptor)
        return
    blocks = text_blocks(stream, key)
    first = next(blocks, b"")
    if is_document(first):
        data = b"".join(chain((first,), blocks))
        yield from parse_records(iter_records(io.BytesIO(data), key), batch_rows)
        return
    seen: list[pa.Array] = []
    number = 0
    for block in chain((first,), blocks):
        if engine is None:
            fast, slow, count = _typed_block(block, number)
        else:
            fast, slow, count = _sql_block(engine, block, number)
        number += count
        rows, rejects, repeats = _merge(fast, slow, seen)
        yield from _slices(rows, rejects, repeats, batch_rows)


def _typed_block(block: bytes, number: int) -> tuple[pa.Table | None, list[_Line], int]:
    """The typed path's rows of a block, the lines it leaves, and the block's line count."""
    lines = block.split(b"\n")
    if block.endswith(b"\n"):
        lines.pop()
    fast, slow = normalise_lines(lines, number + 1)
    return fast, [(n, lines[n - number - 1]) for n in slow], len(lines)


def _sql_block(
    engine: SqlEngine, block: bytes, number: int
) -> tuple[pa.Table | None, list[_Line], int]:
    """The SQL path's rows of a block, the lines it leaves, and the block's line count."""
    lines = pc.split_pattern(pa.array([block], pa.large_binary()), b"\n").flatten()
    if block.endswith(b"\n"):
        lines = lines.slice(0, len(lines) - 1)
    text = None
    if len(lines) >= engine.min_lines:
        try:
            text = lines.cast(pa.large_string())
        except pa.ArrowInvalid:  # not UTF-8: every line to the Python path
            text = None
    result = None
    if text is not None:
        try:
            result = engine.normalise(text, number + 1)
        except duckdb.Error:
            # The SQL only speeds up what Python does; if DuckDB fails on a block (a value
            # no guard foresaw, memory), the Python path gives the same rows for it.
            result = None
    if result is None:
        slow = list(range(number + 1, number + len(lines) + 1))
        fast = None
    else:
        mask = result["fast"]
        chosen = result.filter(mask)
        slow = result["n"].filter(pc.invert(mask)).to_pylist()
        if chosen.num_rows:
            columns = [chosen[name] for name in ROW_FIELDS]
            ts_us = ROW_FIELDS.index("ts_us")
            columns[ts_us] = chosen["ts_us"].cast(pa.timestamp("us", tz="UTC"))
            fast = pa.Table.from_arrays([*columns, chosen["n"]], names=ROW_SCHEMA.names).cast(
                ROW_SCHEMA
            )
        else:
            fast = None
    return fast, [(n, lines[n - number - 1].as_py()) for n in slow], len(lines)


def _merge(
    fast: pa.Table | None, slow: list[_Line], seen: list[pa.Array]
) -> tuple[pa.Table | None, list[tuple[int, str, bool, str]], int]:
    """A block's rows (the fast rows and the Python path's for ``slow``, in line order,
    deduplicated against ``seen``, which grows), its rejects and its repeats."""
    py_rows: list[tuple[object, ...]] = []
    py_lines: list[int] = []
    rejects: list[tuple[int, str, bool, str]] = []
    for n, raw in slow:
        for line_number, raw_record, value in line_records(n, raw):
            try:
                if isinstance(value, InvalidRecord):
                    raise value
                py_rows.append(normalize(value, raw_record))
            except InvalidRecord as err:
                rejects.append(reject_of(line_number, raw_record, str(err)))
                continue
            py_lines.append(line_number)
    parts = [] if fast is None or not fast.num_rows else [fast]
    if py_rows:
        table = make_batch(py_rows, py_lines, [], 0).rows
        if table is not None:
            parts.append(table)
    if not parts:
        return None, rejects, 0
    rows = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        rows = rows.take(pc.sort_indices(rows["source_line"]))  # a stable sort
    before = rows.num_rows
    rows = _first_occurrences(rows, seen)
    seen.append(rows["log_id"].combine_chunks())
    return rows, rejects, before - rows.num_rows


def _first_occurrences(rows: pa.Table, seen: list[pa.Array]) -> pa.Table:
    """``rows`` without those whose ``log_id`` is in ``seen`` or on an earlier row."""
    if seen:
        earlier = pa.concat_arrays(seen)
        rows = rows.filter(pc.invert(pc.is_in(rows["log_id"], value_set=earlier)))
    if pc.count_distinct(rows["log_id"]).as_py() == rows.num_rows:
        return rows
    position = pa.array(range(rows.num_rows), pa.int64())
    firsts = (
        pa.table({"log_id": rows["log_id"], "i": position})
        .group_by("log_id", use_threads=False)
        .aggregate([("i", "min")])
    )
    return rows.filter(pc.is_in(position, value_set=firsts["i_min"]))


def _slices(
    rows: pa.Table | None,
    rejects: list[tuple[int, str, bool, str]],
    repeats: int,
    batch_rows: int,
) -> Iterator[ParsedBatch]:
    """A block's result as batches of up to ``batch_rows`` rows (rejects in the first)."""
    rejected = make_batch([], [], rejects, 0).rejects if rejects else None
    if rows is None or rows.num_rows == 0:
        if rejected is not None or repeats:
            yield ParsedBatch(None, rejected, repeats)
        return
    for offset in range(0, rows.num_rows, batch_rows):
        part = rows.slice(offset, batch_rows)
        if offset:
            yield ParsedBatch(part, None, 0)
        else:
            yield ParsedBatch(part, rejected, repeats)
