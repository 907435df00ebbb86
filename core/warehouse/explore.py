"""Named queries the dashboard needs on raw requests: the request explorer, one request's
detail, p95 latency, policy events (guardrail, DLP, rate limits, failover), data health
(the ingest manifest, rejects, quality runs) and the alert history.

Each function takes an open warehouse connection (the caller owns and closes it; one
thread) and returns a Polars frame. Filters are ``dimension = value`` pairs over the
report dimensions (``Dimensions.all_dimensions``, e.g. ``models.ModelsSettings``): built-in columns,
``api_key``, or named metadata keys. Bounds are ``since <= ts < until`` (UTC).
Nothing here returns request or response bodies: policy events carry categories and
actions only, never the matched text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import duckdb
import orjson
import polars as pl

from core.errors import ConfigError
from core.schema import ROLLUP_TABLE
from core.warehouse.connection import Warehouse
from core.warehouse.migrations import table_exists
from core.warehouse.reads import DERIVED_DIMENSIONS, Dimensions, dimension_sql, time_range

__all__ = [
    "EXPLORER_STATUSES",
    "PERIOD_GRAINS",
    "POLICY_KINDS",
    "DataHealth",
    "RequestRow",
    "alert_history",
    "data_health",
    "find_requests",
    "latency_p95",
    "policy_categories",
    "policy_counts",
    "recent_policy_events",
    "request_row",
    "rollup_span",
    "unit_cost_rows",
]

POLICY_KINDS: Final = ("guardrail", "dlp", "rate_limit", "failover")
# SQL condition per policy kind: a request can belong to several (a DLP redaction that
# was then failed over counts once for each).
_POLICY_SQL: Final = {
    "guardrail": "guardrail_action IS NOT NULL",
    "dlp": "dlp_action IS NOT NULL",
    "rate_limit": "(coalesce(rate_limited, FALSE) OR status_code = 429)",
    "failover": "coalesce(step, 0) > 0",
}
EXPLORER_STATUSES: Final = {
    "all": "TRUE",
    "errors": "status_code >= 400",
    "cached": "coalesce(cached, FALSE)",
    "rate limited": _POLICY_SQL["rate_limit"],
    "policy": f"({_POLICY_SQL['guardrail']} OR {_POLICY_SQL['dlp']})",
    "failover": _POLICY_SQL["failover"],
}
_API_KEY: Final = DERIVED_DIMENSIONS["api_key"]
# Periods of raw-request queries are fixed-length UTC buckets computed on epoch
# microseconds: date_trunc on TIMESTAMPTZ goes through the ICU calendar and was 4x
# slower on 10 M rows (2.1 s against 0.5 s for p95 per day).
_BUCKET_US: Final = {"hour": 3_600_000_000, "day": 86_400_000_000}
PERIOD_GRAINS: Final = tuple(_BUCKET_US)


def _period(grain: str) -> str:
    if grain not in _BUCKET_US:
        raise ConfigError(f"unknown grain {grain!r}; use one of {', '.join(PERIOD_GRAINS)}")
    size = _BUCKET_US[grain]
    return f"make_timestamptz(epoch_us(ts) // {size} * {size})"


def _where(
    settings: Dimensions,
    since: datetime | None,
    until: datetime | None,
    filters: Mapping[str, str] | None,
) -> tuple[str, dict[str, object]]:
    """SQL conditions for a time range and dimension filters, and their parameters."""
    where, params = time_range("ts", since, until)
    for index, (name, value) in enumerate(sorted((filters or {}).items())):
        where.append(f"{dimension_sql(settings, name, params)} = $f{index}")
        params[f"f{index}"] = value
    return " AND ".join(where), params


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, object]) -> pl.DataFrame:
    frame = pl.DataFrame(pl.from_arrow(con.execute(sql, params).to_arrow_table()))
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            frame = frame.with_columns(pl.col(name).dt.convert_time_zone("UTC"))
    return frame


def latency_p95(
    con: duckdb.DuckDBPyConnection,
    settings: Dimensions,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Mapping[str, str] | None = None,
    grain: str | None = "day",
) -> pl.DataFrame:
    """The 95th percentile of ``duration_ms`` (milliseconds, interpolated as DuckDB's
    ``quantile_cont``, to the microsecond), over the whole
    range and, with ``grain`` (``hour`` or ``day``), per period, in one scan.

    Columns ``period`` (UTC start; null on the row of the whole range, which comes
    first), ``p95_ms``, ``requests`` (requests with a duration). Response-cache hits
    count: they are what users waited.
    """
    where, params = _where(settings, since, until, filters)
    # On whole microseconds: DuckDB orders BIGINT a third faster than DOUBLE (10 M rows:
    # 250 ms, not 350), and logged durations have at most 3 decimals (milliseconds from
    # Cloudflare, microseconds from aigw's gateway), so nothing is lost.
    measures = (
        "round(quantile_cont(TRY_CAST(round(duration_ms * 1000) AS BIGINT), 0.95) / 1000, 3) "
        "AS p95_ms, "
        "count(duration_ms) AS requests"
    )
    if grain is None:
        sql = f"SELECT NULL::TIMESTAMPTZ AS period, {measures} FROM requests WHERE {where}"
    else:
        sql = (
            f"SELECT {_period(grain)} AS period, {measures} FROM requests WHERE {where} "
            "GROUP BY GROUPING SETS ((period), ()) ORDER BY period NULLS FIRST"
        )
    return _frame(con, sql, params)


def policy_counts(
    con: duckdb.DuckDBPyConnection,
    settings: Dimensions,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Mapping[str, str] | None = None,
    grain: str = "day",
) -> pl.DataFrame:
    """Requests per ``period`` and policy ``kind`` (one of ``POLICY_KINDS``), as ``events``.

    Periods without any event are absent; a request counts once for each kind it has.
    """
    period = _period(grain)
    where, params = _where(settings, since, until, filters)
    sums = ", ".join(f"count(*) FILTER ({sql}) AS {kind}" for kind, sql in _POLICY_SQL.items())
    wide = _frame(
        con,
        f"SELECT {period} AS period, {sums} FROM requests "
        f"WHERE {where} AND ({' OR '.join(_POLICY_SQL.values())}) GROUP BY ALL ORDER BY period",
        params,
    )
    if wide.is_empty():
        return pl.DataFrame(
            schema={"period": pl.Datetime("us", "UTC"), "kind": pl.String, "events": pl.Int64}
        )
    return (
        wide.unpivot(
            index="period", on=list(POLICY_KINDS), variable_name="kind", value_name="events"
        )
        .with_columns(pl.col("events").cast(pl.Int64))
        .filter(pl.col("events") > 0)
        .sort("period", "kind")
    )


def policy_categories(
    con: duckdb.DuckDBPyConnection,
    settings: Dimensions,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Guardrail and DLP findings by ``kind``, ``action`` and ``category``, as ``requests``.

    A request with two categories counts once for each. Categories are names such as
    ``EMAIL`` or ``jailbreak``, never what matched.
    """
    where, params = _where(settings, since, until, filters)
    parts = [
        f"SELECT '{kind}' AS kind, {kind}_action AS action, "
        f"unnest(coalesce({kind}_categories, ['(none)'])) AS category "
        f"FROM requests WHERE {where} AND {kind}_action IS NOT NULL"
        for kind in ("guardrail", "dlp")
    ]
    return _frame(
        con,
        f"SELECT kind, action, category, count(*) AS requests FROM ({' UNION ALL '.join(parts)}) "
        "GROUP BY ALL ORDER BY requests DESC, kind, action, category",
        params,
    )


