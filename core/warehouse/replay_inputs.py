"""``replay_requests``, ``replay_profiles`` and ``replay_repeats``: the rate-limit
replay's inputs, kept by the rollup refresh.

A request-by-request replay (``aigw whatif --limits``) needs, per request, its time, a
key that tells requests apart, its tokens and effective cost, and the text that names
its route and limit subjects (provider, asked model, logged route, gateway key, metadata
values). Read from ``requests``, that text costs the JSON parse of every request's
metadata, the join with ``request_costs`` and a sort with text payloads: 7 s of 10 M
requests on the 2-core machine. Here each request keeps numbers only:

- ``replay_requests``: ``ts``, ``request_key`` (``hash(coalesce(event_id, log_id))``, as
  ``replay_read`` computes it), ``tokens_in``, ``tokens_out``, ``cost_usd`` (the
  effective cost, as ``request_costs``) and ``profile``;
- ``replay_profiles``: one row per distinct ``profile``, the text a request shares with
  many others, in ``requests``' own column names (``PROFILE_COLUMNS``) so that any
  dimension's SQL reads it as it reads ``requests``: ``gateway``, ``provider``,
  ``model``, ``endpoint``, ``request_type``, ``model_type``, ``metadata`` (the JSON text
  as stored), ``requested_model``, ``route``, and ``api_key_id`` holding the gateway key
  as the ``api_key`` dimension derives it (``extra`` is null: the key is all a replay
  reads of it). ``identity`` is DuckDB's 64-bit hash of those values;
- ``replay_repeats``: the ``request_key`` values more than one row holds (attempts of one
  request, or two keys of one hash), so that a replay knows whether its window has
  attempts to fold without comparing every key (``keys_repeat``).

Profiles are as many as distinct combinations of those values (400 in the 10 M-request
benchmark); metadata that differs per request (a trace id) makes them as many as
requests: the replay stays right, not faster. The refresh writes the rows of the hours
it recomputes in its transaction (so the tables agree with the rollups), numbering the
profiles it has not seen after the highest number in use. Two profiles of one
``identity`` (a hash collision) would join rows to the wrong text: the refresh then
drops both tables, and replays read the long way until the next full refresh. A
warehouse whose rollups are stale, an Iceberg one (which does not keep the tables), or a
replay that needs what they do not hold reads ``requests`` the long way
(``replay_read.read_routed``): both give the same replay (a test holds them so).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import duckdb
import numpy as np
import polars as pl

from core.warehouse.reads import DERIVED_DIMENSIONS, clear_hours, time_range

__all__ = [
    "PROFILES_TABLE",
    "PROFILE_COLUMNS",
    "REPEATS_DDL",
    "REPEATS_TABLE",
    "REPLAY_DDL",
    "REPLAY_TABLE",
    "in_time_order",
    "keys_repeat",
    "read_replay_requests",
    "replay_inputs_kept",
    "store_replay_inputs",
]

REPLAY_TABLE: Final = "replay_requests"
PROFILES_TABLE: Final = "replay_profiles"
REPEATS_TABLE: Final = "replay_repeats"
# (name -> the SQL over ``requests`` that gives it)
_PROFILED: Final = {
    "gateway": "gateway",
    "provider": "provider",
    "model": "model",
    "endpoint": "endpoint",
    "api_key_id": DERIVED_DIMENSIONS["api_key"],
    "extra": "NULL::VARCHAR",
    "request_type": "request_type",
    "model_type": "model_type",
    "metadata": "metadata",
    "requested_model": "requested_model",
    "route": "route",
}
PROFILE_COLUMNS: Final = tuple(_PROFILED)
REPLAY_DDL: Final = f"""
CREATE TABLE IF NOT EXISTS {PROFILES_TABLE} (
    profile          INTEGER NOT NULL,
    identity         UBIGINT NOT NULL,
    gateway          VARCHAR,
    provider         VARCHAR,
    model            VARCHAR,
    endpoint         VARCHAR,
    api_key_id       VARCHAR,
    extra            VARCHAR,
    request_type     VARCHAR,
    model_type       VARCHAR,
    metadata         VARCHAR,
    requested_model  VARCHAR,
    route            VARCHAR
);
CREATE TABLE IF NOT EXISTS {REPLAY_TABLE} (
    ts           TIMESTAMPTZ NOT NULL,
    request_key  UBIGINT NOT NULL,
    tokens_in    BIGINT,
    tokens_out   BIGINT,
    cost_usd     DOUBLE,
    profile      INTEGER NOT NULL
);
"""
# v14: the keys more than one kept row holds (attempts of one request, or two keys of one
# hash), so that a replay knows without reading every key whether its window has any
REPEATS_DDL: Final = f"""
CREATE TABLE IF NOT EXISTS {REPEATS_TABLE} (
    request_key  UBIGINT NOT NULL
);
"""
_IDENTITY: Final = f"hash({', '.join(sql for name, sql in _PROFILED.items() if name != 'extra')})"
_KEY: Final = "hash(coalesce(event_id, log_id))"


def replay_inputs_kept(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the warehouse has the three tables (a collision drops them; an Iceberg
    warehouse has none)."""
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN (?, ?, ?)",
        [REPLAY_TABLE, PROFILES_TABLE, REPEATS_TABLE],
    ).fetchone()
    return bool(row and row[0] == 3)


