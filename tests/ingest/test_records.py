"""Unit tests for ``ingest.records``: one parsed record in, one warehouse row out."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from ingest.records import ROW_FIELDS, InvalidRecord, normalize, record_key
from tests.conftest import logpush_record

# 2026-04-18T00:00:00Z: 56 years since 1970 with 14 leap days = 20454 days to 2026-01-01,
# plus 31 + 28 + 31 + 17 = 107 days; 20561 days * 86400 s = 1_776_470_400 s.
MIDNIGHT_S = 1_776_470_400
MIDNIGHT_US = MIDNIGHT_S * 1_000_000
ENCRYPTED = {"type": "encrypted", "key": "a2V5LTE=", "iv": "aXYtOTk=", "data": "Y2lwaGVy"}


def row_of(record: object, raw: bytes | None = None) -> dict[str, Any]:
    """Normalise ``record`` (raw bytes default to its JSON) into a column-name -> value map."""
    row = normalize(record, orjson.dumps(record) if raw is None else raw)
    return dict(zip(ROW_FIELDS, row, strict=True))


def input_counts(row: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(tokens_in, cache_read_tokens, cache_write_tokens) of a row."""
    return row["tokens_in"], row["cache_read_tokens"], row["cache_write_tokens"]


def _nested(depth: int) -> object:
    """A list nested ``depth`` levels deep."""
    value: object = []
    for _ in range(depth - 1):
        value = [value]
    return value


def reject_reason(record: object) -> str:
    """The reject reason ``normalize`` gives for ``record``."""
    raw = json.dumps(record).encode()  # orjson cannot write integers past 64 bits
    with pytest.raises(InvalidRecord) as info:
        normalize(record, raw)
    return str(info.value)


@pytest.mark.parametrize(
    ("timestamp", "expected_us"),
    [
        (1_776_470_400_123_456_000, MIDNIGHT_US + 123_456),  # unixnano
        (MIDNIGHT_S, MIDNIGHT_US),  # unix seconds
        (1_776_470_400_123, MIDNIGHT_US + 123_000),  # unix milliseconds
        ("2026-04-18T00:00:00.123456Z", MIDNIGHT_US + 123_456),
        ("2026-04-18T00:00:00Z", MIDNIGHT_US),
        ("2026-04-18T02:00:00.123456+02:00", MIDNIGHT_US + 123_456),
        ("2026-04-17T19:00:00-05:00", MIDNIGHT_US),
        ("2026-04-18T00:00:00.123456", MIDNIGHT_US + 123_456),  # naive: taken as UTC
        ("1776470400123456000", MIDNIGHT_US + 123_456),  # unixnano as a string
        ("1776470400", MIDNIGHT_US),  # unix seconds as a string
        (1_776_470_400.25, MIDNIGHT_US + 250_000),  # unix seconds with a fraction
        (1.5, 1_500_000),  # seconds are seconds however small (not read again as millis)
        (99_999_999.0, 99_999_999_000_000),
        (1_776_470_400_123.0, MIDNIGHT_US + 123_000),  # milliseconds as a float
    ],
)
def test_every_timestamp_format_gives_utc_microseconds(timestamp: object, expected_us: int) -> None:
    """Logpush unixnano, unix, millis and RFC 3339 timestamps all land on the same UTC instant."""
    assert row_of(logpush_record(Timestamp=timestamp))["ts_us"] == expected_us


@pytest.mark.parametrize(
    "name",
    ["tokensIn", "tokens_in", "inputTokens", "input_tokens", "promptTokens", "prompt_tokens"],
)
def test_input_token_spellings(name: str) -> None:
    """Every input-token spelling inside Metrics fills tokens_in."""
    row = row_of(logpush_record(Metrics={name: 1234}))
    assert (row["tokens_in"], row["tokens_out"], row["extra"]) == (1234, None, None)


