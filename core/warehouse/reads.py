"""Reads of ``requests`` for the models, as Polars frames (through Arrow, no Python rows).

With ``core.warehouse.explore`` (the dashboard's raw-request queries) this is where SQL
reads ``requests`` (ingest's loader and quality gate write and check it). The models'
read is one projection with the columns the models use and one column per named
metadata dimension; metadata that is not a plain object (encrypted, absent) gives null
dimensions. The caller owns the connection (one thread).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final, Literal, Protocol

import duckdb
import polars as pl

from core.errors import ConfigError
from core.schema import MODEL_COLUMNS

NEWEST_INGEST_VARIABLE: Final = "aigw_newest_ingest"  # see newest_ingest
__all__ = [
    "DERIVED_DIMENSIONS",
    "NEWEST_INGEST_VARIABLE",
    "REQUEST_COLUMNS",
    "REQUEST_HASH_SQL",
    "Dimensions",
    "cache_miss_costs",
    "clear_hours",
    "dimension_sql",
    "in_hours",
    "newest_ingest",
    "read_requests",
    "request_days",
    "request_hashes",
    "time_range",
    "touched_hours",
    "window_where",
]


class Dimensions(Protocol):
    """What a read needs of the report dimensions (``models.ModelsSettings`` has it):
    the metadata ones as name -> metadata key, and every dimension's name."""

    @property
    def dimensions(self) -> Mapping[str, str]: ...

    @property
    def all_dimensions(self) -> tuple[str, ...]: ...


REQUEST_COLUMNS: Final = MODEL_COLUMNS  # the projection, from core.schema

# The kind of request a row's endpoint names, for rows that logged none (aigw's gateway,
# Logpush): chat for chat/completions, completions, messages and responses, embeddings,
# images and audio for those paths (an optional provider or version prefix allowed); NULL
# for any other endpoint (e.g. Workers AI's model paths).
_KIND_OF_ENDPOINT: Final = (
    "CASE WHEN regexp_matches(endpoint, '(^|/)(chat/completions|completions|messages|"
    "responses)$') THEN 'chat' "
    "WHEN regexp_matches(endpoint, '(^|/)embeddings$') THEN 'embeddings' "
    "WHEN regexp_matches(endpoint, '(^|/)images/') THEN 'images' "
    "WHEN regexp_matches(endpoint, '(^|/)audio/') THEN 'audio' END"
)
# Report dimensions computed from ``requests`` columns (name -> SQL expression):
# ``api_key`` (aigw's gateway key, also in ``extra`` before schema v3) and the request
# and model types as logged (REST), else the kind of the endpoint.
DERIVED_DIMENSIONS: Final = {
    "api_key": "coalesce(api_key_id, json_extract_string(extra, '$.ApiKeyId'))",
    "request_type": f"coalesce(request_type, {_KIND_OF_ENDPOINT})",
    "model_type": f"coalesce(model_type, {_KIND_OF_ENDPOINT})",
}


# Columns a read gives only when ``columns`` names them (name -> SQL expression):
# ``cache_skipped``, the request was sent with ``cf-aig-skip-cache`` (aigw's gateway logs
# ``CacheSkipped``, which ingest keeps in ``extra``).
_ON_REQUEST: Final = {
    "cache_skipped": "coalesce(json_extract_string(extra, '$.CacheSkipped') = 'true', FALSE)",
}
REQUEST_HASH_SQL: Final = (
    "coalesce(cache_key_hash, json_extract_string(extra, '$.CacheKeyHash'), "
    "CASE WHEN json_extract_string(request_body, '$.type') = 'encrypted' THEN NULL "
    "ELSE md5(request_body::VARCHAR) END)"
)
_REQUEST_HASH: Final = f"{REQUEST_HASH_SQL} AS request_hash"


