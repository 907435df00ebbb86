"""Normalise one parsed log record (Logpush or REST shape) into a warehouse row.

Contract: ``normalize(record, raw)`` returns a tuple in ``ROW_FIELDS`` order or
raises ``InvalidRecord`` with a one-line reason. It never drops a field: keys it
does not know (top level and inside ``Metrics``) go into ``extra``; of a key a REST
record repeats, the first value is kept and the key named in ``duplicate_keys``.

Token convention (the warehouse's): ``tokens_in`` counts every input token,
cache reads and writes included. Sources that report cache tokens apart from
input tokens (Anthropic's ``cache_read_input_tokens`` /
``cache_creation_input_tokens``) get them added; so does any record whose input
count is smaller than its cache counts, which cannot be an inclusive count.
``cache_write_tokens`` counts every cache write; ``cache_write_1h_tokens`` those of
them with a 1-hour TTL, as reported (``cacheWrite1hTokens``, or Anthropic's
``cache_creation.ephemeral_1h_input_tokens`` in a decrypted response body).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from core.schema import RECORD_FIELDS
from ingest import fields as _f
from ingest.decrypt import Decryptor, is_encrypted
from ingest.errors import DecryptError, InvalidRecord
from ingest.fields import (
    ANTHROPIC_CACHE_FIELDS as _ANTHROPIC_CACHE_FIELDS,
)
from ingest.fields import (
    CACHE_KEY_HASH as _CACHE_KEY_HASH,
)
from ingest.fields import (
    CACHE_READ as _CACHE_READ,
)
from ingest.fields import (
    CACHE_WRITE as _CACHE_WRITE,
)
from ingest.fields import (
    CACHED as _CACHED,
)
from ingest.fields import (
    COST as _COST,
)
from ingest.fields import (
    DLP_ACTION as _DLP_ACTION,
)
from ingest.fields import (
    DLP_CATEGORIES as _DLP_CATEGORIES,
)
from ingest.fields import (
    DURATION as _DURATION,
)
from ingest.fields import (
    ENDPOINT as _ENDPOINT,
)
from ingest.fields import (
    EVENT_ID as _EVENT_ID,
)
from ingest.fields import (
    GATEWAY as _GATEWAY,
)
from ingest.fields import (
    GUARDRAIL_ACTION as _GUARDRAIL_ACTION,
)
from ingest.fields import (
    GUARDRAIL_CATEGORIES as _GUARDRAIL_CATEGORIES,
)
from ingest.fields import (
    ID as _ID,
)
from ingest.fields import (
    LOGPUSH_FIELDS as _LOGPUSH_FIELDS,
)
from ingest.fields import (
    METADATA as _METADATA,
)
from ingest.fields import (
    METRIC_FIELDS as _METRIC_FIELDS,
)
from ingest.fields import (
    METRICS as _METRICS,
)
from ingest.fields import (
    MODEL as _MODEL,
)
from ingest.fields import (
    NSLOTS as _NSLOTS,
)
from ingest.fields import (
    PROVIDER as _PROVIDER,
)
from ingest.fields import (
    RATE_LIMITED as _RATE_LIMITED,
)
from ingest.fields import (
    REQUEST_BODY as _REQUEST_BODY,
)
from ingest.fields import (
    REQUESTED_MODEL as _REQUESTED_MODEL,
)
from ingest.fields import (
    RESPONSE_BODY as _RESPONSE_BODY,
)
from ingest.fields import (
    REST_FIELDS as _REST_FIELDS,
)
from ingest.fields import (
    ROUTE as _ROUTE,
)
from ingest.fields import (
    ROUTING_ID as _ROUTING_ID,
)
from ingest.fields import (
    ROUTING_REASON as _ROUTING_REASON,
)
from ingest.fields import (
    STATUS as _STATUS,
)
from ingest.fields import (
    STEP as _STEP,
)
from ingest.fields import (
    SUCCESS as _SUCCESS,
)
from ingest.fields import (
    TOK_IN as _TOK_IN,
)
from ingest.fields import (
    TOK_OUT as _TOK_OUT,
)
from ingest.fields import (
    TS as _TS,
)
from ingest.rest import endpoint_of, first_wins
from ingest.values import (
    MAX_STORED,
    boolean,
    integer,
    json_kind,
    json_text,
    metadata_value,
    names,
    number,
    text,
    timestamp_us,
)

__all__ = ["ROW_FIELDS", "InvalidRecord", "normalize", "record_key"]

# Order of the tuple ``normalize`` returns (the ``requests`` columns a record gives, from
# ``core.schema``); the loader adds source_file, source_line and ingested_at.
ROW_FIELDS: Final = RECORD_FIELDS


def record_key(raw: bytes) -> str:
    """Stable id of a record that carries none: SHA-256 of its raw bytes, 128 bits in hex.

    A cryptographic hash, so that nobody can craft a record that hides another one
    (measured faster than BLAKE2 here: the CPU has SHA instructions).
    """
    return hashlib.sha256(raw.strip()).hexdigest()[:32]


def normalize(record: object, raw: bytes, decryptor: Decryptor | None = None) -> tuple[Any, ...]:
    """Map one parsed record to a row in ``ROW_FIELDS`` order; raise ``InvalidRecord``.

    With a ``decryptor``, encrypted ``Metadata`` and bodies are opened: metadata is
    stored decrypted, token usage missing from ``Metrics`` is taken from the
    decrypted response body, and decrypted bodies are not stored. A field that
    does not open is kept encrypted and ``decrypt_error`` says why (the record is
    still loaded).
    """
    if not isinstance(record, dict):
        raise InvalidRecord(f"not a JSON object but {json_kind(record)}")
    slots: list[Any] = [None] * _NSLOTS
    extra: dict[str, Any] = {}
    if "Timestamp" in record or (
        _LOGPUSH_FIELDS.keys() & record.keys() and not _REST_FIELDS.keys() & record.keys()
    ):
        log_format = "logpush"
        _collect(record, _LOGPUSH_FIELDS, slots, extra)
        metrics = slots[_METRICS]
        if metrics is not None:
            if not isinstance(metrics, dict):
                raise InvalidRecord(f"Metrics is not an object but {json_kind(metrics)}")
            unknown: dict[str, Any] = {}
            _collect(metrics, _METRIC_FIELDS, slots, unknown)
            if unknown:
                extra["Metrics"] = unknown
        if slots[_TS] is None:
            raise InvalidRecord("missing Timestamp")
    elif _REST_FIELDS.keys() & record.keys():
        log_format = "rest"
        record, repeated = first_wins(record, raw)
        _collect(record, _REST_FIELDS, slots, extra)
        if slots[_TS] is None:
            raise InvalidRecord("missing created_at")
    else:
        raise InvalidRecord("unrecognised record: neither Logpush nor REST log fields")
    decrypt_error = _decrypt(slots, decryptor) if decryptor is not None else None
    row = _row(slots, extra, log_format, raw, decrypt_error)
    write_1h = integer(slots[_f.CACHE_WRITE_1H], "1-hour cache-write tokens")
    prefix = (
        text(slots[_f.PROMPT_PREFIX_HASH], "prompt prefix hash"),
        integer(slots[_f.PROMPT_PREFIX_TOKENS], "prompt prefix tokens"),
    )
    return (*row, repeated if log_format == "rest" else None, write_1h, *prefix)


def _collect(
    source: dict[str, Any], fields: dict[str, int], slots: list[Any], extra: dict[str, Any]
) -> None:
    """Put each known value in its slot, metric spellings included; the rest in ``extra``."""
    for key, value in source.items():
        slot = fields.get(key)
        if slot is None:
            slot = _METRIC_FIELDS.get(key)
            if slot is None:
                slot = _ANTHROPIC_CACHE_FIELDS.get(key)
                if slot is None:
                    extra[key] = value
                    continue
                slots[_f.CACHE_APART] = True
        slots[slot] = value


def _decrypt(slots: list[Any], decryptor: Decryptor) -> str | None:
    """Open the encrypted fields in place; return the first failure's reason, if any."""
    error = None
    for slot in (_METADATA, _REQUEST_BODY, _RESPONSE_BODY):
        if not is_encrypted(slots[slot]):
            continue
        try:
            value = decryptor.open(slots[slot])
        except DecryptError as err:
            error = error or f"{_FIELD_NAMES[slot]}: {err}"
            continue
        if slot == _RESPONSE_BODY:
            _usage_from_body(slots, value)
        slots[slot] = value if slot == _METADATA else None  # bodies: extracted, not kept
    return error