@pytest.mark.parametrize(
    "name",
    [
        "tokensOut",
        "tokens_out",
        "outputTokens",
        "output_tokens",
        "completionTokens",
        "completion_tokens",
    ],
)
def test_output_token_spellings(name: str) -> None:
    """Every output-token spelling inside Metrics fills tokens_out."""
    row = row_of(logpush_record(Metrics={name: 56}))
    assert (row["tokens_in"], row["tokens_out"], row["extra"]) == (None, 56, None)


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("cacheReadTokens", "cache_read_tokens"),
        ("cache_read_tokens", "cache_read_tokens"),
        ("cachedTokens", "cache_read_tokens"),
        ("cached_tokens", "cache_read_tokens"),
        ("cachedInputTokens", "cache_read_tokens"),
        ("cached_input_tokens", "cache_read_tokens"),
        ("cacheWriteTokens", "cache_write_tokens"),
        ("cache_write_tokens", "cache_write_tokens"),
        ("cacheCreationTokens", "cache_write_tokens"),
        ("cache_creation_tokens", "cache_write_tokens"),
    ],
)
def test_cache_token_spellings_are_included_in_tokens_in(name: str, column: str) -> None:
    """Cache counts reported next to an inclusive input count are not added a second time."""
    row = row_of(logpush_record(Metrics={"input_tokens": 1000, name: 400}))
    assert row["tokens_in"] == 1000
    assert row[column] == 400
    other = "cache_write_tokens" if column == "cache_read_tokens" else "cache_read_tokens"
    assert row[other] is None


@pytest.mark.parametrize(
    ("read_name", "write_name"),
    [
        ("cache_read_input_tokens", "cache_creation_input_tokens"),
        ("cacheReadInputTokens", "cacheCreationInputTokens"),
    ],
)
def test_anthropic_cache_tokens_are_added_to_tokens_in(read_name: str, write_name: str) -> None:
    """Anthropic reports cache tokens apart from input tokens, so they are added: 100+900+50."""
    row = row_of(logpush_record(Metrics={"input_tokens": 100, read_name: 900, write_name: 50}))
    assert input_counts(row) == (1050, 900, 50)


def test_input_count_smaller_than_cache_counts_gets_them_added() -> None:
    """An input count below its cache counts cannot be inclusive, so 10 + 900 + 50 = 960."""
    metrics = {"tokensIn": 10, "cacheReadTokens": 900, "cacheWriteTokens": 50}
    row = row_of(logpush_record(Metrics=metrics))
    assert input_counts(row) == (960, 900, 50)


def test_cache_tokens_without_input_count_become_tokens_in() -> None:
    """A record with only cache counts still counts them as input tokens: 300 + 20 = 320."""
    row = row_of(logpush_record(Metrics={"cachedTokens": 300, "cacheWriteTokens": 20}))
    assert input_counts(row) == (320, 300, 20)


@pytest.mark.parametrize("name", ["cacheWrite1hTokens", "cache_write_1h_tokens"])
def test_one_hour_cache_writes_are_kept_apart_inside_the_write_count(name: str) -> None:
    """1-hour writes are a part of the cache writes, not more input: 100 + 900 + 50 in,
    50 writes of which 30 with a 1-hour TTL."""
    metrics = {"input_tokens": 100, "cache_read_input_tokens": 900}
    row = row_of(logpush_record(Metrics={**metrics, "cache_creation_input_tokens": 50, name: 30}))
    assert input_counts(row) == (1050, 900, 50)
    assert row["cache_write_1h_tokens"] == 30
    assert row["extra"] is None


def test_unknown_fields_are_kept_in_extra() -> None:
    """Unknown top-level and Metrics keys go to extra as JSON text; known fields never do."""
    record = logpush_record(
        ClientIP="203.0.113.7",
        Tags=["a", "b"],
        Metrics={"tokensIn": 10, "tokensOut": 2, "reasoningTokens": 7, "ttfbMs": 120},
    )
    row = row_of(record)
    assert orjson.loads(row["extra"]) == {
        "ClientIP": "203.0.113.7",
        "Tags": ["a", "b"],
        "Metrics": {"reasoningTokens": 7, "ttfbMs": 120},
    }
    assert (row["tokens_in"], row["tokens_out"]) == (10, 2)


def test_plain_record_has_no_extra() -> None:
    """A record made only of known fields leaves extra NULL and fills every known column."""
    row = row_of(logpush_record())
    assert row["extra"] is None
    assert row == {
        "log_id": row["log_id"],
        "ts_us": MIDNIGHT_US,
        "gateway": "prod",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "requested_model": "gpt-4o-mini",
        "endpoint": "chat/completions",
        "status_code": 200,
        "success": True,
        "cached": False,
        "rate_limited": False,
        "duration_ms": 850.0,
        "tokens_in": 1000,
        "tokens_out": 200,
        "cache_read_tokens": None,
        "cache_write_tokens": None,
        "cost": 0.0015,
        "step": None,
        "event_id": None,
        "routing_decision_id": "",
        "routing_reason": "",
        "metadata": '{"team":"search","user":"ana"}',
        "request_body": None,
        "response_body": None,
        "extra": None,
        "log_format": "logpush",
        "decrypt_error": None,
        "route": None,
        "api_key_id": None,
        "dlp_action": None,
        "dlp_categories": None,
        "guardrail_action": None,
        "guardrail_categories": None,
        "cache_key_hash": None,
        "custom_cost": None,
        "model_type": None,
        "request_type": None,
        "request_content_type": None,
        "response_content_type": None,
        "duplicate_keys": None,
        "cache_write_1h_tokens": None,
        "prompt_prefix_hash": None,
        "prompt_prefix_tokens": None,
    }