def store_replay_inputs(
    con: duckdb.DuckDBPyConnection, costs_table: str, hours: list[datetime] | None
) -> None:
    """Replace the rows of ``hours`` (None: every row, and the profiles) with the requests
    of those hours, their costs from ``costs_table`` (``log_id``, ``ts``,
    ``effective_cost_usd``: the refresh's temporary table). The caller holds the
    transaction. Measured on 10 M requests: 5-6 s, about a tenth of the refresh."""
    if not replay_inputs_kept(con):
        if hours is not None:  # dropped after a collision: until the next full refresh
            return
        con.execute(REPLAY_DDL + REPEATS_DDL)
    if hours is None:
        con.execute(f"DELETE FROM {PROFILES_TABLE}")  # noqa: S608 - a constant name
        con.execute(f"DELETE FROM {REPEATS_TABLE}")  # noqa: S608 - a constant name
    cleared = clear_hours(con, REPLAY_TABLE, hours)
    if cleared is None:
        return
    where, params = cleared
    listed = ", ".join(PROFILE_COLUMNS)
    profiled = ", ".join(f"{sql} AS {name}" for name, sql in _PROFILED.items())
    # the profiles not seen before (EXCEPT compares whole rows, nulls equal), numbered
    # after the highest in use
    con.execute(
        f"INSERT INTO {PROFILES_TABLE} SELECT "  # noqa: S608 - trusted names
        f"(SELECT coalesce(max(profile), -1) FROM {PROFILES_TABLE}) + "
        "row_number() OVER (ORDER BY identity), * FROM ("
        f"SELECT DISTINCT {_IDENTITY} AS identity, {profiled} FROM requests WHERE {where} "
        f"EXCEPT SELECT identity, {listed} FROM {PROFILES_TABLE})",
        params,
    )
    repeated = con.execute(
        f"SELECT count(*) - count(DISTINCT identity) FROM {PROFILES_TABLE}"  # noqa: S608
    ).fetchone()
    if repeated and repeated[0]:  # two profiles share a hash: see the module's docstring
        for table in (REPLAY_TABLE, PROFILES_TABLE, REPEATS_TABLE):
            con.execute(f"DROP TABLE {table}")
        return
    con.execute(
        f"INSERT INTO {REPLAY_TABLE} SELECT r.ts, r.request_key, r.tokens_in, "  # noqa: S608
        "r.tokens_out, c.effective_cost_usd, p.profile FROM ("
        f"SELECT ts, log_id, {_KEY} AS request_key, tokens_in, tokens_out, "
        f"{_IDENTITY} AS identity FROM requests WHERE {where}) AS r "
        f"JOIN {PROFILES_TABLE} AS p USING (identity) "
        f"LEFT JOIN {costs_table} AS c USING (ts, log_id) ORDER BY r.ts, r.request_key",
        params,
    )
    # the keys of these hours' rows that another row holds too (in any hour): a key stays
    # listed until the next full refresh, even when a later refresh removes a row of it
    con.execute(
        f"INSERT INTO {REPEATS_TABLE} SELECT request_key FROM {REPLAY_TABLE} "  # noqa: S608
        f"WHERE request_key IN (SELECT request_key FROM {REPLAY_TABLE} WHERE {where}) "
        f"GROUP BY request_key HAVING count(*) > 1 EXCEPT SELECT request_key FROM {REPEATS_TABLE}",
        params,
    )