_FIELD_NAMES: Final = {
    _METADATA: "Metadata",
    _REQUEST_BODY: "RequestBody",
    _RESPONSE_BODY: "ResponseBody",
}


def _usage_from_body(slots: list[Any], body: Any) -> None:
    """Token counts from an OpenAI, Anthropic, Google or Workers AI response, where
    ``Metrics`` had none (the same spellings as ``Metrics``, plus Google's)."""
    if not isinstance(body, dict) or slots[_TOK_IN] is not None or slots[_TOK_OUT] is not None:
        return
    result = body.get("result")
    usage = body.get("usage") or (result.get("usage") if isinstance(result, dict) else None)
    if isinstance(usage, dict):
        found: dict[str, Any] = {}
        _collect(usage, _METRIC_FIELDS, slots, found)
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and details.get("cached_tokens") is not None:
            slots[_CACHE_READ] = details["cached_tokens"]
        creation = usage.get("cache_creation")  # Anthropic: the writes by TTL
        if isinstance(creation, dict):
            slots[_f.CACHE_WRITE_1H] = creation.get("ephemeral_1h_input_tokens")
        return
    google = body.get("usageMetadata")
    if isinstance(google, dict):
        slots[_TOK_IN] = google.get("promptTokenCount")
        slots[_TOK_OUT] = google.get("candidatesTokenCount")
        if google.get("cachedContentTokenCount") is not None:
            slots[_CACHE_READ] = google["cachedContentTokenCount"]