def test_gateway_extension_fields_fill_their_columns() -> None:
    """aigw's gateway adds LogId, EventId, Step and its policy fields; each has a column."""
    record = logpush_record(
        LogId="01K0GATEWAY0000000000000001",
        EventId="evt-7",
        Step=2,
        Route="chat",
        ApiKeyId="key-search",
        DlpAction="redact",
        DlpCategories=["EMAIL", "AWS_ACCESS_KEY"],
        GuardrailAction="monitor",
        GuardrailCategories="jailbreak, prompt_injection",
        CacheKeyHash="9f2c",
        PromptPrefixHash="5e1d",
        PromptPrefixTokens=5000,
    )
    row = row_of(record)
    assert (row["log_id"], row["event_id"], row["step"], row["route"], row["api_key_id"]) == (
        "01K0GATEWAY0000000000000001",
        "evt-7",
        2,
        "chat",
        "key-search",
    )
    assert (row["dlp_action"], row["dlp_categories"]) == ("redact", ["EMAIL", "AWS_ACCESS_KEY"])
    assert (row["guardrail_action"], row["guardrail_categories"]) == (
        "monitor",
        ["jailbreak", "prompt_injection"],
    )
    assert (row["cache_key_hash"], row["extra"]) == ("9f2c", None)
    assert (row["prompt_prefix_hash"], row["prompt_prefix_tokens"]) == ("5e1d", 5000)


def test_category_list_of_non_names_is_rejected() -> None:
    """Categories must be names; anything else is a reject with the field named."""
    assert reject_reason(logpush_record(DlpCategories=[1, 2])) == (
        "DLP categories is not a list of names: [1, 2]"
    )


def test_encrypted_payloads_are_kept_exactly() -> None:
    """Encrypted Metadata/RequestBody/ResponseBody objects round-trip unchanged, key order too."""
    record = logpush_record(Metadata=ENCRYPTED, RequestBody=ENCRYPTED, ResponseBody=ENCRYPTED)
    row = row_of(record)
    for column in ("metadata", "request_body", "response_body"):
        assert row[column] == orjson.dumps(ENCRYPTED).decode()
        assert list(orjson.loads(row[column]).items()) == list(ENCRYPTED.items())
    assert row["extra"] is None


def test_rest_object_maps_to_the_same_columns() -> None:
    """A REST log object fills the same columns: id -> log_id, path -> endpoint, metadata parsed."""
    record = {
        "id": "01JS0000000000000000000001",
        "created_at": "2026-04-18T00:00:00.123456Z",
        "gateway_id": "prod",
        "provider": "anthropic",
        "model": "claude-sonnet-4",
        "path": "v1/messages",
        "status_code": 200,
        "success": True,
        "cached": False,
        "duration": 850,
        "tokens_in": 1200,
        "tokens_out": 300,
        "cost": 0.0042,
        "step": 0,
        "event_id": "evt-1",
        "metadata": '{"team":"search","user":"ana"}',
        "request_type": "universal",
    }
    row = row_of(record)
    assert orjson.loads(row["metadata"]) == {"team": "search", "user": "ana"}
    assert row["extra"] is None  # request_type has its own column since v7
    assert row == {
        **dict.fromkeys(ROW_FIELDS),
        "log_id": "01JS0000000000000000000001",
        "ts_us": MIDNIGHT_US + 123_456,
        "gateway": "prod",
        "provider": "anthropic",
        "model": "claude-sonnet-4",
        "endpoint": "v1/messages",
        "status_code": 200,
        "success": True,
        "cached": False,
        "duration_ms": 850.0,
        "tokens_in": 1200,
        "tokens_out": 300,
        "cost": 0.0042,
        "step": 0,
        "event_id": "evt-1",
        "metadata": row["metadata"],
        "log_format": "rest",
        "request_type": "universal",
    }


