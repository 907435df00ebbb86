"""The official ``openai`` and ``anthropic`` Python SDKs against the real gateway and the
simulated providers on 127.0.0.1: answers, streams, tools, embeddings, and each error class
in its API's shape (OpenAI's on OpenAI paths, Anthropic's on ``/v1/messages``), with the
SDK's own exception class, ``status_code`` and ``body``; a 429's Retry-After is honoured by
the SDK's retry (its attempts counted in the gateway's log records)."""

from __future__ import annotations

import time
from pathlib import Path

import anthropic
import openai
import orjson
import pytest

from ingest.records import normalize
from models.pricing import catalog_models
from tests.proxy.gateway_fixtures import (
    GATEWAY_KEYS,
    Running,
    gateway,
    mock_calls,
    read_records,
    request,
)

ROUTES = """
[routes.limited]
match = ["gpt-4.1-nano", "claude-haiku-4-5"]
rate_limits = [{ name = "one", per = "key", unit = "requests", limit = 1, window_s = 2 }]
[routes.guarded]
match = ["gpt-4.1-mini", "claude-opus-4-1"]
dlp = "block"
[routes.capped]
match = ["gpt-4.1"]
budget = { usd = 0.0000001, period = "day", per = "key" }
[routes.failing]
match = ["gpt-4o"]
provider = "openai"
fallbacks = [{ provider = "backup" }]
[routes.failing_claude]
match = ["claude-outage-test"]  # answered by the outage before the name is checked
provider = "anthropic"
fallbacks = [{ provider = "anthropic", model = "claude-haiku-4-5" }]
"""
CARD = "charge it to 4111 1111 1111 1111 please"
HI = [{"role": "user", "content": "Say hello."}]


def openai_client(gw: Running, key: str = GATEWAY_KEYS["team-a"]) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=30)


def anthropic_client(gw: Running, key: str = GATEWAY_KEYS["team-a"]) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)


def outage(url: str, seconds: float = 30) -> None:
    """A 503 outage of the simulated provider at ``url``, starting now."""
    body = orjson.dumps({"status": 503, "seconds": seconds})
    assert request(url, "POST", "/_mock/outage", body, {}).status == 200


def test_openai_sdk_chat_stream_tools_and_embeddings(tmp_path: Path) -> None:
    """chat.completions.create (whole, streamed, with a forced tool, translated to Anthropic)
    and embeddings.create parse the gateway's answers; one record each."""
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    with gateway(tmp_path) as gw, openai_client(gw) as client:
        whole = client.chat.completions.create(model="gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=HI,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        tools = client.chat.completions.create(
            model="anthropic/claude-haiku-4-5",  # the simulated Anthropic provider calls tools
            messages=HI,  # type: ignore[arg-type]
            tools=[weather],  # type: ignore[list-item]
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
        vectors = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    text = whole.choices[0].message.content
    assert text
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text  # same body, same seed: the same answer
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens  # type: ignore[union-attr]
    [call] = tools.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert orjson.loads(call.function.arguments)["city"].startswith("city-")  # type: ignore[union-attr]
    assert [len(v.embedding) > 0 for v in vectors.data] == [True, True]
    records = read_records(gw.logs)
    assert [(r["Endpoint"], r["StatusCode"]) for r in records] == [
        ("chat/completions", 200),
        ("chat/completions", 200),
        ("chat/completions", 200),
        ("embeddings", 200),
    ]


def test_anthropic_sdk_messages_whole_and_streamed(tmp_path: Path) -> None:
    """messages.create and messages.stream through /v1/messages: the same text."""
    with gateway(tmp_path) as gw, anthropic_client(gw) as client:
        whole = client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=HI)  # type: ignore[arg-type]
        with client.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=64,
            messages=HI,  # type: ignore[arg-type]
        ) as stream:
            streamed = "".join(stream.text_stream)
            final = stream.get_final_message()
    [block] = whole.content
    assert block.type == "text"
    assert streamed == block.text
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert [r["StatusCode"] for r in read_records(gw.logs)] == [200, 200]


