"""Normalise one parsed log record (Logpush or REST shape) into a warehouse row.

Contract: ``normalize(record, raw)`` returns a tuple in ``ROW_FIELDS`` order or
raises ``InvalidRecord`` with a one-line reason. It never drops a field: keys it
does not know (top level and inside ``Metrics``) go into ``extra``.

Token convention (the warehouse's): ``tokens_in`` counts every input token,
cache reads and writes included. Sources that report cache tokens apart from
input tokens (Anthropic's ``cache_read_input_tokens`` /
``cache_creation_input_tokens``) get them added; so does any record whose input
count is smaller than its cache counts, which cannot be an inclusive count.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from core import logpush
from core.schema import RECORD_FIELDS
from ingest.decrypt import Decryptor, is_encrypted
from ingest.errors import DecryptError, InvalidRecord

__all__ = ["ROW_FIELDS", "InvalidRecord", "normalize", "record_key"]

# Order of the tuple ``normalize`` returns (the ``requests`` columns a record gives, from
# ``core.schema``); the loader adds source_file, source_line and ingested_at.
ROW_FIELDS: Final = RECORD_FIELDS


# Slots of the raw values collected before conversion.
(
    _ID,
    _TS,
    _GATEWAY,
    _PROVIDER,
    _MODEL,
    _REQUESTED_MODEL,
    _ENDPOINT,
    _STATUS,
    _SUCCESS,
    _CACHED,
    _RATE_LIMITED,
    _DURATION,
    _COST,
    _STEP,
    _EVENT_ID,
    _ROUTING_ID,
    _ROUTING_REASON,
    _METADATA,
    _REQUEST_BODY,
    _RESPONSE_BODY,
    _METRICS,
    _TOK_IN,
    _TOK_OUT,
    _CACHE_READ,
    _CACHE_WRITE,
    _CACHE_APART,
    _ROUTE,
    _API_KEY_ID,
    _DLP_ACTION,
    _DLP_CATEGORIES,
    _GUARDRAIL_ACTION,
    _GUARDRAIL_CATEGORIES,
    _CACHE_KEY_HASH,
) = range(33)
_NSLOTS: Final = 33

_LOGPUSH_FIELDS: Final = {
    logpush.TIMESTAMP: _TS,
    logpush.GATEWAY: _GATEWAY,
    logpush.PROVIDER: _PROVIDER,
    logpush.MODEL: _MODEL,
    logpush.REQUESTED_MODEL: _REQUESTED_MODEL,
    logpush.ENDPOINT: _ENDPOINT,
    logpush.STATUS_CODE: _STATUS,
    logpush.CACHED: _CACHED,
    logpush.RATE_LIMITED: _RATE_LIMITED,
    logpush.METRICS: _METRICS,
    logpush.METADATA: _METADATA,
    logpush.REQUEST_BODY: _REQUEST_BODY,
    logpush.RESPONSE_BODY: _RESPONSE_BODY,
    logpush.ROUTING_DECISION_ID: _ROUTING_ID,
    logpush.ROUTING_REASON: _ROUTING_REASON,
    # extension fields written by aigw's gateway
    logpush.LOG_ID: _ID,
    logpush.EVENT_ID: _EVENT_ID,
    logpush.STEP: _STEP,
    logpush.ROUTE: _ROUTE,
    logpush.API_KEY_ID: _API_KEY_ID,
    logpush.DLP_ACTION: _DLP_ACTION,
    logpush.DLP_CATEGORIES: _DLP_CATEGORIES,
    logpush.GUARDRAIL_ACTION: _GUARDRAIL_ACTION,
    logpush.GUARDRAIL_CATEGORIES: _GUARDRAIL_CATEGORIES,
    logpush.CACHE_KEY_HASH: _CACHE_KEY_HASH,
}

# Token, cost and duration spellings, inside Logpush ``Metrics`` and at the top
# level of REST objects. ``_CACHE_APART`` marks Anthropic's names, whose
# counts are not included in the input count.
_METRIC_FIELDS: Final = {
    "cost": _COST,
    "durationMs": _DURATION,
    "duration_ms": _DURATION,
    "duration": _DURATION,
    **dict.fromkeys(
        (
            "tokensIn",
            "tokens_in",
            "inputTokens",
            "input_tokens",
            "promptTokens",
            "prompt_tokens",
        ),
        _TOK_IN,
    ),
    **dict.fromkeys(
        (
            "tokensOut",
            "tokens_out",
            "outputTokens",
            "output_tokens",
            "completionTokens",
            "completion_tokens",
        ),
        _TOK_OUT,
    ),
    **dict.fromkeys(
        (
            "cacheReadTokens",
            "cache_read_tokens",
            "cachedTokens",
            "cached_tokens",
            "cachedInputTokens",
            "cached_input_tokens",
        ),
        _CACHE_READ,
    ),
    **dict.fromkeys(
        (
            "cacheWriteTokens",
            "cache_write_tokens",
            "cacheCreationTokens",
            "cache_creation_tokens",
        ),
        _CACHE_WRITE,
    ),
}
_ANTHROPIC_CACHE_FIELDS: Final = {
    "cache_read_input_tokens": _CACHE_READ,
    "cacheReadInputTokens": _CACHE_READ,
    "cache_creation_input_tokens": _CACHE_WRITE,
    "cacheCreationInputTokens": _CACHE_WRITE,
}

_REST_FIELDS: Final = {
    "id": _ID,
    "created_at": _TS,
    "gateway_id": _GATEWAY,
    "gateway": _GATEWAY,
    "provider": _PROVIDER,
    "model": _MODEL,
    "requested_model": _REQUESTED_MODEL,
    "path": _ENDPOINT,
    "endpoint": _ENDPOINT,
    "status_code": _STATUS,
    "success": _SUCCESS,
    "cached": _CACHED,
    "rate_limited": _RATE_LIMITED,
    "step": _STEP,
    "event_id": _EVENT_ID,
    "metadata": _METADATA,
    "request_body": _REQUEST_BODY,
    "response_body": _RESPONSE_BODY,
}

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_US: Final = 9_000_000_000_000_000  # ~ year 2255; keeps int64 nanoseconds valid


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
        raise InvalidRecord(f"not a JSON object but {_json_kind(record)}")
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
                raise InvalidRecord(f"Metrics is not an object but {_json_kind(metrics)}")
            unknown: dict[str, Any] = {}
            _collect(metrics, _METRIC_FIELDS, slots, unknown)
            if unknown:
                extra["Metrics"] = unknown
        if slots[_TS] is None:
            raise InvalidRecord("missing Timestamp")
    elif _REST_FIELDS.keys() & record.keys():
        log_format = "rest"
        _collect(record, _REST_FIELDS, slots, extra)
        if slots[_TS] is None:
            raise InvalidRecord("missing created_at")
    else:
        raise InvalidRecord("unrecognised record: neither Logpush nor REST log fields")
    decrypt_error = _decrypt(slots, decryptor) if decryptor is not None else None
    return _row(slots, extra, log_format, raw, decrypt_error)


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
                slots[_CACHE_APART] = True
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
    status = _integer(slots[_STATUS], "status code")
    success = _boolean(slots[_SUCCESS], "success")
    if success is None and status is not None:
        success = 200 <= status < 400
    tokens_in = _integer(slots[_TOK_IN], "input tokens")
    cache_read = _integer(slots[_CACHE_READ], "cache-read tokens")
    cache_write = _integer(slots[_CACHE_WRITE], "cache-write tokens")
    if cache_read is not None or cache_write is not None:
        cache_total = (cache_read or 0) + (cache_write or 0)
        if tokens_in is None:
            tokens_in = cache_total
        elif slots[_CACHE_APART] or tokens_in < cache_total:
            tokens_in += cache_total
    log_id = slots[_ID]
    if log_id is None:
        log_id = record_key(raw)
    elif not isinstance(log_id, str):
        log_id = _text(log_id, "id")
    return (
        log_id,
        _timestamp_us(slots[_TS]),
        _text(slots[_GATEWAY], "gateway"),
        _text(slots[_PROVIDER], "provider"),
        _text(slots[_MODEL], "model"),
        _text(slots[_REQUESTED_MODEL], "requested model"),
        _text(slots[_ENDPOINT], "endpoint"),
        status,
        success,
        _boolean(slots[_CACHED], "cached"),
        _boolean(slots[_RATE_LIMITED], "rate limited"),
        _number(slots[_DURATION], "duration"),
        tokens_in,
        _integer(slots[_TOK_OUT], "output tokens"),
        cache_read,
        cache_write,
        _number(slots[_COST], "cost"),
        _integer(slots[_STEP], "step"),
        _text(slots[_EVENT_ID], "event id"),
        _text(slots[_ROUTING_ID], "routing decision id"),
        _text(slots[_ROUTING_REASON], "routing reason"),
        _json_text(_metadata(slots[_METADATA])),
        _json_text(slots[_REQUEST_BODY]),
        _json_text(slots[_RESPONSE_BODY]),
        _json_text(extra) if extra else None,
        log_format,
        decrypt_error,
        _text(slots[_ROUTE], "route"),
        _text(slots[_API_KEY_ID], "api key id"),
        _text(slots[_DLP_ACTION], "DLP action"),
        _names(slots[_DLP_CATEGORIES], "DLP categories"),
        _text(slots[_GUARDRAIL_ACTION], "guardrail action"),
        _names(slots[_GUARDRAIL_CATEGORIES], "guardrail categories"),
        _text(slots[_CACHE_KEY_HASH], "cache key hash"),
    )


def _timestamp_us(value: Any) -> int:
    """Microseconds since the epoch (UTC) from unixnano, unix, millis or RFC 3339."""
    kind = type(value)
    if kind is str:
        text = value.strip()
        if text.isascii() and text.isdigit():
            return _timestamp_us(int(text))
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidRecord(f"bad timestamp {_show(value)}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        micros = (parsed - _EPOCH) // _ONE_US
    elif kind is int:
        magnitude = abs(value)
        if magnitude >= 10**17:
            micros = value // 1000
        elif magnitude >= 10**14:
            micros = value
        elif magnitude >= 10**11:
            micros = value * 1000
        else:
            micros = value * 1_000_000
    elif kind is float:
        return _timestamp_us(round(value * 1_000_000) if abs(value) < 10**11 else int(value))
    else:
        raise InvalidRecord(f"bad timestamp {_show(value)}")
    if not 0 <= micros < _MAX_US:
        raise InvalidRecord(f"timestamp out of range {_show(value)}")
    return int(micros)


_ONE_US: Final = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def _integer(value: Any, name: str) -> int | None:
    kind = type(value)
    if kind is int or value is None:
        return value  # type: ignore[no-any-return]
    if kind is float and value.is_integer():
        return int(value)
    if kind is str:
        try:
            return int(value)
        except ValueError:
            pass
    raise InvalidRecord(f"{name} is not an integer: {_show(value)}")


def _number(value: Any, name: str) -> float | None:
    kind = type(value)
    if kind is float or value is None:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    if kind is str:
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
    raise InvalidRecord(f"{name} is not a number: {_show(value)}")


# True and False also match 1 and 0 (equal keys), which some writers use for booleans.
_TRUE: Final = {True: True, False: False, "true": True, "false": False}


def _boolean(value: Any, name: str) -> bool | None:
    if value is None:
        return None
    try:
        return _TRUE[value.lower() if type(value) is str else value]
    except (KeyError, TypeError):
        raise InvalidRecord(f"{name} is not a boolean: {_show(value)}") from None


def _text(value: Any, name: str) -> str | None:
    kind = type(value)
    if kind is str or value is None:
        return value  # type: ignore[no-any-return]
    if kind is int or kind is float or kind is bool:
        return str(value)
    raise InvalidRecord(f"{name} is not a string: {_show(value)}")


def _names(value: Any, name: str) -> list[str] | None:
    """A list of category names; a comma-separated string is accepted too."""
    if value is None:
        return None
    if type(value) is str:
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(type(item) is str for item in value):
        return value
    raise InvalidRecord(f"{name} is not a list of names: {_show(value)}")


def _metadata(value: Any) -> Any:
    """Metadata as an object where it is JSON text (REST); other values as they are."""
    if type(value) is str and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return (
        "a number"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else "a boolean"
    )


def _show(value: Any) -> str:
    """A short, safe rendering of a bad value for a reject reason."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
