"""The warehouse's numbered migrations: every table, derived ones' state included.

Schema changes are append-only: ``MIGRATIONS[n]`` moves a warehouse from version n-1 to
n, applied in order inside one transaction each, and the version reached is recorded in
``schema_migrations``. The ``requests`` columns come from ``core.schema`` (each column
names the migration that created it).
"""

from __future__ import annotations

from typing import Final

import duckdb

from core.schema import PROMPT_PREFIX_VERSION, requests_ddl
from core.warehouse.cacheable import CACHEABLE_DDL
from core.warehouse.prompt_prefixed import PREFIXED_DDL
from core.warehouse.replay_inputs import REPEATS_DDL, REPLAY_DDL

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate", "schema_version", "table_exists"]

_V1: Final = (
    """
CREATE TABLE schema_migrations (
    version     INTEGER PRIMARY KEY,
    applied_at  TIMESTAMPTZ NOT NULL
);
"""
    + requests_ddl(1)
    + """
CREATE TABLE ingest_files (
    object_key      VARCHAR PRIMARY KEY,
    source          VARCHAR NOT NULL,
    size            BIGINT,
    etag            VARCHAR,
    mtime           TIMESTAMPTZ,
    status          VARCHAR NOT NULL,
    records         BIGINT NOT NULL,
    rows_loaded     BIGINT NOT NULL,
    rows_duplicate  BIGINT NOT NULL,
    rows_rejected   BIGINT NOT NULL,
    error           VARCHAR,
    attempts        INTEGER NOT NULL,
    first_seen_at   TIMESTAMPTZ NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ NOT NULL
);
CREATE TABLE rejects (
    source_file     VARCHAR NOT NULL,
    line_number     INTEGER NOT NULL,
    raw_line        VARCHAR NOT NULL,
    raw_truncated   BOOLEAN NOT NULL,
    reason          VARCHAR NOT NULL,
    rejected_at     TIMESTAMPTZ NOT NULL
);
"""
)

# v2: why an encrypted field did not open (null when it did, or was not encrypted).
_V2: Final = requests_ddl(2)

# v3: what aigw's own gateway adds to each record (Logpush extension fields).
_V3: Final = requests_ddl(3)

# v4: one row per data-quality check of an ingest batch's new rows.
_V4: Final = """
CREATE TABLE quality_runs (
    run_id              VARCHAR PRIMARY KEY,
    started_at          TIMESTAMPTZ NOT NULL,
    finished_at         TIMESTAMPTZ NOT NULL,
    source              VARCHAR NOT NULL,
    object_keys         VARCHAR[] NOT NULL,
    rows_checked        BIGINT NOT NULL,
    on_failure          VARCHAR NOT NULL,
    success             BOOLEAN NOT NULL,
    critical_failures   INTEGER NOT NULL,
    warnings            INTEGER NOT NULL,
    results             JSON NOT NULL
);
"""

# v5: the state tables of the rollups and the alerts (created on first use before v5,
# hence IF NOT EXISTS). The rollup tables themselves are derived: their columns follow
# the configured metadata dimensions, so each refresh creates them (see models.rollups).
_V5: Final = """
CREATE TABLE IF NOT EXISTS rollup_state (
    name          VARCHAR PRIMARY KEY,
    fingerprint   VARCHAR NOT NULL,
    watermark     TIMESTAMPTZ,
    refreshed_at  TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id      VARCHAR PRIMARY KEY,
    kind          VARCHAR NOT NULL,
    rule          VARCHAR NOT NULL,
    scope         VARCHAR NOT NULL,
    period_start  TIMESTAMPTZ NOT NULL,
    period_end    TIMESTAMPTZ NOT NULL,
    threshold     DOUBLE,
    spent_usd     DOUBLE NOT NULL,
    budget_usd    DOUBLE,
    forecast_usd  DOUBLE,
    payload       JSON NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_deliveries (
    alert_id      VARCHAR NOT NULL,
    channel       VARCHAR NOT NULL,
    status        VARCHAR NOT NULL,
    attempts      INTEGER NOT NULL,
    last_error    VARCHAR,
    updated_at    TIMESTAMPTZ NOT NULL,
    delivered_at  TIMESTAMPTZ,
    PRIMARY KEY (alert_id, channel)
);
"""

