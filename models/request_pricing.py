"""Price one request at a time, for the gateway's ``Metrics.cost``.

The same price table and the same rules as ``models.cost.with_cost`` (highest rank
among the rows whose start date, time-of-day window and long-context threshold hold;
cache reads and writes at their own rates, the input rate where there is none), but
for a single request on the gateway's hot path: the catalogue is looked up once per
(provider, model) and kept as plain tuples.

Thread-safety: a ``RequestPricer`` may be shared by the coroutines of one event loop;
its cache only grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import polars as pl

from models.pricing import PRICE_SCHEMA, price_key, price_table

__all__ = ["RequestPricer", "Usage"]

_PER_MTOK: Final = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call; ``tokens_in`` includes cache reads and writes, and
    ``cache_write`` (every cache write) includes ``cache_write_1h`` (those with a 1-hour
    TTL, billed at their own rate)."""

    tokens_in: int = 0
    tokens_out: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0


# (rank, valid_from, daily_start_min, daily_end_min, above_input_tokens,
#  input, output, cache_read, cache_write, cache_write_1h); USD per million tokens.
_Row = tuple[
    int,
    datetime | None,
    int | None,
    int | None,
    int | None,
    float | None,
    float | None,
    float | None,
    float | None,
    float | None,
]


class RequestPricer:
    """USD cost of one request from the genai-prices catalogue and optional overrides."""

    def __init__(self, overrides: pl.DataFrame | None = None) -> None:
        self._overrides = overrides
        self._rows: dict[tuple[str, str], list[_Row]] = {}

    def cost(self, provider: str, model: str, at: datetime, usage: Usage) -> float | None:
        """USD for ``usage`` at time ``at`` (aware, UTC); None when no price applies."""
        row = self._choose(provider, model, at, usage.tokens_in)
        if row is None:
            return None
        input_price, output_price, read_price, write_price, write_1h_price = row[5:]
        uncached = max(usage.tokens_in - usage.cache_read - usage.cache_write, 0)
        read = read_price if read_price is not None else input_price
        write = write_price if write_price is not None else input_price
        write_1h = write_1h_price if write_1h_price is not None else write
        one_hour = min(max(usage.cache_write_1h, 0), max(usage.cache_write, 0))
        # A missing price adds nothing, as in with_cost (embeddings have no output price).
        parts = (
            (uncached, input_price),
            (usage.cache_read, read),
            (usage.cache_write - one_hour, write),
            (one_hour, write_1h),
            (usage.tokens_out, output_price),
        )
        return sum(tokens * price / _PER_MTOK for tokens, price in parts if price is not None)

    def known(self, provider: str, model: str) -> bool:
        """Whether any price row exists for the pair."""
        return bool(self._rows_for(provider, model))

    def _choose(self, provider: str, model: str, at: datetime, tokens_in: int) -> _Row | None:
        minute = at.hour * 60 + at.minute
        best: _Row | None = None
        for row in self._rows_for(provider, model):
            _, valid_from, start, end, above, *_ = row
            if valid_from is not None and valid_from > at:
                continue
            if start is not None and end is not None:
                inside = start <= minute < end if start <= end else minute >= start or minute < end
                if not inside:
                    continue
            if above is not None and tokens_in <= above:
                continue
            if best is None or row[0] >= best[0]:
                best = row
        return best

    def _rows_for(self, provider: str, model: str) -> list[_Row]:
        key = (provider, model)
        rows = self._rows.get(key)
        if rows is None:
            overrides = None
            if self._overrides is not None and not self._overrides.is_empty():
                priced = price_key(provider, model)
                overrides = self._overrides.filter(
                    pl.struct("provider", "model").is_in(
                        [{"provider": p, "model": m} for p, m in {key, priced}]
                    )
                )
            table = price_table([key], overrides).sort("rank", maintain_order=True)
            columns = [name for name in PRICE_SCHEMA if name not in {"provider", "model"}]
            columns = [name for name in columns if name not in {"source", "price_ref"}]
            rows = [tuple(row) for row in table.select(columns).iter_rows()]
            self._rows[key] = rows
        return rows
