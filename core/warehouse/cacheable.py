"""``cacheable_requests``: the response-cache replay's inputs, kept by the rollup refresh.

One row per request a response cache could have served or filled: it has an
identical-request hash (``reads``' ``request_hash``), was answered (status below 400, not
rate limited) and did not ask to skip the cache (``cf-aig-skip-cache``). Each row holds
the request's time, its identity (two 64-bit halves of an MD5 of its gateway, model and
request hash: requests with equal halves are identical), whether it was a cache hit, its
effective cost and saving (as ``request_costs``), and the columns a replay may be summed
or narrowed by (``STORED_COLUMNS``).

The refresh writes the rows of the hours it recomputes in its transaction, so the table
agrees with the rollups; the cache TTL what-if reads it instead of parsing every request
of the window again and joining its cost (measured on 10 M requests: 0.2 s against 4.4 s).
A warehouse whose rollups are stale, or an Iceberg one (which does not keep it), is read
the long way (``reads.read_requests``): both give the same replay (a test holds them so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

import duckdb
import polars as pl

from core.warehouse.reads import DERIVED_DIMENSIONS, REQUEST_HASH_SQL, clear_hours, window_where

__all__ = [
    "CACHEABLE_DDL",
    "CACHEABLE_TABLE",
    "GROUP_CHECK",
    "GROUP_HASH",
    "STORED_COLUMNS",
    "read_cacheable",
    "store_cacheable",
]

CACHEABLE_TABLE: Final = "cacheable_requests"
STORED_COLUMNS: Final = ("gateway", "endpoint", "model", "api_key")
GROUP_HASH: Final = "group_hash"  # a request's identity, the first 64 bits
GROUP_CHECK: Final = "group_check"  # and the second: equal in both, identical requests
CACHEABLE_DDL: Final = f"""
CREATE TABLE {CACHEABLE_TABLE} (
    log_id        VARCHAR NOT NULL,
    ts            TIMESTAMPTZ NOT NULL,
    {GROUP_HASH}    UBIGINT NOT NULL,
    {GROUP_CHECK}   UBIGINT NOT NULL,
    cached        BOOLEAN NOT NULL,
    cost_usd      DOUBLE,
    saved_usd     DOUBLE,
    gateway       VARCHAR,
    endpoint      VARCHAR,
    model         VARCHAR,
    api_key       VARCHAR
);
"""
# the identity's text: a JSON list tells a null apart from any string
_IDENTITY: Final = "md5_number(to_json([gateway, model, request_hash])::VARCHAR)"
# Its two halves, as DuckDB's md5_number_lower and md5_number_upper give them (the high and
# the low 64 bits of md5_number), by integer arithmetic: those macros go through a
# 128-character bit string per row (measured: 0.3 s of a 0.5 s store of 300,000 rows).
_HALVES: Final = (
    f"({_IDENTITY} >> 64)::UBIGINT, ({_IDENTITY} & 18446744073709551615::UHUGEINT)::UBIGINT"
)
_CACHEABLE_ROWS: Final = (
    "request_hash IS NOT NULL AND NOT coalesce(rate_limited, FALSE) "
    "AND coalesce(status_code, 200) < 400 AND NOT cache_skipped"
)


def store_cacheable(
    con: duckdb.DuckDBPyConnection, costs_table: str, hours: list[datetime] | None
) -> None:
    """Replace the rows of ``hours`` (None: every row) with the cacheable requests among
    those whose costs ``costs_table`` holds (``log_id``, ``ts``, ``effective_cost_usd``,
    ``saved_usd``: the refresh's temporary table). The caller holds the transaction."""
    cleared = clear_hours(con, CACHEABLE_TABLE, hours)
    if cleared is None:
        return
    where, params = cleared
    con.execute(
        f"INSERT INTO {CACHEABLE_TABLE} "  # noqa: S608 - constant names
        f"SELECT log_id, ts, {_HALVES}, "
        "coalesce(cached, FALSE), c.effective_cost_usd, c.saved_usd, gateway, endpoint, "
        "model, api_key FROM ("
        f"SELECT log_id, ts, gateway, endpoint, model, cached, rate_limited, status_code, "
        f"{DERIVED_DIMENSIONS['api_key']} AS api_key, "
        "coalesce(json_extract_string(extra, '$.CacheSkipped') = 'true', FALSE) "
        f"AS cache_skipped, {REQUEST_HASH_SQL} AS request_hash "
        f"FROM requests WHERE {where}) AS r "
        f"JOIN {costs_table} AS c USING (ts, log_id) WHERE {_CACHEABLE_ROWS}",
        params,
    )


def read_cacheable(
    con: duckdb.DuckDBPyConnection,
    *,
    since: datetime,
    until: datetime,
    columns: Sequence[str] = (),
    filters: Mapping[str, str] | None = None,
    per_key: bool = False,
) -> pl.DataFrame:
    """The cacheable requests with ``since <= ts < until`` (and each of ``filters``'
    column equal to its value): ``ts`` (UTC), ``GROUP_HASH``, ``GROUP_CHECK`` (with
    ``per_key``, the identity includes the gateway key), ``cached``, ``cost_usd``,
    ``saved_usd`` and ``columns`` (of ``STORED_COLUMNS``).

    A request alone in its group never changes a replay, but all are read: leaving them
    out in SQL (a count per identity, then a semi-join) cost 0.2 µs for every request of
    the window, more than moving and sorting a request (measured: 0.5 s against 0.16 s
    to read 2.45 M requests that all repeat)."""
    wanted = [name for name in dict.fromkeys(columns) if name in STORED_COLUMNS]
    if len(wanted) != len(set(columns)) or not set(filters or {}) <= set(STORED_COLUMNS):
        raise ValueError(f"the cacheable requests keep only {', '.join(STORED_COLUMNS)}")
    identity = (
        f"hash({GROUP_HASH}, api_key) AS {GROUP_HASH}, hash({GROUP_CHECK}, api_key) "
        f"AS {GROUP_CHECK}"
        if per_key
        else f"{GROUP_HASH}, {GROUP_CHECK}"
    )
    where, params = window_where(since, until, filters)
    selected = ", ".join(["ts", identity, "cached", "cost_usd", "saved_usd", *wanted])
    sql = f"SELECT {selected} FROM {CACHEABLE_TABLE} WHERE {where}"  # noqa: S608
    frame = pl.DataFrame(pl.from_arrow(con.execute(sql, params).to_arrow_table()))
    return frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
