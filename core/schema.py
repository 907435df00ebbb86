"""The ``requests`` table's columns, stated once.

Everything that lists these columns is derived from ``REQUEST_COLUMNS``: the DDL of each
numbered migration (a column is created by the migration named in ``since``), the Arrow
schema of a normalised batch, the order of the tuple ``ingest.records.normalize``
returns, the models' projection, and the schema table in ``docs/schema.md`` (a test fails
when the two disagree). Units: money USD, durations milliseconds, times UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import pyarrow as pa

__all__ = [
    "DAILY_TABLE",
    "MODEL_COLUMNS",
    "PROMPT_PREFIX_VERSION",
    "RECORD_FIELDS",
    "REQUEST_COLUMNS",
    "ROLLUP_TABLE",
    "Column",
    "arrow_schema",
    "requests_ddl",
    "schema_markdown",
]

Origin = Literal["record", "load"]

# The derived tables the models keep (their columns follow the configured dimensions,
# so each rebuild creates them; their state is in ``rollup_state``, migration v5).
ROLLUP_TABLE: Final = "rollup_hourly"  # one row per UTC hour and dimension values
DAILY_TABLE: Final = "rollup_daily"  # the same per UTC day, for long ranges


@dataclass(frozen=True, slots=True)
class Column:
    """One column of ``requests``.

    ``origin`` is ``record`` when ``normalize`` produces it from the log record and
    ``load`` when the loader adds it (object, line, run time). ``models`` marks the
    columns of the models' projection. ``ddl`` is what follows the name in CREATE/ALTER.
    """

    name: str
    ddl: str
    arrow: pa.DataType
    meaning: str
    since: int = 1
    origin: Origin = "record"
    models: bool = False

    @property
    def duckdb_type(self) -> str:
        """The DuckDB type alone (no NOT NULL, no storage options)."""
        return self.ddl.split()[0]


# The migration that adds the prompt-prefix columns (``core.warehouse.migrations``): the
# one number to change should another migration take it first.
PROMPT_PREFIX_VERSION: Final = 10

_S: Final = pa.string()
_I32: Final = pa.int32()
_I64: Final = pa.int64()
_F64: Final = pa.float64()
_BOOL: Final = pa.bool_()
_TS: Final = pa.timestamp("us", tz="UTC")
_LIST: Final = pa.list_(pa.string())

# Bodies are stored uncompressed: Logpush encrypts them, ciphertext does not compress, and
# DuckDB's compression analysis of them was a third of every checkpoint (measured: same
# file size, ingest 10% faster).
REQUEST_COLUMNS: Final[tuple[Column, ...]] = (
    Column(
        "log_id", "VARCHAR NOT NULL", _S,
        "the record's own id (REST `id`, aigw gateway `LogId`), else a hash of the raw "
        "record; unique",
        models=True,
    ),
    Column(
        "ts", "TIMESTAMPTZ NOT NULL", _TS,
        "request time, UTC (aigw's gateway: when the attempt started)",
        models=True,
    ),
    Column("gateway", "VARCHAR", _S, "gateway name, as logged", models=True),
    Column("provider", "VARCHAR", _S, "provider slug, as logged", models=True),
    Column("model", "VARCHAR", _S, "the model that served, as logged", models=True),
    Column(
        "requested_model", "VARCHAR", _S,
        "the model asked for (may differ from `model`, e.g. with dynamic routing)",
    ),
    Column("endpoint", "VARCHAR", _S, "endpoint, as logged (REST `path`)", models=True),
    Column("status_code", "INTEGER", _I32, "HTTP status the gateway returned", models=True),
    Column("success", "BOOLEAN", _BOOL, "REST `success`, else 200 ≤ status < 400", models=True),
    Column("cached", "BOOLEAN", _BOOL, "response-cache hit", models=True),
    Column("rate_limited", "BOOLEAN", _BOOL, "rejected by a rate limit", models=True),
    Column("duration_ms", "DOUBLE", _F64, "gateway duration in milliseconds", models=True),
    Column(
        "tokens_in", "BIGINT", _I64,
        "**all** input tokens, cache reads and writes included",
        models=True,
    ),
    Column("tokens_out", "BIGINT", _I64, "output tokens", models=True),
    Column(
        "cache_read_tokens", "BIGINT", _I64,
        "how many of `tokens_in` were provider prompt-cache reads",
        models=True,
    ),
    Column(
        "cache_write_tokens", "BIGINT", _I64,
        "how many of `tokens_in` were provider prompt-cache writes",
        models=True,
    ),
    Column(
        "cost", "DOUBLE", _F64,
        "USD as the gateway logged it; NULL when absent (never 0 for unknown)",
        models=True,
    ),
    Column(
        "step", "INTEGER", _I32,
        "which attempt this is (0 = primary, 1, 2… the fallbacks); REST and aigw's gateway",
        models=True,
    ),
    Column("event_id", "VARCHAR", _S, "the request's event id, shared by its attempts, as logged"),
    Column("routing_decision_id", "VARCHAR", _S, "as logged"),
    Column("routing_reason", "VARCHAR", _S, "as logged"),
    Column("metadata", "JSON", _S, "custom metadata (object; an encrypted object as is)"),
    Column(
        "request_body", "JSON USING COMPRESSION uncompressed", _S,
        "as logged (an encrypted object as is); stored uncompressed",
    ),
    Column(
        "response_body", "JSON USING COMPRESSION uncompressed", _S,
        "as logged (an encrypted object as is); stored uncompressed",
    ),
    Column(
        "extra", "JSON", _S,
        "every field aigw does not map, never dropped (unknown `Metrics` keys under "
        "`extra.Metrics`)",
    ),
    Column("log_format", "VARCHAR NOT NULL", _S, "`logpush` or `rest`"),
    Column(
        "source_file", "VARCHAR NOT NULL", _S,
        "the object the row came from (`s3://bucket/key` or absolute path)",
        origin="load",
    ),
    Column(
        "source_line", "INTEGER NOT NULL", _I32,
        "line in that object (record number in a JSON array)",
        origin="load",
    ),
    Column(
        "ingested_at", "TIMESTAMPTZ NOT NULL", _TS,
        "start of the run that loaded the row",
        origin="load",
    ),
    Column(
        "decrypt_error", "VARCHAR", _S,
        "why an encrypted field did not open (null when it did, or when no key was given)",
        since=2,
    ),
    Column("route", "VARCHAR", _S, "aigw gateway only: the route that served", since=3),
    Column(
        "api_key_id", "VARCHAR", _S,
        "aigw gateway only: the gateway key's id (`ApiKeyId`)",
        since=3,
    ),
    Column(
        "dlp_action", "VARCHAR", _S,
        "aigw gateway only: `flag`, `redact` or `block` (null: nothing found)",
        since=3,
    ),
    Column(
        "dlp_categories", "VARCHAR[]", _LIST,
        "aigw gateway only: DLP findings by category name (`EMAIL`…), never the matched text",
        since=3,
    ),
    Column(
        "guardrail_action", "VARCHAR", _S,
        "aigw gateway only: `monitor` or `block` (null: nothing found)",
        since=3,
    ),
    Column(
        "guardrail_categories", "VARCHAR[]", _LIST,
        "aigw gateway only: guardrail findings by category (`jailbreak`…), never the matched text",
        since=3,
    ),
    Column(
        "cache_key_hash", "VARCHAR", _S,
        "aigw gateway only: hash of its response-cache key (same request, same hash)",
        since=3,
    ),
    Column(
        "custom_cost", "BOOLEAN", _BOOL,
        "REST only: true when `cost` is a custom cost the caller gave the gateway "
        "(a negotiated price: it wins over the catalogue, see docs/costs.md)",
        since=7,
        models=True,
    ),
    Column(
        "model_type", "VARCHAR", _S,
        "REST only: the kind of model (`chat`, `embeddings`, `images`, `audio`…), as logged",
        since=7,
    ),
    Column(
        "request_type", "VARCHAR", _S,
        "REST only: the kind of request (`universal`, `chat`, `embeddings`…), as logged",
        since=7,
    ),
    Column(
        "request_content_type", "VARCHAR", _S, "REST only: the request's media type", since=7
    ),
    Column(
        "response_content_type", "VARCHAR", _S, "REST only: the response's media type", since=7
    ),
    Column(
        "duplicate_keys", "VARCHAR[]", _LIST,
        "top-level keys a REST record had more than once (the first value was kept)",
        since=7,
    ),
    Column(
        "cache_write_1h_tokens", "BIGINT", _I64,
        "how many of `cache_write_tokens` were 1-hour cache writes (Anthropic's "
        "`cache_creation.ephemeral_1h_input_tokens`, billed at their own rate); the rest "
        "are 5-minute writes; NULL: not reported (all 5-minute)",
        since=9,
        models=True,
    ),
    Column(
        "prompt_prefix_hash", "VARCHAR", _S,
        "aigw gateway only: hash of the request's stable prefix (system prompt, "
        "instructions, tools) as sent upstream (`PromptPrefixHash`; null: none)",
        since=PROMPT_PREFIX_VERSION,
        models=True,
    ),
    Column(
        "prompt_prefix_tokens", "BIGINT", _I64,
        "aigw gateway only: that prefix's size, estimated at four characters a token "
        "(`PromptPrefixTokens`)",
        since=PROMPT_PREFIX_VERSION,
        models=True,
    ),
)  # fmt: skip

# The record's fields in the order ``normalize`` returns them (``ts`` travels as ``ts_us``).
RECORD_FIELDS: Final = tuple(
    "ts_us" if c.name == "ts" else c.name for c in REQUEST_COLUMNS if c.origin == "record"
)
# The columns the models read from ``requests`` (metadata dimensions are added by name).
MODEL_COLUMNS: Final = tuple(c.name for c in REQUEST_COLUMNS if c.models)

_BY_NAME: Final = {c.name: c for c in REQUEST_COLUMNS}


def requests_ddl(version: int) -> str:
    """The SQL that migration ``version`` runs on ``requests`` ('' when it changes nothing):
    CREATE TABLE for version 1, ADD COLUMN for the columns a later version introduced."""
    columns = [c for c in REQUEST_COLUMNS if c.since == version]
    if version == 1:
        body = ",\n".join(f"    {c.name} {c.ddl}" for c in columns)
        return f"CREATE TABLE requests (\n{body}\n);\n"
    return "".join(f"ALTER TABLE requests ADD COLUMN {c.name} {c.ddl};\n" for c in columns)


def arrow_schema(names: tuple[str, ...]) -> pa.Schema:
    """The Arrow schema of a batch with these fields (``ts_us`` is the ``ts`` column)."""
    return pa.schema([(n, _BY_NAME["ts" if n == "ts_us" else n].arrow) for n in names])


def schema_markdown() -> str:
    """The docs' table of ``requests`` (``| column | type | meaning |``), one row a column."""
    rows = ["| column | type | meaning |", "|---|---|---|"]
    for c in REQUEST_COLUMNS:
        since = f"; since v{c.since}" if c.since > 1 else ""
        rows.append(f"| `{c.name}` | {c.duckdb_type} | {c.meaning}{since} |")
    return "\n".join(rows) + "\n"