_EVENT_COLUMNS: Final = (
    "ts, log_id, gateway, route, provider, model, status_code, "
    f"{_API_KEY} AS api_key, guardrail_action, guardrail_categories, dlp_action, "
    "dlp_categories, coalesce(rate_limited, FALSE) AS rate_limited, step"
)


def recent_policy_events(
    con: duckdb.DuckDBPyConnection,
    settings: Dimensions,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Mapping[str, str] | None = None,
    limit: int = 50,
) -> pl.DataFrame:
    """The newest ``limit`` requests with any policy event, newest first (no bodies)."""
    where, params = _where(settings, since, until, filters)
    params["limit"] = limit
    return _frame(
        con,
        f"SELECT {_EVENT_COLUMNS} FROM requests WHERE {where} "
        f"AND ({' OR '.join(_POLICY_SQL.values())}) ORDER BY ts DESC, log_id LIMIT $limit",
        params,
    )


def find_requests(
    con: duckdb.DuckDBPyConnection,
    settings: Dimensions,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Mapping[str, str] | None = None,
    status: str = "all",
    log_id: str | None = None,
    limit: int = 200,
) -> pl.DataFrame:
    """The newest ``limit`` requests matching the filters, newest first.

    ``status`` is one of ``EXPLORER_STATUSES``; ``log_id`` keeps ids starting with it.
    Columns: ``ts``, ``log_id``, ``gateway``, ``provider``, ``model``, ``status_code``,
    ``cached``, ``tokens_in``, ``tokens_out``, ``cost`` (as logged, USD),
    ``duration_ms``, ``step``, then the named metadata dimensions.
    """
    if status not in EXPLORER_STATUSES:
        raise ConfigError(f"unknown status {status!r}; use one of {', '.join(EXPLORER_STATUSES)}")
    where, params = _where(settings, since, until, filters)
    where += f" AND {EXPLORER_STATUSES[status]}"
    if log_id:
        where += " AND starts_with(log_id, $log_id)"
        params["log_id"] = log_id
    params["limit"] = limit
    dims = "".join(
        f", {dimension_sql(settings, name, params)} AS {name}" for name in settings.dimensions
    )
    return _frame(
        con,
        "SELECT ts, log_id, gateway, provider, model, status_code, cached, tokens_in, "
        f"tokens_out, cost, duration_ms, step{dims} FROM requests WHERE {where} "
        "ORDER BY ts DESC, log_id LIMIT $limit",
        params,
    )


