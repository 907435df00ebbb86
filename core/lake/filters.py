"""PyIceberg row filters aigw uses (typed loosely: PyIceberg's expression classes are
pydantic models whose generated signatures type checkers misread)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from core.lake.extra import require

__all__ = ["in_ranges", "is_in"]


def _expressions() -> Any:
    return require("pyiceberg.expressions", extra="lake", feature="iceberg tables")


def in_ranges(
    column: str, ranges: Sequence[tuple[datetime, datetime]], *, closed: bool = False
) -> Any:
    """Rows whose ``column`` lies in one of ``ranges`` (``[low, high)``; ``[low, high]``
    when ``closed``); no row when ``ranges`` is empty."""
    ex = _expressions()
    predicate: Any = ex.AlwaysFalse()
    upper = ex.LessThanOrEqual if closed else ex.LessThan
    for low, high in ranges:
        part = ex.And(
            ex.GreaterThanOrEqual(column, low.isoformat()), upper(column, high.isoformat())
        )
        predicate = ex.Or(predicate, part)
    return predicate


def is_in(column: str, values: Sequence[str]) -> Any:
    """Rows whose ``column`` is one of ``values``."""
    return _expressions().In(column, list(values))