def _row(
    slots: list[Any],
    extra: dict[str, Any],
    log_format: str,
    raw: bytes,
    decrypt_error: str | None,
) -> tuple[Any, ...]:
    status = integer(slots[_STATUS], "status code")
    success = boolean(slots[_SUCCESS], "success")
    if success is None and status is not None:
        success = 200 <= status < 400
    tokens_in = integer(slots[_TOK_IN], "input tokens")
    cache_read = integer(slots[_CACHE_READ], "cache-read tokens")
    cache_write = integer(slots[_CACHE_WRITE], "cache-write tokens")
    if cache_read is not None or cache_write is not None:
        cache_total = (cache_read or 0) + (cache_write or 0)
        if tokens_in is None:
            tokens_in = cache_total
        elif slots[_f.CACHE_APART] or tokens_in < cache_total:
            tokens_in += cache_total
        if not -MAX_STORED <= tokens_in < MAX_STORED:  # three counts near 2**62 each
            raise InvalidRecord(f"input tokens with cache tokens out of range: {tokens_in}")
    log_id = slots[_ID]
    if log_id is None:
        log_id = record_key(raw)
    elif not isinstance(log_id, str):
        log_id = text(log_id, "id")
    return (
        log_id,
        timestamp_us(slots[_TS]),
        text(slots[_GATEWAY], "gateway"),
        text(slots[_PROVIDER], "provider"),
        text(slots[_MODEL], "model"),
        text(slots[_REQUESTED_MODEL], "requested model"),
        _endpoint(slots, log_format),
        status,
        success,
        boolean(slots[_CACHED], "cached"),
        boolean(slots[_RATE_LIMITED], "rate limited"),
        number(slots[_DURATION], "duration"),
        tokens_in,
        integer(slots[_TOK_OUT], "output tokens"),
        cache_read,
        cache_write,
        number(slots[_COST], "cost"),
        integer(slots[_STEP], "step"),
        text(slots[_EVENT_ID], "event id"),
        text(slots[_ROUTING_ID], "routing decision id"),
        text(slots[_ROUTING_REASON], "routing reason"),
        json_text(metadata_value(slots[_METADATA]), "metadata"),
        json_text(slots[_REQUEST_BODY], "request body"),
        json_text(slots[_RESPONSE_BODY], "response body"),
        json_text(extra, "unknown fields") if extra else None,
        log_format,
        decrypt_error,
        text(slots[_ROUTE], "route"),
        text(slots[_f.API_KEY_ID], "api key id"),
        text(slots[_DLP_ACTION], "DLP action"),
        names(slots[_DLP_CATEGORIES], "DLP categories"),
        text(slots[_GUARDRAIL_ACTION], "guardrail action"),
        names(slots[_GUARDRAIL_CATEGORIES], "guardrail categories"),
        text(slots[_CACHE_KEY_HASH], "cache key hash"),
        boolean(slots[_f.CUSTOM_COST], "custom cost"),
        text(slots[_f.MODEL_TYPE], "model type"),
        text(slots[_f.REQUEST_TYPE], "request type"),
        text(slots[_f.REQUEST_CONTENT_TYPE], "request content type"),
        text(slots[_f.RESPONSE_CONTENT_TYPE], "response content type"),
    )


def _endpoint(slots: list[Any], log_format: str) -> str | None:
    """The logged endpoint; for a REST record without one, what its request type names."""
    endpoint = text(slots[_ENDPOINT], "endpoint")
    if endpoint is None and log_format == "rest":
        return endpoint_of(text(slots[_f.REQUEST_TYPE], "request type"))
    return endpoint
