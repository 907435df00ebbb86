"""What only Cloudflare's logs REST API records need: repeated keys, endpoint from type.

Both functions are pure; ``ingest.records`` calls them for REST records only (the SQL
path never vouches for a record with a repeated key, and derives the endpoint from the
same ``ENDPOINT_OF_REQUEST_TYPE``).
"""

from __future__ import annotations

import json
from typing import Any

from ingest.fields import ENDPOINT_OF_REQUEST_TYPE

__all__ = ["endpoint_of", "first_wins"]


def first_wins(record: dict[str, Any], raw: bytes) -> tuple[dict[str, Any], list[str] | None]:
    """The REST record with the *first* value of each repeated top-level key, and those keys.

    orjson keeps the last value of a repeated key; Cloudflare's own logs example repeats
    ``id``, whose first value is the record's. Only REST records are read twice, by the
    standard library's parser (the API export is small; Logpush records are many and
    machine-written); a per-key count of the raw text measured no faster.
    """
    if raw.count(b":") <= len(record):
        return record, None  # each pair has a colon: no more colons than keys, no repeat
    top: list[list[str]] = []

    def first(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        top.append([key for key, _ in pairs])
        kept: dict[str, Any] = {}
        for key, value in pairs:
            kept.setdefault(key, value)
        return kept

    try:
        reread = json.loads(raw, object_pairs_hook=first)
    except (ValueError, RecursionError):
        return record, None
    keys = top[-1] if top and isinstance(reread, dict) else []
    repeated = list(dict.fromkeys(key for key in keys if keys.count(key) > 1))
    return (reread, repeated) if repeated else (record, None)


def endpoint_of(request_type: str | None) -> str | None:
    """The endpoint a REST record without ``path`` had, when its type names one operation."""
    return ENDPOINT_OF_REQUEST_TYPE.get(request_type) if request_type is not None else None
