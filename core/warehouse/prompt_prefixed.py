"""``prompt_prefixed_requests``: the prompt-caching what-if's inputs, kept by the rollup refresh.

One row per request that carries a prompt-prefix hash (aigw's gateway logs it on about
every request with a system prompt or tools; other gateways' records carry none), with
exactly what the replay reads of it (``PREFIXED_COLUMNS``: time, provider and model,
status and flags, token counts, the effective cost and its source as ``request_costs``
holds them, the prefix's hash and estimated tokens) and the columns the what-if may be
summed or narrowed by besides provider and model (``gateway``, ``endpoint``, ``api_key``).

The refresh writes the rows of the hours it recomputes in its transaction, so the table
agrees with the rollups; the prompt-caching what-if (and the savings report) reads it
instead of scanning every row group of ``requests`` for the few prefixed requests and
pricing them again (measured on 10 M requests, 200,000 prefixed: see
docs/performance.md). A warehouse whose rollups are stale, or an Iceberg one (which does
not keep it), is read the long way (``models.costed_requests``): both give the same
replay (a test holds them so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

import duckdb
import polars as pl

from core.warehouse.reads import DERIVED_DIMENSIONS, clear_hours, window_where

__all__ = [
    "PREFIXED_COLUMNS",
    "PREFIXED_DDL",
    "PREFIXED_DIMENSIONS",
    "PREFIXED_TABLE",
    "read_prompt_prefixed",
    "store_prompt_prefixed",
]

PREFIXED_TABLE: Final = "prompt_prefixed_requests"
# What the replay reads of each request, in the table's order (the models' what-if names
# this list ``PROMPT_CACHE_COLUMNS``).
PREFIXED_COLUMNS: Final = (
    "ts",
    "provider",
    "model",
    "status_code",
    "cached",
    "rate_limited",
    "tokens_in",
    "tokens_out",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "cost_source",
    "prompt_prefix_hash",
    "prompt_prefix_tokens",
)
# The dimensions a kept read may be by or filtered on.
PREFIXED_DIMENSIONS: Final = ("provider", "model", "gateway", "endpoint", "api_key")
PREFIXED_DDL: Final = f"""
CREATE TABLE {PREFIXED_TABLE} (
    ts                    TIMESTAMPTZ NOT NULL,
    provider              VARCHAR,
    model                 VARCHAR,
    status_code           INTEGER,
    cached                BOOLEAN,
    rate_limited          BOOLEAN,
    tokens_in             BIGINT,
    tokens_out            BIGINT,
    cache_read_tokens     BIGINT,
    cache_write_tokens    BIGINT,
    cost_usd              DOUBLE,
    cost_source           VARCHAR,
    prompt_prefix_hash    VARCHAR NOT NULL,
    prompt_prefix_tokens  BIGINT,
    gateway               VARCHAR,
    endpoint              VARCHAR,
    api_key               VARCHAR
);
"""
# The request columns copied as they are (the cost columns come from the refresh).
_COPIED: Final = tuple(name for name in PREFIXED_COLUMNS if name not in ("cost_usd", "cost_source"))


def store_prompt_prefixed(
    con: duckdb.DuckDBPyConnection, costs_table: str, hours: list[datetime] | None
) -> None:
    """Replace the rows of ``hours`` (None: every row) with the prefixed requests among
    those whose costs ``costs_table`` holds (``log_id``, ``ts``, ``effective_cost_usd``,
    ``cost_source``: the refresh's temporary table). The caller holds the transaction."""
    cleared = clear_hours(con, PREFIXED_TABLE, hours)
    if cleared is None:
        return
    where, params = cleared
    con.execute(
        f"INSERT INTO {PREFIXED_TABLE} BY NAME "  # noqa: S608 - constant names
        "SELECT r.* EXCLUDE (log_id), c.effective_cost_usd AS cost_usd, c.cost_source FROM ("
        f"SELECT log_id, {', '.join(_COPIED)}, gateway, endpoint, "
        f"{DERIVED_DIMENSIONS['api_key']} AS api_key FROM requests "
        f"WHERE {where} AND prompt_prefix_hash IS NOT NULL) AS r "
        f"JOIN {costs_table} AS c USING (ts, log_id)",
        params,
    )


def read_prompt_prefixed(
    con: duckdb.DuckDBPyConnection,
    *,
    since: datetime,
    until: datetime,
    columns: Sequence[str] = (),
    filters: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """The prefixed requests with ``since <= ts < until`` (and each of ``filters``' column
    equal to its value): ``PREFIXED_COLUMNS`` (``ts`` in UTC) and ``columns`` (of
    ``PREFIXED_DIMENSIONS``). ``ValueError`` for another column or filter."""
    if not set(columns) | set(filters or {}) <= set(PREFIXED_DIMENSIONS):
        raise ValueError(f"the prompt-prefixed requests keep only {', '.join(PREFIXED_DIMENSIONS)}")
    wanted = [name for name in dict.fromkeys(columns) if name not in PREFIXED_COLUMNS]
    where, params = window_where(since, until, filters)
    selected = ", ".join([*PREFIXED_COLUMNS, *wanted])
    sql = f"SELECT {selected} FROM {PREFIXED_TABLE} WHERE {where}"  # noqa: S608
    frame = pl.DataFrame(pl.from_arrow(con.execute(sql, params).to_arrow_table()))
    return frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