def test_anthropic_sdk_errors_have_anthropic_shape(tmp_path: Path) -> None:
    """400 DLP block, 401 and 404 on /v1/messages: the SDK's exception classes, and bodies
    ``{"type": "error", "error": {"type": …, "message": …}}`` with Anthropic's types."""
    with (
        gateway(tmp_path, ROUTES) as gw,
        anthropic_client(gw) as client,
        anthropic_client(gw, key="gw-key-wrong") as stranger,
    ):
        card = [{"role": "user", "content": CARD}]
        with pytest.raises(anthropic.BadRequestError) as blocked:
            client.messages.create(model="claude-opus-4-1", max_tokens=16, messages=card)  # type: ignore[arg-type]
        with pytest.raises(anthropic.AuthenticationError) as unknown:
            stranger.messages.create(
                model="claude-opus-4-1",
                max_tokens=16,
                messages=HI,  # type: ignore[arg-type]
            )
        with pytest.raises(anthropic.NotFoundError) as missing:
            client.post("/v1/messages/nothing", body={}, cast_to=object)
    assert (blocked.value.status_code, unknown.value.status_code) == (400, 401)
    assert missing.value.status_code == 404
    assert blocked.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "request blocked by DLP: CARD_NUMBER",
            "code": "content_policy_violation",
        },
    }
    assert unknown.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert missing.value.body == {
        "type": "error",
        "error": {
            "type": "not_found_error",
            "message": "no such endpoint: /v1/messages/nothing",
            "code": "not_found",
        },
    }


def test_openai_sdk_errors_keep_openai_shape(tmp_path: Path) -> None:
    """The same refusals on /v1/chat/completions: OpenAI's classes and shape."""
    with (
        gateway(tmp_path, ROUTES) as gw,
        openai_client(gw) as client,
        openai_client(gw, key="gw-key-wrong") as stranger,
    ):
        card = [{"role": "user", "content": CARD}]
        with pytest.raises(openai.BadRequestError) as blocked:
            client.chat.completions.create(model="gpt-4.1-mini", messages=card)  # type: ignore[arg-type]
        with pytest.raises(openai.AuthenticationError) as unknown:
            stranger.chat.completions.create(
                model="gpt-4o-mini",
                messages=HI,  # type: ignore[arg-type]
            )
    assert (blocked.value.status_code, unknown.value.status_code) == (400, 401)
    # the openai SDK's body is the "error" object of OpenAI's shape
    assert blocked.value.body == {
        "message": "request blocked by DLP: CARD_NUMBER",
        "type": "dlp_blocked",
        "code": "content_policy_violation",
    }
    assert blocked.value.code == "content_policy_violation"
    assert unknown.value.body["type"] == "authentication_error"  # type: ignore[index]


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_a_429_with_retry_after_is_retried_by_the_sdk(tmp_path: Path, api: str) -> None:
    """A rate limit of 1 request per 2 s: the SDK (max_retries=1) gets 429 with Retry-After
    (at least 1 s), waits that long and succeeds; the gateway logged 200, 429, 200. With
    max_retries=0 the SDK raises RateLimitError with Anthropic's or OpenAI's body."""
    with gateway(tmp_path, ROUTES) as gw, openai_client(gw) as base, anthropic_client(gw) as abase:
        if api == "openai":
            oclient = base.with_options(max_retries=1)

            def call() -> None:
                oclient.chat.completions.create(model="gpt-4.1-nano", messages=HI)  # type: ignore[arg-type]

            limited: type[Exception] = openai.RateLimitError
        else:
            aclient = abase.with_options(max_retries=1)

            def call() -> None:
                aclient.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=HI)  # type: ignore[arg-type]

            limited = anthropic.RateLimitError
        # fixed windows start at multiples of 2 s since the epoch: begin just after one, so
        # that the first two calls share a window
        time.sleep(2.0 - time.time() % 2.0 + 0.05)
        call()
        started = time.monotonic()
        call()  # 429, then the retry after Retry-After seconds
        waited = time.monotonic() - started
        if api == "openai":
            oclient = oclient.with_options(max_retries=0)
        else:
            aclient = aclient.with_options(max_retries=0)
        with pytest.raises(limited) as refused:
            call()
    assert [r["StatusCode"] for r in read_records(gw.logs)] == [200, 429, 200, 429]
    # the SDKs' own first backoff is at most 0.5 s: a wait of 1 s or more is Retry-After's
    assert waited >= 1.0
    error = refused.value
    assert isinstance(error, openai.APIStatusError | anthropic.APIStatusError)
    assert error.status_code == 429
    assert int(error.response.headers["retry-after"]) in (1, 2)
    body = error.body
    assert isinstance(body, dict)
    if api == "anthropic":
        assert (body["type"], body["error"]["type"]) == ("error", "rate_limit_error")
    else:
        assert (body["type"], body["code"]) == ("rate_limit_exceeded", "rate_limited")