def time_range(
    column: str, since: datetime | None, until: datetime | None
) -> tuple[list[str], dict[str, object]]:
    """SQL conditions ``since <= column < until`` (each only when given) and their parameters."""
    where: list[str] = ["TRUE"]
    params: dict[str, object] = {}
    if since is not None:
        where.append(f"{column} >= $since")
        params["since"] = since
    if until is not None:
        where.append(f"{column} < $until")
        params["until"] = until
    return where, params


def window_where(
    since: datetime, until: datetime, filters: Mapping[str, str] | None = None
) -> tuple[str, dict[str, object]]:
    """An SQL condition ``since <= ts < until`` with each of ``filters``' column (trusted
    names) equal to its value, and its named parameters (the kept tables' reads)."""
    where, params = time_range("ts", since, until)
    for position, (name, value) in enumerate((filters or {}).items()):
        where.append(f"{name} = $value{position}")
        params[f"value{position}"] = value
    return " AND ".join(where), params


def clear_hours(
    con: duckdb.DuckDBPyConnection, table: str, hours: Sequence[datetime] | None
) -> tuple[str, list[object]] | None:
    """Delete ``table``'s rows (a trusted name, with ``ts``) of the UTC ``hours``, or all
    of them for None, before a refresh writes them again; the condition and parameters
    that select those hours' requests (``TRUE`` for all), or None when ``hours`` is empty
    (nothing deleted, nothing to write). The caller holds the transaction."""
    if hours is None:
        con.execute(f"DELETE FROM {table}")
        return "TRUE", []
    if not hours:
        return None
    where, params = in_hours(hours)
    con.execute(f"DELETE FROM {table} WHERE {where}", params)
    return where, params


def in_hours(hours: Sequence[datetime]) -> tuple[str, list[object]]:
    """An SQL condition on ``ts``: in one of the UTC ``hours`` (not empty), and its
    positional parameters. The range lets DuckDB skip row groups by their min/max ``ts``;
    hours as integers, because ``date_trunc`` on TIMESTAMPTZ goes through the time zone
    library for every row."""
    condition = (
        "ts >= ? AND ts < ? AND epoch_us(ts) // 3600000000 IN "
        "(SELECT epoch_us(unnest(?::TIMESTAMPTZ[])) // 3600000000)"
    )
    return condition, [min(hours), max(hours) + timedelta(hours=1), list(hours)]


