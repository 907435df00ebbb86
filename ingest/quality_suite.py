"""What the data-quality gate expects of the rows an ingest batch adds to ``requests``.

Plain data, no Great Expectations import (that happens in ``ingest.quality`` only
when a batch is checked). Each ``Check`` names one GX 1.x expectation class and its
arguments; ``severity`` is ``critical`` (a failure fails the batch when the gate is
``fail``) or ``warning`` (reported, never fails anything).

Limits are sanity ceilings, far above real traffic, that catch unit and parsing
mistakes (nanoseconds read as seconds, cents as dollars, a sign flipped): no model
takes 10 M tokens in one request, and one request costing more than USD 1,000 is
a bug before it is a bill.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "CHECKED_COLUMNS",
    "CHECKS",
    "DERIVED_COLUMNS",
    "INDEX_COLUMNS",
    "KNOWN_PROVIDERS",
    "MAX_COST_USD",
    "MAX_TOKENS",
    "OLDEST_TS",
    "TS_MAX_PARAMETER",
    "Check",
]

MAX_TOKENS: Final = 10_000_000  # per request, for each token column
MAX_COST_USD: Final = 1_000.0  # per request, as logged
MAX_DURATION_MS: Final = 3_600_000.0  # one hour
MAX_STEP: Final = 10  # failover attempts
OLDEST_TS: Final = datetime(2015, 1, 1, tzinfo=UTC)  # before any LLM gateway logged anything
# The newest sane timestamp is "now + 1 day" (clock skew, time zones mistaken for UTC);
# it is passed at run time under this expectation parameter.
TS_MAX_PARAMETER: Final = "ts_max"

# Cloudflare AI Gateway provider slugs (plus aigw's own gateway, which logs the same).
KNOWN_PROVIDERS: Final = (
    "anthropic",
    "aws-bedrock",
    "azure-openai",
    "baseten",
    "cartesia",
    "cerebras",
    "cohere",
    "compat",
    "deepgram",
    "deepseek",
    "elevenlabs",
    "fireworks",
    "google-ai-studio",
    "google-vertex-ai",
    "grok",
    "groq",
    "huggingface",
    "ideogram",
    "mistral",
    "openai",
    "openrouter",
    "perplexity-ai",
    "replicate",
    "together",
    "workers-ai",
    "xai",
)

# Rows are identified in results by these columns: ids and numbers, never bodies,
# metadata or anything a secret could hide in.
INDEX_COLUMNS: Final = ("log_id", "source_file", "source_line")


@dataclass(frozen=True, slots=True)
class Check:
    """One expectation: a stable ``name`` (results and the dashboard key on it), the GX
    expectation class, its arguments, and whether failing rows' values may be shown
    (numbers and times only)."""

    name: str
    expectation: str
    kwargs: dict[str, Any]
    severity: str = "critical"
    show_values: bool = True
    columns: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.columns:
            named = [self.kwargs.get(key) for key in ("column", "column_A", "column_B")]
            object.__setattr__(self, "columns", tuple(str(name) for name in named if name))


def _between(name: str, column: str, low: Any, high: Any, severity: str = "critical") -> Check:
    return Check(
        name,
        "ExpectColumnValuesToBeBetween",
        {"column": column, "min_value": low, "max_value": high},
        severity,
    )


# Checked values computed from a row (name -> SQL over ``requests``; constants, no input).
DERIVED_COLUMNS: Final = {
    # Metadata still encrypted though nothing failed: no key was given, so the team, user
    # and agent of the request are unknown.
    "metadata_encrypted": "coalesce(json_extract_string(metadata, '$.type') = 'encrypted' "
    "AND decrypt_error IS NULL, false)",
    # JSON keys a REST record repeated, as one string (names of fields, never values).
    "repeated_keys": "array_to_string(duplicate_keys, ', ')",
}

CHECKS: Final[tuple[Check, ...]] = (
    Check("log_id not null", "ExpectColumnValuesToNotBeNull", {"column": "log_id"}),
    Check("log_id unique", "ExpectColumnValuesToBeUnique", {"column": "log_id"}),
    _between("ts in sane window", "ts", OLDEST_TS, {"$PARAMETER": TS_MAX_PARAMETER}),
    _between("status_code 100-599", "status_code", 100, 599),
    _between("tokens_in 0-10M", "tokens_in", 0, MAX_TOKENS),
    _between("tokens_out 0-10M", "tokens_out", 0, MAX_TOKENS),
    _between("cache_read_tokens 0-10M", "cache_read_tokens", 0, MAX_TOKENS),
    _between("cache_write_tokens 0-10M", "cache_write_tokens", 0, MAX_TOKENS),
    _between("cost 0-1000 USD", "cost", 0.0, MAX_COST_USD),
    Check(
        "tokens_in includes cache reads",
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {
            "column_A": "tokens_in",
            "column_B": "cache_read_tokens",
            "or_equal": True,
            "ignore_row_if": "either_value_is_missing",
        },
    ),
    Check(
        "1-hour cache writes within the writes",
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {
            "column_A": "cache_write_tokens",
            "column_B": "cache_write_1h_tokens",
            "or_equal": True,
            "ignore_row_if": "either_value_is_missing",
        },
        severity="warning",  # priced capped at the writes (docs/costs.md)
    ),
    Check(
        "provider known",
        "ExpectColumnValuesToBeInSet",
        {"column": "provider", "value_set": list(KNOWN_PROVIDERS)},
        severity="warning",
        show_values=False,  # free text from the log: ids only
    ),
    Check(
        "model present",
        "ExpectColumnValuesToNotBeNull",
        {"column": "model"},
        severity="warning",
        show_values=False,
    ),
    _between("duration_ms 0-1h", "duration_ms", 0.0, MAX_DURATION_MS, severity="warning"),
    _between("step 0-10", "step", 0, MAX_STEP, severity="warning"),
    Check(
        "metadata not encrypted (pass --private-key)",
        "ExpectColumnValuesToNotBeInSet",
        {"column": "metadata_encrypted", "value_set": [True]},
        severity="warning",
        show_values=False,
    ),
    Check(
        "no repeated JSON keys",
        "ExpectColumnValuesToBeNull",
        {"column": "repeated_keys"},
        severity="warning",  # the first value was kept; the example names the key
    ),
)

# What the gate reads of each new row: the checked columns and the index columns.
CHECKED_COLUMNS: Final = tuple(
    dict.fromkeys([*INDEX_COLUMNS, *(column for check in CHECKS for column in check.columns)])
)
