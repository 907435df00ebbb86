"""Synthetic `requests` rows for the benchmarks: one generator, several profiles.

Every benchmark warehouse holds the same base traffic (six models, four teams, 200 users,
five agents, errors every 97th and rate limits every 101st request, spread evenly over 30
days from ``START``); a profile adds columns (``extra``) or metadata keys
(``metadata``) that its benchmark reads. Rows are written by DuckDB in chunks of two
million, never through Python.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import duckdb

__all__ = ["START", "build_requests", "fill_requests", "fill_sql", "fresh"]

START: Final = datetime(2026, 10, 1, tzinfo=UTC)
_DAYS: Final = 30
_CHUNK: Final = 2_000_000

# column -> SQL over i (the row number), the models join and the statement's parameters
_BASE: Final = {
    "ts": "$start::TIMESTAMPTZ + to_microseconds(($offset + i) * $spacing_us)",
    "gateway": "CASE WHEN i % 3 = 0 THEN 'staging' ELSE 'prod' END",
    "provider": "models.provider",
    "model": "models.model",
    "requested_model": "models.model",
    "endpoint": (
        "CASE WHEN models.provider = 'anthropic' THEN 'v1/messages' ELSE 'chat/completions' END"
    ),
    "status_code": "CASE WHEN i % 97 = 0 THEN 500 WHEN i % 101 = 0 THEN 429 ELSE 200 END",
    "success": "i % 97 <> 0 AND i % 101 <> 0",
    "cached": "i % 9 = 0",
    "rate_limited": "i % 101 = 0",
    "duration_ms": "200 + (i * 7919) % 3000",
    "tokens_in": "100 + (i * 104729) % 4000",
    "tokens_out": "20 + (i * 1299709) % 800",
    "cache_read_tokens": "CASE WHEN models.provider = 'anthropic' THEN (i * 31) % 2000 END",
    "cache_write_tokens": "NULL",
    "cost": "((100 + (i * 104729) % 4000) * 1.0 + (20 + (i * 1299709) % 800) * 4.0) / 1e6",
    "step": "0",
    "log_format": "'logpush'",
    "source_file": "'bench'",
    "source_line": "i",
    "ingested_at": "$ingested",
}
_METADATA: Final = (
    "'team', 'team-' || (i % 4)",
    "'user', 'user-' || (i % 200)",
    "'agent', 'agent-' || (i % 5)",
)
_MODELS: Final = """
JOIN (VALUES (0, 'openai', 'gpt-4o-mini'), (1, 'openai', 'gpt-4o'),
             (2, 'anthropic', 'claude-sonnet-4'), (3, 'anthropic', 'claude-3-5-haiku'),
             (4, 'google-ai-studio', 'gemini-2.0-flash'), (5, 'custom', 'in-house-llm'))
     AS models(k, provider, model)
  ON models.k = CASE WHEN i % 100 = 0 THEN 5 ELSE i % 5 END
"""


def fill_sql(
    prefix: str, *, extra: dict[str, str] | None = None, metadata: tuple[str, ...] = ()
) -> str:
    """The INSERT of ``$count`` rows after ``$offset``: log ids ``prefix-$batch-i``.

    ``extra`` adds or overrides columns (SQL over ``i``); ``metadata`` adds
    ``'key', value`` pairs to the metadata object.
    """
    columns = {"log_id": f"'{prefix}-' || $batch || '-' || i", **_BASE, **(extra or {})}
    columns["metadata"] = f"json_object({', '.join((*_METADATA, *metadata))})"
    names = ", ".join(columns)
    values = ",\n    ".join(columns.values())
    return (
        f"INSERT INTO requests ({names})\nSELECT\n    {values}\nFROM range($count) AS r(i){_MODELS}"
    )


def fill_requests(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    batch: str,
    offset: int,
    count: int,
    spacing_us: int,
) -> None:
    """Insert ``count`` rows of ``sql`` (from :func:`fill_sql`) after ``offset``, ingested now."""
    parameters = {
        "batch": batch,
        "start": START,
        "offset": offset,
        "spacing_us": spacing_us,
        "count": count,
        "ingested": datetime.now(tz=UTC),
    }
    con.execute(sql, parameters)


def build_requests(con: duckdb.DuckDBPyConnection, sql: str, count: int) -> int:
    """Fill an empty warehouse with ``count`` rows over 30 days; return the spacing in µs."""
    spacing = _DAYS * 86_400 * 1_000_000 // count
    for offset in range(0, count, _CHUNK):
        size = min(_CHUNK, count - offset)
        fill_requests(con, sql, batch=str(offset), offset=offset, count=size, spacing_us=spacing)
    return spacing


def fresh(path: Path) -> None:
    """Make ``path``'s folder and remove an older warehouse file there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