def _json_path(key: str) -> str:
    """A JSONPath for one top-level key, quoted so that any key name works."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Report dimensions that are ``requests`` columns or computed from them (name -> SQL).
_BUILTIN_SQL: Final = {
    "gateway": "gateway",
    "provider": "provider",
    "model": "model",
    "endpoint": "endpoint",
    **DERIVED_DIMENSIONS,
}


def dimension_sql(settings: Dimensions, name: str, params: dict[str, object]) -> str:
    """The SQL expression of a report dimension over ``requests``; a metadata key goes
    into ``params`` (names are validated identifiers, keys are parameters)."""
    if name in _BUILTIN_SQL:
        return _BUILTIN_SQL[name]
    if name in settings.dimensions:
        params[f"path_{name}"] = _json_path(settings.dimensions[name])
        return f"json_extract_string(metadata, $path_{name})"
    raise ConfigError(
        f"unknown dimension {name!r}; use one of {', '.join(settings.all_dimensions)}"
    )


def read_requests(
    con: duckdb.DuckDBPyConnection,
    settings: Dimensions,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    hours: list[datetime] | None = None,
    scopes: Sequence[tuple[datetime, str | None]] | None = None,
    scope_by: str | None = None,
    models: Sequence[str] | None = None,
    with_request_hash: bool = False,
    repeated_at_least: int | None = None,
    repeated_in: Literal["hour", "range"] = "hour",
    stored_costs: bool = False,
    prompt_prefix_only: bool = False,
    columns: Sequence[str] | None = None,
) -> pl.LazyFrame:
    """Requests with ``since <= ts < until`` (and, if given, in the listed hours and of
    the listed ``models``; with ``prompt_prefix_only``, that carry a prompt-prefix hash).

    ``scopes`` (instead of ``hours``) are (UTC hour, value) pairs of the dimension
    ``scope_by`` (a metadata dimension of ``settings``, a derived one or a request column):
    only the requests of a pair's hour whose ``scope_by`` value, as text, is the pair's
    come back, a None value matching a null one (and no text). The dimension is computed
    for the pairs' hours' requests only, the other columns for the matching ones. Without
    ``scope_by``, the values are ignored: the pairs' hours come back whole.

    ``with_request_hash`` adds ``request_hash``: the gateway's cache key hash
    (the ``cache_key_hash`` column, or ``extra.CacheKeyHash`` in rows loaded before schema
    v3; written by aigw's gateway), else an MD5 of a plain
    (not encrypted) request body, else null. Equal hashes mean identical requests.
    ``repeated_at_least`` (with ``with_request_hash``) keeps only requests whose hash
    occurs that many times or more in their UTC hour (``repeated_in="hour"``) or in the
    whole range (``"range"``): what repeated-prompt detection and cache candidates need,
    selected in DuckDB so the other requests are never transferred. ``stored_costs`` adds
    each request's effective cost as the last rollup refresh stored it in
    ``request_costs`` (``cost_usd``, ``saved_usd``, and ``cost_source`` unless ``columns``
    leaves it out; null for a request loaded since): one join, where pricing millions of
    requests again would take longer than reading them.
    ``columns`` keeps only the named request columns and dimensions (``ts`` always; the
    flags' columns above come as asked): reading millions of rows, every column left out
    (a derived dimension's pattern matches, a metadata key's JSON path) is time saved.
    Named there, ``cache_skipped`` is true for a request sent with ``cf-aig-skip-cache``.
    """
    wanted = None if columns is None else {"ts", *columns}

    def kept(name: str) -> bool:
        return wanted is None or name in wanted

    dims, params = metadata_items(settings, wanted)
    where, bounds = time_range("ts", since, until)
    params.update(bounds)
    if scopes is not None:
        if hours is not None:
            raise ValueError("read_requests takes hours or scopes, not both")
        hours = sorted({hour for hour, _ in scopes})
    if hours is not None:
        # hours as integers: date_trunc on TIMESTAMPTZ goes through the time zone library
        # for every row (7 s for 10 M rows; the integer division takes 0.1 s)
        where.append(
            "epoch_us(ts) // 3600000000 IN "
            "(SELECT epoch_us(unnest($hours::TIMESTAMPTZ[])) // 3600000000)"
        )
        where.append("ts >= $first_hour AND ts < $last_hour + INTERVAL 1 HOUR")
        params["hours"] = hours
        params["first_hour"] = min(hours) if hours else datetime.now()
        params["last_hour"] = max(hours) if hours else datetime.now()
    in_time = " AND ".join(where)  # request_costs has ts too: the same rows' costs
    if models is not None:
        where.append("model IN (SELECT unnest($models::VARCHAR[]))")
        params["models"] = list(models)
    if prompt_prefix_only:
        where.append("prompt_prefix_hash IS NOT NULL")
    selected = [
        *column_items(wanted, with_log_id=stored_costs),
        *dims,
        *((_REQUEST_HASH,) if with_request_hash else ()),
    ]
    source, kept_where = "requests", where
    if scopes is not None and scope_by is not None:
        source = _scoped(settings, scope_by, " AND ".join(where), params)
        params["scope_hours"] = [hour for hour, _ in scopes]
        params["scope_values"] = [value for _, value in scopes]
        kept_where = ["TRUE"]  # inside the scoped source, before its join
    sql = f"SELECT {', '.join(selected)} FROM {source} WHERE {' AND '.join(kept_where)}"
    if with_request_hash and repeated_at_least is not None:
        # The repeated hashes first, from a scan of the hash alone; then the rows whose
        # hash is one of them (a window over every row's projection took 3x as long).
        hour = ", epoch_us(ts) // 3600000000" if repeated_in == "hour" else ""
        sql += (
            f" AND ({REQUEST_HASH_SQL}{hour}) IN (SELECT (request_hash{hour}) FROM "
            f"(SELECT {_REQUEST_HASH}, ts FROM requests WHERE {' AND '.join(where)}) "
            "WHERE request_hash IS NOT NULL GROUP BY ALL HAVING count(*) >= $repeated_at_least)"
        )
        params["repeated_at_least"] = repeated_at_least
    if stored_costs:
        source = ", c.cost_source" if kept("cost_source") else ""
        sql = (
            f"SELECT q.*, c.effective_cost_usd AS cost_usd, c.saved_usd{source} "
            f"FROM ({sql}) AS q LEFT JOIN (SELECT log_id, ts, effective_cost_usd, saved_usd, "
            f"cost_source FROM request_costs WHERE {in_time}) AS c "
            "USING (ts, log_id)"  # ts first: 1.8x faster than log_id alone
        )
    table = con.execute(sql, params).to_arrow_table()
    frame = pl.DataFrame(pl.from_arrow(table))
    return frame.lazy().with_columns(pl.col("ts").dt.convert_time_zone("UTC"))


def column_items(wanted: set[str] | None, *, with_log_id: bool = False) -> list[str]:
    """SELECT items of ``requests`` for the request columns, derived dimensions and
    on-request columns in ``wanted`` (every request column and derived dimension for
    None); ``log_id`` too with ``with_log_id``."""

    def kept(name: str) -> bool:
        return wanted is None or name in wanted

    return [
        *(name for name in REQUEST_COLUMNS if kept(name) or (name == "log_id" and with_log_id)),
        *(f"{sql} AS {name}" for name, sql in DERIVED_DIMENSIONS.items() if kept(name)),
        *(f"{sql} AS {name}" for name, sql in _ON_REQUEST.items() if wanted and name in wanted),
    ]


def metadata_items(
    settings: Dimensions, wanted: set[str] | None
) -> tuple[list[str], dict[str, object]]:
    """SELECT items of ``requests`` for the metadata dimensions of ``settings`` in
    ``wanted`` (all for None), and their parameters. Every key comes from one parse of
    ``metadata`` (a list of paths; DuckDB computes the list once for all of them): a key
    at a time parsed it once per key (measured: four keys of 300,000 requests, 0.3 s
    against 0.6 s)."""
    metadata = {
        name: key for name, key in settings.dimensions.items() if wanted is None or name in wanted
    }
    paths = ", ".join(f"${name}_path" for name in metadata)
    dims = [
        f"json_extract_string(metadata, [{paths}])[{position}] AS {name}"
        for position, name in enumerate(metadata, start=1)
    ]
    params: dict[str, object] = {f"{name}_path": _json_path(key) for name, key in metadata.items()}
    return dims, params


def _scoped(settings: Dimensions, scope_by: str, where: str, params: dict[str, object]) -> str:
    """``requests`` (the rows matching ``where``) restricted to the (hour, value) pairs of
    ``$scope_hours`` and ``$scope_values``, as a FROM clause; adds the dimension's JSON path
    to ``params`` for a metadata dimension. The time conditions stay on the scan (zone maps
    prune row groups) and the hour filter runs before the dimension is computed: a join on
    the pairs alone would compute it for every row of the range."""
    value = dimension_sql(settings, scope_by, params)
    return (
        f"(SELECT *, {value} AS _scope_value, epoch_us(ts) // 3600000000 AS _scope_hour "
        f"FROM requests WHERE {where}) AS requests SEMI JOIN "
        "(SELECT epoch_us(unnest($scope_hours::TIMESTAMPTZ[])) // 3600000000 AS hour, "
        "unnest($scope_values::VARCHAR[]) AS value) AS scopes "
        "ON scopes.hour = requests._scope_hour "
        "AND scopes.value IS NOT DISTINCT FROM requests._scope_value"
    )


def request_hashes(
    con: duckdb.DuckDBPyConnection,
    log_ids: Sequence[str],
    *,
    since: datetime,
    until: datetime,
) -> pl.DataFrame:
    """``log_id`` and ``request_hash`` (as ``read_requests``' ``with_request_hash``) of the
    requests named by ``log_ids`` with ``since <= ts < until``."""
    table = con.execute(
        f"SELECT log_id, {_REQUEST_HASH} FROM requests WHERE ts >= $since AND ts < $until "
        "AND log_id IN (SELECT unnest($ids::VARCHAR[]))",
        {"since": since, "until": until, "ids": list(log_ids)},
    ).to_arrow_table()
    return pl.DataFrame(pl.from_arrow(table))


def cache_miss_costs(
    con: duckdb.DuckDBPyConnection,
    *,
    since: datetime,
    until: datetime,
    models: Sequence[str],
    hashes: Sequence[str] | None = None,
) -> pl.DataFrame:
    """The logged cost of each answer a provider gave (not a response-cache hit, not rate
    limited, status below 400, a logged cost) with ``since <= ts < until`` for one of
    ``models``: ``request_hash``, ``provider``, ``model``, ``ts`` (UTC), ``cost`` (USD).

    Without ``hashes``, ``request_hash`` is null (not computed: no body is read); with
    them, only the answers whose ``request_hash`` is one of ``hashes`` come back."""
    params: dict[str, object] = {"since": since, "until": until, "models": list(models)}
    answers = (
        "FROM requests WHERE ts >= $since AND ts < $until "
        "AND model IN (SELECT unnest($models::VARCHAR[])) "
        "AND NOT coalesce(cached, FALSE) AND NOT coalesce(rate_limited, FALSE) "
        "AND coalesce(status_code, 200) < 400 AND cost IS NOT NULL"
    )
    if hashes is None:
        sql = f"SELECT NULL::VARCHAR AS request_hash, provider, model, ts, cost {answers}"
    else:
        sql = (
            f"SELECT * FROM (SELECT {_REQUEST_HASH}, provider, model, ts, cost {answers}) "
            "WHERE request_hash IN (SELECT unnest($hashes::VARCHAR[]))"
        )
        params["hashes"] = list(hashes)
    frame = pl.DataFrame(pl.from_arrow(con.execute(sql, params).to_arrow_table()))
    return frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))


def newest_ingest(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """When the newest row was loaded (``max(ingested_at)``); None for an empty table.
    An Iceberg snapshot's connection knows it from its files' statistics
    (``NEWEST_INGEST_VARIABLE``, set by ``core.warehouse.lake``) and scans nothing: the
    scan took 30 ms on 3 M rows, twice in every report."""
    known = con.execute(f"SELECT getvariable('{NEWEST_INGEST_VARIABLE}')").fetchone()
    if known is not None and isinstance(known[0], datetime):
        return known[0]
    row = con.execute("SELECT max(ingested_at) FROM requests").fetchone()
    return row[0] if row else None


def touched_hours(con: duckdb.DuckDBPyConnection, *, since: datetime) -> list[datetime]:
    """The UTC hours holding requests loaded after ``since``, in order (late records put
    old hours here too). ``ingested_at`` grows with insertion order, so zone maps keep
    this scan to the newest row groups."""
    rows = con.execute(
        "SELECT DISTINCT date_trunc('hour', ts) FROM requests WHERE ingested_at > ? ORDER BY 1",
        [since],
    ).fetchall()
    return [row[0] for row in rows]


def request_days(con: duckdb.DuckDBPyConnection) -> list[datetime]:
    """The UTC days holding requests, in order. Days as integers (floor division of the
    epoch): ``date_trunc`` on TIMESTAMPTZ goes through the time zone library for every
    row (measured: 50 ms of a 300,000-row first rollup build, 7 ms this way)."""
    day = "epoch_us(ts) // 86400000000 - (epoch_us(ts) % 86400000000 < 0)::BIGINT"
    rows = con.execute(
        f"SELECT to_timestamp(day * 86400) FROM (SELECT DISTINCT {day} AS day FROM requests) "
        "ORDER BY 1"
    )
    return [row[0] for row in rows.fetchall()]