# v6: for analysts. Each request's effective cost (what ``aigw report cost`` sums; written
# by every rollup refresh, so the migration asks for a full one) and views for the common
# questions. Days are UTC days whatever the session's time zone; `team` and `agent` are
# the metadata keys of those names. See docs/schema.md.
_V6: Final = """
CREATE TABLE request_costs (
    log_id              VARCHAR NOT NULL,
    ts                  TIMESTAMPTZ NOT NULL,
    effective_cost_usd  DOUBLE,
    saved_usd           DOUBLE,
    cost_source         VARCHAR NOT NULL
);
DELETE FROM rollup_state;
CREATE VIEW requests_costed AS
SELECT r.*,
       coalesce(r.api_key_id, json_extract_string(r.extra, '$.ApiKeyId')) AS api_key,
       r.cost AS logged_cost_usd,
       c.effective_cost_usd,
       c.saved_usd,
       c.cost_source
FROM requests AS r LEFT JOIN request_costs AS c USING (log_id);
CREATE VIEW spend_by_day_team AS
SELECT timezone('UTC', ts)::DATE AS day,
       json_extract_string(metadata, '$.team') AS team,
       count(*) AS requests,
       sum(effective_cost_usd) AS effective_cost_usd,
       sum(logged_cost_usd) AS logged_cost_usd,
       sum(saved_usd) AS saved_usd
FROM requests_costed GROUP BY ALL;
CREATE VIEW cache_savings AS
SELECT timezone('UTC', ts)::DATE AS day,
       gateway,
       endpoint,
       count(*) AS requests,
       count(*) FILTER (WHERE cached) AS cached_requests,
       sum(saved_usd) AS saved_usd,
       sum(effective_cost_usd) AS effective_cost_usd
FROM requests_costed GROUP BY ALL;
CREATE VIEW top_agents AS
SELECT json_extract_string(metadata, '$.agent') AS agent,
       count(*) AS requests,
       sum(effective_cost_usd) AS effective_cost_usd,
       min(ts) AS first_seen,
       max(ts) AS last_seen
FROM requests_costed
WHERE json_extract_string(metadata, '$.agent') IS NOT NULL
GROUP BY ALL
ORDER BY effective_cost_usd DESC NULLS LAST, agent;
"""

# v7: the REST fields Cloudflare's logs API returns beside the usual ones (custom cost,
# model and request types, content types) and the keys a record repeated. Costs change
# with them (custom costs, provider-prefixed models), so the next refresh is a full one.
_V7: Final = requests_ddl(7) + "DELETE FROM rollup_state;\n"  # noqa: S608 - constants

# v8: provider bills imported by `aigw reconcile invoice` (models.invoices): USD per UTC
# day, provider and model, per file; a file imported again replaces its rows.
_V8: Final = """
CREATE TABLE provider_costs (
    day          DATE NOT NULL,
    provider     VARCHAR NOT NULL,
    model        VARCHAR,
    amount_usd   DOUBLE NOT NULL,
    source_file  VARCHAR NOT NULL,
    imported_at  TIMESTAMPTZ NOT NULL
);
"""

MIGRATIONS: Final[dict[int, str]] = {1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5, 6: _V6, 7: _V7}
# v9: 1-hour prompt-cache writes apart from the 5-minute ones (Anthropic bills them at 2x
# the input rate, 5-minute ones at 1.25x). Old rows read NULL (all 5-minute, as before);
# costs change with the new rate, so the next refresh is a full one.
_V9: Final = requests_ddl(9) + "DELETE FROM rollup_state;\n"  # noqa: S608 - constants

MIGRATIONS[8] = _V8
MIGRATIONS[9] = _V9
# v10 (PROMPT_PREFIX_VERSION): the gateway's prompt-prefix hash and estimated tokens
# (``PromptPrefixHash``, ``PromptPrefixTokens``), for `aigw whatif --prompt-cache`. Rows
# loaded before keep them null (older records carry no such field).
MIGRATIONS[PROMPT_PREFIX_VERSION] = requests_ddl(PROMPT_PREFIX_VERSION)
# v11: the response-cache replay's inputs (``core.warehouse.cacheable``), written by every
# rollup refresh: the next refresh is a full one, which fills the table.
MIGRATIONS[11] = CACHEABLE_DDL + "DELETE FROM rollup_state;\n"  # noqa: S608 - constants
# v12: the prompt-caching replay's inputs (``core.warehouse.prompt_prefixed``), written by
# every rollup refresh: the next refresh is a full one, which fills the table.
MIGRATIONS[12] = PREFIXED_DDL + "DELETE FROM rollup_state;\n"  # noqa: S608 - constants
# v13: the rate-limit replay's inputs (``core.warehouse.replay_inputs``), written by every
# rollup refresh: the next refresh is a full one, which fills the tables.
MIGRATIONS[13] = REPLAY_DDL + "DELETE FROM rollup_state;\n"  # noqa: S608 - constants
# v14: the keys more than one kept replay input holds (``replay_repeats``), written by
# every rollup refresh: the next refresh is a full one, which fills it.
MIGRATIONS[14] = REPEATS_DDL + "DELETE FROM rollup_state;\n"  # noqa: S608 - constants
SCHEMA_VERSION: Final = max(MIGRATIONS)


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the warehouse has a table called ``name``."""
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The version recorded in ``schema_migrations`` (0 for a new file)."""
    if not table_exists(con, "schema_migrations"):
        return 0
    row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(con: duckdb.DuckDBPyConnection, current: int) -> None:
    """Apply the migrations after ``current``, each in its own transaction."""
    for version in range(current + 1, SCHEMA_VERSION + 1):
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(MIGRATIONS[version])
            con.execute("INSERT INTO schema_migrations VALUES (?, now())", [version])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Give an empty (in-memory) database the whole schema in one transaction: what
    ``migrate(con, 0)`` does, at half its cost (measured: 50 ms against 100 ms), for
    readers that build a fresh database at every open (the Iceberg warehouse's)."""
    script = ";\n".join(MIGRATIONS[version] for version in sorted(MIGRATIONS))
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(script)
        con.executemany(
            "INSERT INTO schema_migrations VALUES (?, now())", [[v] for v in sorted(MIGRATIONS)]
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