def unit_cost_rows(
    con: duckdb.DuckDBPyConnection,
    settings: Dimensions,
    *,
    unit_key: str,
    by: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Each matching request's ``ts``, ``unit`` (its metadata key ``unit_key``'s value),
    ``by``'s value and ``cost_usd``: its effective cost in ``request_costs`` (what the
    rollups sum; null for a request no refresh has costed yet)."""
    where, params = _where(settings, since, until, filters)
    key = unit_key.replace("\\", "\\\\").replace('"', '\\"')
    params["unit_path"] = f'$."{key}"'
    dimension = f", {dimension_sql(settings, by, params)} AS {by}" if by else ""
    costs_where, _ = time_range("ts", since, until)
    frame = _frame(
        con,
        f"SELECT r.ts, r.aigw_unit{', r.' + by if by else ''}, c.effective_cost_usd AS cost_usd "
        "FROM (SELECT log_id, ts, json_extract_string(metadata, $unit_path) AS aigw_unit"
        f"{dimension} FROM requests WHERE {where}) AS r "
        "LEFT JOIN (SELECT log_id, ts, effective_cost_usd FROM request_costs "
        f"WHERE {' AND '.join(costs_where)}) AS c USING (ts, log_id)",
        params,
    )
    return frame.rename({"aigw_unit": "unit"})


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One request as stored: its columns (no bodies), its custom metadata (an encrypted
    object stays as it is) and every request sharing its ``event_id`` (the failover
    steps), by ``step``."""

    fields: dict[str, Any]
    metadata: Any
    attempts: pl.DataFrame


_DETAIL_COLUMNS: Final = (
    "log_id, ts, gateway, provider, model, requested_model, endpoint, route, status_code, "
    "success, cached, rate_limited, duration_ms, tokens_in, tokens_out, cache_read_tokens, "
    "cache_write_tokens, cache_write_1h_tokens, cost, step, event_id, routing_decision_id, "
    "routing_reason, "
    f"{_API_KEY} AS api_key, guardrail_action, guardrail_categories, dlp_action, "
    "dlp_categories, cache_key_hash, decrypt_error, log_format, source_file, source_line, "
    "ingested_at, metadata"
)


def request_row(warehouse: Warehouse, log_id: str) -> RequestRow | None:
    """The request with ``log_id`` (None when there is none)."""
    con = warehouse.con
    rows = _frame(
        con,
        f"SELECT {_DETAIL_COLUMNS} FROM requests WHERE log_id = $log_id LIMIT 1",
        {"log_id": log_id},
    )
    if rows.is_empty():
        return None
    fields = rows.row(0, named=True)
    raw_metadata = fields.pop("metadata")
    metadata = orjson.loads(raw_metadata) if raw_metadata else None
    attempts = pl.DataFrame()
    if fields.get("event_id"):
        attempts = _frame(
            con,
            "SELECT step, ts, log_id, provider, model, status_code, duration_ms, "
            "routing_reason FROM requests WHERE event_id = $event_id ORDER BY step, ts",
            {"event_id": fields["event_id"]},
        )
    return RequestRow(fields=fields, metadata=metadata, attempts=attempts)


@dataclass(frozen=True, slots=True)
class DataHealth:
    """What ingest did and kept aside, and the data-quality results.

    ``objects``: counts, records and rows per ``status`` of ``ingest_files``;
    ``recent``: the newest objects; ``failed``: objects whose last load failed, with
    their error; ``rejects``: the newest rejected records (``reason`` only: a raw line
    may hold secrets); ``quality``: the newest ``quality_runs`` (empty when the quality
    gate never ran); ``newest_ts`` / ``newest_ingested_at``: the freshest request and load;
    ``rollup_watermark``: the newest load the rollups include (behind: reports lag).
    """

    objects: pl.DataFrame
    recent: pl.DataFrame
    failed: pl.DataFrame
    rejects: pl.DataFrame
    rejects_total: int
    quality: pl.DataFrame
    newest_ts: datetime | None
    newest_ingested_at: datetime | None
    rollup_watermark: datetime | None


