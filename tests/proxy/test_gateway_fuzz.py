"""The logging invariant, fuzzed: every request to the real gateway (uvicorn, simulated
providers on 127.0.0.1) that gets a status line leaves exactly one record, with that status,
and no request shape gets a 500. Counted per request by its ``cf-aig-event-id``."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.proxy.gateway_fixtures import (
    GATEWAY_KEYS,
    edited_gateway,
    read_records,
    request,
    sha,
)

PATHS = [
    "/v1/chat/completions",
    "/v1/messages",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/responses",
    "/edge/openai/chat/completions",
    "/edge/anthropic/v1/messages",
    "/edge/nobody/chat/completions",
    "/v1/models",
]
MODELS = [
    "gpt-4o-mini",
    "claude-haiku-4-5",
    "anthropic/claude-haiku-4-5",
    "openai/gpt-4o-mini",
    "nobody/x",
    "",
    5,
    None,
    {"nested": ["model"]},
]
# Every refusal is kept: the invariant, not the flood limit, is under test here. Every
# route caches, so the cache headers are read (a route without a provider: the same one).
EDITS = {
    "max_interval_s = 3600": "refusals_per_ip_per_min = 1000000",
    f'sha256 = "{sha(GATEWAY_KEYS["team-b"])}"': '[routes.all]\nmatch = ["*"]\ncache = true',
}
CACHE_HEADERS = ["cf-aig-cache-ttl", "cf-aig-skip-cache", "cf-aig-cache-key"]
ODD_VALUES = ["inf", "-inf", "nan", "1e400", "1e300", "0", "-1", "1e-320", "true", "", "\u00e9"]
PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


# Content blocks whose type, text and other fields may be any JSON (a list type is
# unhashable: set lookups on it once crashed the gateway and the simulated provider).
blocks = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "tool_result", "document"]) | json_values},
    optional={"text": json_values, "content": json_values, "source": json_values},
)
contents = st.text(max_size=40) | json_values | st.lists(blocks | json_values, max_size=3)
roles = st.sampled_from(["user", "system", "assistant", "tool"]) | json_values


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A request body: a plausible chat, messages, responses or embeddings body (maybe
    streamed, with fields and roles of any JSON type), any JSON, JSON nested up to 1500
    levels, or bytes that are not JSON."""
    kinds = ["chat", "messages", "responses", "embeddings", "any", "deep", "bytes"]
    kind = draw(st.sampled_from(kinds))
    model = draw(st.sampled_from(MODELS))
    if kind == "chat":
        message = {"role": draw(roles), "content": draw(contents)}
        body: Any = {"model": model, "messages": [message]}
        if draw(st.booleans()):
            body["stream"] = True
            if draw(st.booleans()):  # any JSON where OpenAI wants an object
                body["stream_options"] = draw(json_values)
        return orjson.dumps(body)
    if kind == "messages":
        block = {"type": "tool_use", "id": "t", "name": "f", "input": draw(json_values)}
        content = draw(st.just([block]) | contents)
        body = {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": content}]}
        if draw(st.booleans()):
            body["system"] = draw(contents)
        return orjson.dumps(body)
    if kind == "responses":
        items = st.lists(st.fixed_dictionaries({"role": roles, "content": contents}), max_size=2)
        body = {"model": model, "input": draw(contents | items)}
        return orjson.dumps(body)
    if kind == "embeddings":
        return orjson.dumps({"model": model, "input": draw(st.text(max_size=20) | json_values)})
    if kind == "any":
        return orjson.dumps(draw(json_values))
    if kind == "deep":
        levels = draw(st.integers(min_value=1, max_value=1500))
        inner = draw(st.sampled_from(['"x"', "{}", "[]", '{"a":"b"}']))
        value = "[" * levels + inner + "]" * levels
        return f'{{"model":"gpt-4o-mini","messages":{value}}}'.encode()
    return draw(st.binary(max_size=40))


requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["POST"] * 8 + ["GET", "PUT"]),
        "path": st.integers(0, 9).flatmap(
            lambda n: (
                st.from_regex(r"/[a-z0-9/._-]{0,24}", fullmatch=True)
                if n == 9
                else st.sampled_from(PATHS)
            )
        ),
        "key": st.sampled_from([GATEWAY_KEYS["team-a"]] * 4 + ["wrong-key", None]),
        "metadata": st.sampled_from([None] * 4 + ['{"team": "a"}', '{"a": {"b": 1}}', "not"]),
        "body": bodies(),
        "cache": st.dictionaries(
            st.sampled_from(CACHE_HEADERS),
            st.sampled_from(ODD_VALUES) | st.text(PRINTABLE, max_size=6),
        ),
    }
)


def test_every_answered_request_has_exactly_one_record(tmp_path: Path) -> None:
    """60 fuzzed requests: one record each, carrying the status the client got; no 500."""
    numbers = itertools.count()
    sent: dict[str, tuple[str, str, int]] = {}

    with edited_gateway(tmp_path, EDITS) as gw:

        @settings(
            max_examples=60,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(requests)
        def one_request(shape: dict[str, Any]) -> None:
            event_id = f"fuzz-{next(numbers)}"
            headers = {"content-type": "application/json", "cf-aig-event-id": event_id}
            if shape["key"] is not None:
                headers["authorization"] = f"Bearer {shape['key']}"
            if shape["metadata"] is not None:
                headers["cf-aig-metadata"] = shape["metadata"]
            headers |= shape["cache"]
            answer = request(gw.url, shape["method"], shape["path"], shape["body"], headers)
            assert answer.status != 500, (shape, answer.body)
            sent[event_id] = (shape["method"], shape["path"], answer.status)

        one_request()

    per_request = Counter(record.get("EventId") for record in read_records(gw.logs))
    statuses = {r.get("EventId"): r["StatusCode"] for r in read_records(gw.logs)}
    for event_id, (method, path, status) in sent.items():
        if (method, path, status) == ("GET", "/v1/models", 200):
            assert per_request[event_id] == 0, event_id  # the model list is not logged
            continue
        assert (per_request[event_id], statuses.get(event_id)) == (1, status), (event_id, path)
    assert len(sent) >= 60
