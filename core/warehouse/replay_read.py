"""The read of a request-by-request replay (the rate-limit what-if): the window's
requests of some routes, routed and ordered by DuckDB, with no text the replay does not
need.

A replay of 10 M requests read the route's inputs (``provider``, ``model``,
``requested_model``, ``route``) and the request's key (``log_id``, ``event_id``) as text,
carried through the cost join and the sort: 8-11 s. Here the route is chosen in SQL (a
small code) and the key comes as a 64-bit hash: 3-3.5 s (measured on the 2-core machine,
docs/performance.md). From the refresh's copy of each request's numbers and profile
(``replay_inputs``, schema v13), with each profile routed once: 1-1.4 s
(``read_kept_routed``); ``read_routed`` reads ``requests`` for what the copy lacks.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Final

import duckdb
import numpy as np
import polars as pl

from core.warehouse.reads import Dimensions, column_items, metadata_items, time_range
from core.warehouse.replay_inputs import PROFILES_TABLE, read_replay_requests

__all__ = ["KEPT_COLUMNS", "KEY_HASH", "asked_pairs", "read_kept_routed", "read_routed"]

KEY_HASH: Final = "_request"  # the column of the request's key as a 64-bit hash
_ASKED: Final = "coalesce(requested_model, model)"
_KEY: Final = "coalesce(event_id, log_id)"
_CASE_PAIRS: Final = 32  # the most (provider, asked model) pairs a CASE routes (see below)
# what ``read_kept_routed`` reads besides the dimensions: the kept requests' own numbers
KEPT_COLUMNS: Final = frozenset({"ts", "tokens_in", "tokens_out"})


def asked_pairs(
    con: duckdb.DuckDBPyConnection, since: datetime, until: datetime, *, kept: bool = False
) -> list[tuple[str | None, str | None]]:
    """The distinct (provider, asked model: ``requested_model``, else ``model``) pairs of
    the requests with ``since <= ts < until``, sorted (nulls first); ``kept``: those of
    every profile the refresh kept (``replay_inputs``: a superset, read in milliseconds
    where the requests' took 0.27 s of 10 M)."""
    if kept:
        sql = f"SELECT DISTINCT provider, {_ASKED} FROM {PROFILES_TABLE}"
        params: dict[str, object] = {}
    else:
        where, params = time_range("ts", since, until)
        sql = f"SELECT DISTINCT provider, {_ASKED} FROM requests WHERE {' AND '.join(where)}"
    return [
        (provider, asked)
        for provider, asked in con.execute(f"{sql} ORDER BY ALL NULLS FIRST", params).fetchall()
    ]


def read_routed(
    con: duckdb.DuckDBPyConnection,
    settings: Dimensions,
    *,
    since: datetime,
    until: datetime,
    routes: Sequence[str],
    logged: Collection[str],
    chosen: Mapping[tuple[str | None, str | None], str],
    columns: Sequence[str],
) -> pl.DataFrame:
    """The requests with ``since <= ts < until`` that go to one of ``routes``: a request
    whose logged ``route`` is one of ``logged`` (the configured routes' names) goes
    there, any other to ``chosen[(provider, asked model)]`` (the pairs of
    ``asked_pairs``; a pair not in ``chosen`` goes nowhere).

    One row per stored row, by ``ts``, ties by ``KEY_HASH``: the request's key
    (``event_id``, else ``log_id``) as a 64-bit hash (equal keys, equal hashes; two keys
    may share a hash: a caller that needs the keys apart checks that none repeats).
    Requests logged at one microsecond have no known order: the hash's is fixed, and is
    the order of the kept inputs (``read_kept_routed``) too. Sorted by DuckDB while it
    reads (Polars' sort and gather of 10 M requests afterwards took 7 s and 3 GB). With
    ``route`` (an enum of ``routes``), ``cost_usd``
    (and ``cost_source`` when ``columns`` names it) as the last rollup refresh stored
    them (null for a request loaded since), and the request columns and dimensions
    named in ``columns`` (as ``read_requests``'s ``columns``, and ``event_id``). No
    ``log_id``, ``event_id`` or ``step`` comes back unless named: a caller that finds a
    hash repeated reads again with them (the text through the sort: about 1.5 s more for
    10 M requests)."""
    wanted = {"ts", *columns}
    dims, params = metadata_items(settings, wanted)
    items = [*column_items(wanted), *dims]
    if "event_id" in wanted:
        items.append("event_id")
    where, bounds = time_range("ts", since, until)
    params.update(bounds)
    in_time = " AND ".join(where)
    source = f"(SELECT * FROM requests WHERE {in_time})"
    joined, code = _route_code(routes, logged, chosen, params)
    cost_source = ", cost_source" if "cost_source" in wanted else ""
    sql = (
        "SELECT * EXCLUDE (_log_id) FROM ("
        f"SELECT {', '.join(items)}, log_id AS _log_id, "
        f"hash({_KEY}) AS {KEY_HASH}, ({code})::USMALLINT AS _route "
        # (from a subquery: on the table itself, the route's filter went into the scan
        # and cost 1.4 CPU-s more for 10 M requests)
        f"FROM {source}{joined}) LEFT JOIN "
        f"(SELECT log_id AS _log_id, ts, effective_cost_usd AS cost_usd{cost_source} "
        f"FROM request_costs WHERE {in_time}) USING (ts, _log_id) "
        f"WHERE _route IS NOT NULL ORDER BY ts, {KEY_HASH}"
    )
    frame = pl.DataFrame(pl.from_arrow(con.execute(sql, params).to_arrow_table()))
    return frame.with_columns(
        pl.col("ts").dt.convert_time_zone("UTC"), _route_names(frame["_route"], routes)
    ).drop("_route")


def read_kept_routed(
    con: duckdb.DuckDBPyConnection,
    settings: Dimensions,
    *,
    since: datetime,
    until: datetime,
    routes: Sequence[str],
    logged: Collection[str],
    chosen: Mapping[tuple[str | None, str | None], str],
    columns: Sequence[str],
    keyed: bool = True,
) -> pl.DataFrame:
    """``read_routed``'s frame (same rows, order, columns and values; the dimensions as
    enums of their values, not text; no ``KEY_HASH`` unless ``keyed``: a caller that
    knows whether keys repeat from ``replay_repeats`` does not need them, and reading
    them costs 0.2 s of 10 M requests) from the refresh's copy of the replay's inputs
    (``core.warehouse.replay_inputs``), for ``columns`` of ``KEPT_COLUMNS`` and the
    dimensions of ``settings`` (``ValueError`` for another); the caller checks that the
    copy is there and current (as the rollups). Each profile is
    routed and its dimensions computed once, and each request takes its profile's: 10 M
    requests of 400 profiles in about 1 s, where ``read_routed`` took 7 s (docs)."""
    wanted = {"ts", *columns}
    unknown = wanted - KEPT_COLUMNS - set(settings.all_dimensions)
    if unknown:
        raise ValueError(f"the kept replay inputs hold no {', '.join(sorted(unknown))}")
    dims, params = metadata_items(settings, wanted)
    named = [*column_items(wanted - KEPT_COLUMNS), *dims]
    joined, code = _route_code(routes, logged, chosen, params)
    items = ", ".join(["profile", *named, f"({code})::USMALLINT AS _route"])
    sql = (
        f"SELECT * FROM (SELECT {items} FROM {PROFILES_TABLE}{joined}) "
        "WHERE _route IS NOT NULL ORDER BY profile"
    )
    profiles = pl.DataFrame(pl.from_arrow(con.execute(sql, params).to_arrow_table()))
    profiles = profiles.with_columns(_route_names(profiles["_route"], routes)).drop("_route")
    # the text as enums: a request's is its profile's code (text gathered 10 M times took
    # 0.2 s a column, and the replay coded it again)
    profiles = profiles.with_columns(
        pl.col(name).cast(pl.Enum(profiles[name].drop_nulls().unique().sort()))
        for name, dtype in profiles.schema.items()
        if dtype == pl.String
    )
    total = con.execute(f"SELECT count(*) FROM {PROFILES_TABLE}").fetchone()
    every = total is not None and total[0] == profiles.height
    ids = profiles["profile"].to_numpy()
    rows = read_replay_requests(
        con, since=since, until=until, profiles=None if every else ids.tolist(), keys=keyed
    )
    # each request's profile's row: a gather (a join of 10 M rows to the profiles took
    # longer)
    position = np.zeros(int(ids.max()) + 1 if ids.size else 0, dtype=np.int64)
    position[ids] = np.arange(ids.size)
    at = pl.Series(position).gather(rows["profile"])
    taken = profiles.drop("profile").select(pl.all().gather(at))
    frame = pl.concat([rows.drop("profile"), taken], how="horizontal")
    order = [name.rsplit(" AS ", 1)[-1] for name in column_items(wanted)]
    order += [item.rsplit(" AS ", 1)[-1] for item in dims]
    keys = [KEY_HASH] if keyed else []
    return frame.rename({"request_key": KEY_HASH}, strict=False).select(
        *order, *keys, "cost_usd", "route"
    )


def _route_names(codes: pl.Series, routes: Sequence[str]) -> pl.Series:
    """``route``: the routes of ``codes`` (positions in ``routes``, from 1) as an enum of
    ``routes`` (10 M routes as text took 0.2 s)."""
    return (codes.cast(pl.UInt32) - 1).cat.to(pl.Enum(list(routes))).alias("route")


def _route_code(
    routes: Sequence[str],
    logged: Collection[str],
    chosen: Mapping[tuple[str | None, str | None], str],
    params: dict[str, object],
) -> tuple[str, str]:
    """What routes a row of ``requests`` (or of a table with its ``provider``, ``model``,
    ``requested_model`` and ``route``) as ``read_routed`` says: a join to add after the
    FROM item (empty for none) and the SQL of the route's position in ``routes`` (null:
    none of them); adds their parameters to ``params``."""
    params.update(routes=list(routes), logged=sorted(logged))
    # the route as its position in $routes (null: none of them), a small integer through
    # the sort where the text took seconds; chosen by a CASE over the pairs (a join with
    # a table of the pairs took 1.2 CPU-s more for 10 M requests), by that join past
    # _CASE_PAIRS pairs: the CASE tries the pairs one by one (1 M requests of 300 pairs
    # took 1.45 s, of 3,000 9.6 s, where the join took 0.5 s; even at 10 pairs, 64 0.69 s
    # against 0.55 s; measured on the 2-core machine, load average 2.7)
    position = {route: index for index, route in enumerate(routes, start=1)}
    pairs = [(pair, position[route]) for pair, route in chosen.items() if route in position]
    joined = ""
    if len(pairs) <= _CASE_PAIRS:
        whens = []
        for index, ((provider, asked), number) in enumerate(pairs):
            whens.append(
                f"WHEN provider IS NOT DISTINCT FROM $provider{index} AND {_ASKED} "
                f"IS NOT DISTINCT FROM $asked{index} THEN {number}"
            )
            params.update({f"provider{index}": provider, f"asked{index}": asked})
        by_pair = f"CASE {' '.join(whens)} END" if whens else "NULL"
    else:
        params.update(
            pair_providers=[provider for (provider, _), _ in pairs],
            pair_asked=[asked for (_, asked), _ in pairs],
            pair_codes=[number for _, number in pairs],
        )
        joined = (
            " LEFT JOIN (SELECT unnest($pair_providers::VARCHAR[]) AS _pair_provider, "
            "unnest($pair_asked::VARCHAR[]) AS _pair_asked, "
            "unnest($pair_codes::USMALLINT[]) AS _pair_code) "
            f"ON provider IS NOT DISTINCT FROM _pair_provider AND {_ASKED} "
            "IS NOT DISTINCT FROM _pair_asked"
        )
        by_pair = "_pair_code"
    code = (
        "CASE WHEN list_contains($logged, route) THEN list_position($routes, route) "
        f"ELSE {by_pair} END"
    )
    return joined, code