def data_health(con: duckdb.DuckDBPyConnection, *, limit: int = 50) -> DataHealth:
    """The ingest manifest, rejects and quality runs (newest ``limit`` of each list)."""
    params: dict[str, object] = {"limit": limit}
    objects = _frame(
        con,
        "SELECT status, count(*) AS objects, sum(records)::BIGINT AS records, "
        "sum(rows_loaded)::BIGINT AS rows_loaded, sum(rows_duplicate)::BIGINT AS duplicates, "
        "sum(rows_rejected)::BIGINT AS rejected FROM ingest_files GROUP BY ALL ORDER BY status",
        {},
    )
    recent = _frame(
        con,
        "SELECT finished_at, status, object_key, records, rows_loaded, rows_duplicate, "
        "rows_rejected, attempts FROM ingest_files ORDER BY finished_at DESC, object_key "
        "LIMIT $limit",
        params,
    )
    failed = _frame(
        con,
        "SELECT finished_at, object_key, attempts, error FROM ingest_files "
        "WHERE status = 'failed' ORDER BY finished_at DESC, object_key LIMIT $limit",
        params,
    )
    rejects = _frame(
        con,
        "SELECT rejected_at, source_file, line_number, reason FROM rejects "
        "ORDER BY rejected_at DESC, source_file, line_number LIMIT $limit",
        params,
    )
    total = con.execute("SELECT count(*) FROM rejects").fetchone()
    quality = pl.DataFrame()
    if table_exists(con, "quality_runs"):
        quality = _frame(
            con,
            "SELECT finished_at, source, rows_checked, success, critical_failures, warnings, "
            "on_failure, len(object_keys) AS objects, results::VARCHAR AS results "
            "FROM quality_runs ORDER BY finished_at DESC, run_id LIMIT $limit",
            params,
        )
    newest = con.execute("SELECT max(ts), max(ingested_at) FROM requests").fetchone()
    watermark = None
    if table_exists(con, "rollup_state"):
        state = con.execute(
            "SELECT watermark FROM rollup_state WHERE name = $name", {"name": ROLLUP_TABLE}
        ).fetchone()
        watermark = state[0] if state else None
    return DataHealth(
        objects=objects,
        recent=recent,
        failed=failed,
        rejects=rejects,
        rejects_total=int(total[0]) if total else 0,
        quality=quality,
        newest_ts=newest[0] if newest else None,
        newest_ingested_at=newest[1] if newest else None,
        rollup_watermark=watermark,
    )


def unattributed_requests(
    con: duckdb.DuckDBPyConnection, *, since: datetime | None, until: datetime | None
) -> int:
    """Requests in ``[since, until)`` whose Metadata is still encrypted though nothing failed
    to open (no key was given at ingest): their team, user and agent are unknown."""
    where, params = time_range("ts", since, until)
    row = con.execute(
        "SELECT count(*) FROM requests WHERE decrypt_error IS NULL "
        'AND starts_with(metadata::VARCHAR, \'{"type":"encrypted"\') AND ' + " AND ".join(where),
        params,
    ).fetchone()
    return int(row[0]) if row else 0


def alert_history(con: duckdb.DuckDBPyConnection, *, limit: int = 200) -> pl.DataFrame:
    """Recorded alerts, newest first, one row per alert and channel with its delivery state.

    Columns: ``created_at``, ``kind``, ``rule``, ``scope``, ``period_start``,
    ``threshold``, ``spent_usd``, ``budget_usd``, ``forecast_usd``, ``channel``,
    ``status`` (``pending``, ``delivered``, ``failed``), ``attempts``, ``last_error``,
    ``delivered_at``, ``alert_id``. Empty when ``aigw alerts run`` never recorded any.
    """
    if not table_exists(con, "alerts") or not table_exists(con, "alert_deliveries"):
        return pl.DataFrame()
    return _frame(
        con,
        "SELECT a.created_at, a.kind, a.rule, a.scope, a.period_start, a.threshold, "
        "a.spent_usd, a.budget_usd, a.forecast_usd, d.channel, d.status, d.attempts, "
        "d.last_error, d.delivered_at, a.alert_id FROM alerts a "
        "LEFT JOIN alert_deliveries d USING (alert_id) "
        "ORDER BY a.created_at DESC, a.rule, a.scope, a.threshold NULLS LAST, d.channel "
        "LIMIT $limit",
        {"limit": limit},
    )


def rollup_span(con: duckdb.DuckDBPyConnection) -> tuple[datetime, datetime] | None:
    """The first rolled-up hour and the end of the newest one (UTC); None when empty."""
    if not table_exists(con, ROLLUP_TABLE):
        return None
    row = con.execute(f"SELECT min(hour), max(hour) FROM {ROLLUP_TABLE}").fetchone()
    if row is None or row[0] is None:
        return None
    return row[0].astimezone(UTC), row[1].astimezone(UTC) + timedelta(hours=1)
