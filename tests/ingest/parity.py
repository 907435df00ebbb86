"""For the tests that hold another parser to the Python path: what each path makes of one
object's bytes, and the exact comparison of the two."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from ingest.engine import SqlEngine, read_object
from ingest.loader import ParsedBatch, parse_object

__all__ = ["Outcome", "assert_same", "both_paths"]

Outcome = tuple[list[dict[str, Any]], list[dict[str, Any]], int]  # rows, rejects, repeats


def _outcome(batches: Iterable[ParsedBatch]) -> Outcome:
    """A path's rows, rejects and repeats (no input may raise)."""
    done = list(batches)
    rows = [b.rows for b in done if b.rows is not None]
    rejects = [b.rejects for b in done if b.rejects is not None]
    return (
        pa.concat_tables(rows).to_pylist() if rows else [],
        pa.concat_tables(rejects).to_pylist() if rejects else [],
        sum(b.repeats for b in done),
    )


def both_paths(data: bytes, engine: SqlEngine | None = None) -> tuple[Outcome, Outcome]:
    """(Python path, ``read_object``'s) outcomes of one object's bytes: ``engine`` None
    is the default (the typed path), else the SQL engine."""
    python = _outcome(parse_object(io.BytesIO(data), "obj"))
    other = _outcome(read_object(io.BytesIO(data), "obj", engine))
    return python, other


def assert_same(other: Outcome, python: Outcome) -> None:
    """Equal, and equal in their representations too: ``==`` takes -0.0 for 0.0, and 1
    for 1.0 or True."""
    assert other == python
    assert repr(other) == repr(python)