def test_a_503_after_failover_reaches_the_sdk(tmp_path: Path) -> None:
    """Every provider of the route in a 503 outage: the last one's 503 is the answer, in the
    path's shape; the SDKs raise InternalServerError; two records per request."""
    with (
        gateway(tmp_path, ROUTES) as gw,
        openai_client(gw) as oclient,
        anthropic_client(gw) as aclient,
    ):
        for url in (gw.openai, gw.backup, gw.anthropic):
            outage(url)
        with pytest.raises(openai.InternalServerError) as oerr:
            oclient.chat.completions.create(model="gpt-4o", messages=HI)  # type: ignore[arg-type]
        with pytest.raises(anthropic.InternalServerError) as aerr:
            aclient.messages.create(
                model="claude-outage-test",
                max_tokens=16,
                messages=HI,  # type: ignore[arg-type]
            )
    assert (oerr.value.status_code, aerr.value.status_code) == (503, 503)
    assert isinstance(aerr.value.body, dict)
    assert aerr.value.body["type"] == "error"
    records = read_records(gw.logs)
    assert [(r["Provider"], r["StatusCode"]) for r in records] == [
        ("openai", 503),
        ("backup", 503),
        ("anthropic", 503),
        ("anthropic", 503),
    ]


def test_models_lists_concrete_names_and_the_catalogue_models_globs_match(
    tmp_path: Path,
) -> None:
    """GET /v1/models through the openai SDK: a concrete name once per provider, and for the
    glob ``anthropic/claude-opus-*`` the catalogue's Claude Opus models, for the anthropic
    provider only."""
    routes = (
        '\n[routes.opus]\nmatch = ["anthropic/claude-opus-*"]\n'
        '[routes.mini]\nmatch = ["gpt-4.1-mini"]\nprovider = "openai"\n'
    )
    with gateway(tmp_path, routes) as gw, openai_client(gw) as client:
        listed = list(client.models.list())
    # genai-prices is pinned to a range: its Opus list is read, two of them known by hand
    opus = [m for m in catalog_models("anthropic") if m.startswith("claude-opus-")]
    assert {"claude-opus-4-1", "claude-opus-4-5"} <= set(opus)
    assert [m.id for m in listed] == [
        *(f"anthropic/{m}" for m in opus),
        "anthropic/gpt-4.1-mini",
        "backup/gpt-4.1-mini",
        "openai/gpt-4.1-mini",
    ]
    assert {(m.object, m.created, m.owned_by) for m in listed if m.id.startswith("backup/")} == {
        ("model", 0, "backup")
    }
    assert read_records(gw.logs) == []  # the listing is not logged


def test_count_tokens_is_forwarded_to_the_anthropic_provider(tmp_path: Path) -> None:
    """messages.count_tokens through the anthropic SDK: forwarded to the provider's
    /v1/messages/count_tokens as sent; the simulated provider counts ceil(chars / 4) of the
    flattened prompt ("\\0user\\0Say hello." is 16 characters: 4 tokens). One record, no
    tokens, cost 0; DLP applies (a card number: 400, Anthropic's shape)."""
    with gateway(tmp_path, ROUTES) as gw, anthropic_client(gw) as client:
        counted = client.messages.count_tokens(model="claude-haiku-4-5", messages=HI)  # type: ignore[arg-type]
        card = [{"role": "user", "content": CARD}]
        with pytest.raises(anthropic.BadRequestError) as blocked:
            client.messages.count_tokens(model="claude-opus-4-1", messages=card)  # type: ignore[arg-type]
        calls = mock_calls(gw.anthropic)
    assert counted.input_tokens == 4
    assert [(c["path"], c["body"]) for c in calls] == [
        ("/v1/messages/count_tokens", {"model": "claude-haiku-4-5", "messages": HI})
    ]
    assert blocked.value.status_code == 400
    records = read_records(gw.logs)
    assert [(r["Endpoint"], r["StatusCode"], r["Provider"]) for r in records] == [
        ("messages/count_tokens", 200, "anthropic"),
        ("messages/count_tokens", 400, "anthropic"),
    ]
    metrics = records[0]["Metrics"]
    assert (metrics["tokensIn"], metrics["tokensOut"], metrics["cost"]) == (0, 0, 0.0)
    for record in records:  # they load into the warehouse
        normalize(record, orjson.dumps(record))


def test_a_spent_budget_is_not_retried_by_the_sdk(tmp_path: Path) -> None:
    """A budget's 429 says ``x-should-retry: false``: the openai SDK with max_retries=3
    gives up at once (one refusal logged after the request that spent the budget)."""
    with gateway(tmp_path, ROUTES) as gw, openai_client(gw) as base:
        client = base.with_options(max_retries=3)
        client.chat.completions.create(model="gpt-4.1", messages=HI)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as spent:
            client.chat.completions.create(model="gpt-4.1", messages=HI)  # type: ignore[arg-type]
    assert spent.value.response.headers["x-should-retry"] == "false"
    assert spent.value.code == "budget_exceeded"
    assert [r["StatusCode"] for r in read_records(gw.logs)] == [200, 429]