def keys_repeat(con: duckdb.DuckDBPyConnection, *, since: datetime, until: datetime) -> bool:
    """Whether a kept request with ``since <= ts < until`` may share its key with another
    row (``replay_repeats`` lists its key; the other row may lie outside the window):
    milliseconds when no key repeats anywhere, where comparing the window's keys took
    0.2 s of 10 M requests."""
    listed = con.execute(f"SELECT count(*) FROM {REPEATS_TABLE}").fetchone()  # noqa: S608
    if not listed or not listed[0]:
        return False
    where, params = time_range("ts", since, until)
    row = con.execute(
        f"SELECT count(*) FROM {REPLAY_TABLE} WHERE {' AND '.join(where)} "  # noqa: S608
        f"AND request_key IN (SELECT request_key FROM {REPEATS_TABLE})",
        params,
    ).fetchone()
    return bool(row and row[0])


def read_replay_requests(
    con: duckdb.DuckDBPyConnection,
    *,
    since: datetime,
    until: datetime,
    profiles: Sequence[int] | None = None,
    keys: bool = True,
) -> pl.DataFrame:
    """The kept requests with ``since <= ts < until`` (of ``profiles`` only, when given),
    by ``ts``, ties by ``request_key``: ``ts`` (UTC), ``request_key`` (not when
    ``keys`` is false), ``tokens_in``, ``tokens_out``, ``cost_usd``, ``profile``.

    The refresh appends each hour's rows in that order, one statement for the hours it
    writes (``INSERT ... ORDER BY``: DuckDB keeps a table's rows in the order they went
    in, and a scan of one table returns them in that order), so they are read as they
    lie and checked (0.5 s for 10 M requests), and sorted by DuckDB only when a refresh
    of an earlier hour (a late record) moved its rows to the end (1.1 s). Read with the
    keys, the check compares the keys of rows at one time too; without them (0.2 s less
    for 10 M requests, as a fresh connection loads the keys' 80 MB), the times only:
    rows at one time come from one statement, in its order. Read for some
    ``profiles``, the rows are put back in the table's order by their positions
    (``rowid``) first: that filter is a join, which may reorder them."""
    where, params = time_range("ts", since, until)
    if profiles is not None:
        where.append("profile IN (SELECT unnest($profiles::INTEGER[]))")
        params["profiles"] = list(profiles)
    rows = f"FROM {REPLAY_TABLE} WHERE {' AND '.join(where)}"
    counted = con.execute(f"SELECT count(*) {rows}", params).fetchone()
    # one Arrow batch (DuckDB allocates a batch's rows up front): in batches of a
    # million rows, the columns were copied into one again later (0.13-0.23 s of 10 M)
    batch = max(counted[0] if counted else 0, 1)
    key = "request_key, " if keys else ""
    # the profiles' filter is a join, which does not keep the table's order (DuckDB 1.5
    # gave ties out of order, the times sorted, and on 10 M rows the times too): the
    # rows' positions put them back as they lie (Polars' sort of the positions; DuckDB's
    # sort by time and key took 1.1 s of 10 M)
    position = ", rowid AS _position" if profiles is not None else ""
    sql = f"SELECT ts, {key}tokens_in, tokens_out, cost_usd, profile{position} {rows}"
    frame = pl.DataFrame(pl.from_arrow(con.execute(sql, params).to_arrow_table(batch)))
    if position and not frame["_position"].is_sorted():
        frame = frame.sort("_position")
    as_they_lie = in_time_order(frame, "request_key") if keys else frame["ts"].is_sorted()
    if not as_they_lie:
        sql += " ORDER BY ts, request_key"
        frame = pl.DataFrame(pl.from_arrow(con.execute(sql, params).to_arrow_table(batch)))
    return frame.drop("_position", strict=False).with_columns(
        pl.col("ts").dt.convert_time_zone("UTC")
    )


def in_time_order(frame: pl.DataFrame, key: str) -> bool:
    """Whether ``frame`` is sorted by ``ts``, then ``key`` (Polars' ``is_sorted`` on the
    times, the keys compared only where times tie: 0.02 s for 10 M requests, where
    NumPy's ``diff`` took 0.12-0.17 s and Polars' shifted comparison 0.13 s)."""
    if not frame["ts"].is_sorted():
        return False
    ts = frame["ts"].to_physical().to_numpy()
    tied = np.flatnonzero(ts[1:] == ts[:-1])
    if not tied.size:
        return True
    keys = frame[key].to_numpy()
    return bool((keys[tied + 1] >= keys[tied]).all())