def test_rest_success_flag_wins_over_status_code() -> None:
    """A REST object's own success flag is kept even when the status code would say otherwise."""
    record = {"id": "x", "created_at": MIDNIGHT_S, "status_code": 200, "success": False}
    assert row_of(record)["success"] is False


def test_logpush_record_without_id_gets_a_stable_hash_id() -> None:
    """Without an id, log_id is record_key(raw): same bytes same id, other bytes another id."""
    record = logpush_record()
    raw = orjson.dumps(record)
    first = row_of(record, raw)["log_id"]
    assert first == record_key(raw)
    assert len(first) == 32
    assert int(first, 16) >= 0
    assert row_of(record, bytes(raw))["log_id"] == first
    assert record_key(raw + b"\r\n") == first  # line endings do not change the id
    other_raw = orjson.dumps(logpush_record(StatusCode=500))
    assert record_key(other_raw) != first


@pytest.mark.parametrize(("status", "success"), [(200, True), (429, False), (500, False)])
def test_logpush_success_follows_status_code(status: int, success: bool) -> None:
    """Logpush carries no success flag: 2xx/3xx count as success, 429 and 5xx do not."""
    row = row_of(logpush_record(StatusCode=status))
    assert (row["status_code"], row["success"]) == (status, success)


def _without_timestamp() -> dict[str, Any]:
    record = logpush_record()
    del record["Timestamp"]
    return record


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ([1, 2], "not a JSON object but an array"),
        ("hello", "not a JSON object but a string"),
        (_without_timestamp(), "missing Timestamp"),
        ({"id": "x", "provider": "openai"}, "missing created_at"),
        (logpush_record(Timestamp="yesterday"), "bad timestamp 'yesterday'"),
        (logpush_record(Timestamp=-1.5), "timestamp out of range -1.5"),  # the value as given
        (logpush_record(StatusCode="abc"), "status code is not an integer: 'abc'"),
        (
            logpush_record(Metrics={"tokensIn": {"n": 5}}),
            "input tokens is not an integer: {'n': 5}",
        ),
        (logpush_record(Metrics=[1, 2]), "Metrics is not an object but an array"),
        (logpush_record(Cached="maybe"), "cached is not a boolean: 'maybe'"),
        ({"foo": 1, "bar": 2}, "unrecognised record: neither Logpush nor REST log fields"),
    ],
)
def test_rejections_give_exact_reasons(record: object, reason: str) -> None:
    """A bad record is rejected with a one-line reason the user reads in the rejects table."""
    assert reject_reason(record) == reason


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (logpush_record(Metrics={"tokensIn": "--5"}), "input tokens is not an integer: '--5'"),
        (logpush_record(StatusCode="²"), "status code is not an integer: '²'"),
        (logpush_record(Timestamp="²"), "bad timestamp '²'"),
        (
            logpush_record(Metrics={"tokensIn": 2**70}),
            "input tokens out of range: 1180591620717411303424",
        ),
        (logpush_record(StatusCode=2**31), "status code out of range: 2147483648"),
        (logpush_record(Step="-2147483649"), "step out of range: '-2147483649'"),
        (
            logpush_record(
                Metrics={
                    "tokensIn": 2**62 - 1,
                    "cacheReadTokens": 2**62 - 1,
                    "cacheWriteTokens": 2**62 - 1,
                }
            ),
            "input tokens with cache tokens out of range: 13835058055282163709",
        ),
        (
            logpush_record(Timestamp="1" * 5000),
            "bad timestamp '" + "1" * 36 + "...",
        ),
        (
            logpush_record(Metadata=_nested(300)),
            "metadata cannot be stored as JSON: Recursion limit reached",
        ),
        (
            logpush_record(RequestBody=_nested(256)),
            "request body cannot be stored as JSON: Recursion limit reached",
        ),
    ],
    ids=[
        "double-minus-tokens",
        "superscript-status",
        "superscript-timestamp",
        "tokens-past-64-bits",
        "status-past-32-bits",
        "step-past-32-bits",
        "three-token-counts-past-64-bits",
        "timestamp-of-5000-digits",
        "metadata-300-deep",
        "body-256-deep",
    ],
)
def test_digit_like_strings_are_rejected_not_crashing(record: object, reason: str) -> None:
    """Strings that look numeric to str.isdigit but are not ints, and integers too large to
    store, are rejects, not crashes (a token count past 64 bits aborted the whole run)."""
    assert reject_reason(record) == reason
