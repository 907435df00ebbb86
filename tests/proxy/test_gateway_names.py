"""What a client names is checked before it is logged: the gateway label of the passthrough
path, the model, cf-aig-event-id and cf-aig-metadata keys. A bad name is refused (404 or
400) with exactly one record, and no secret or oversized name reaches the logs. Real
gateway, simulated providers on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.proxy.gateway_fixtures import gateway, log_bytes, mock_calls, read_records

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}
SECRET = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2  # an OpenAI project key's shape
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"  # a GitHub token (40 characters)


def test_a_passthrough_gateway_label_must_be_a_configured_gateway(tmp_path: Path) -> None:
    """`/ci/openai/...` (ci is in [server] gateways) is served and logged as ci; `..`, a
    4,000-character label and an unknown name get 404, logged under the configured gateway
    name with the label cut to 64 characters in the reason."""
    with gateway(tmp_path) as gw:
        served = gw.post("/ci/openai/chat/completions", CHAT)
        statuses = [
            gw.post(f"/{label}/openai/chat/completions", CHAT).status
            for label in ("nosuch", "..", "g" * 4000)
        ]
        refused = gw.post("/nosuch/openai/chat/completions", CHAT)
    assert served.status == 200
    assert statuses == [404, 404, 404]
    assert refused.json()["error"]["message"] == (
        "no such gateway: 'nosuch' (this gateway serves ci, edge, test)"
    )
    records = read_records(gw.logs)
    assert [(r["Gateway"], r["StatusCode"]) for r in records] == [
        ("ci", 200),
        ("test", 404),
        ("test", 404),
        ("test", 404),
        ("test", 404),
    ]
    label = "g" * 64
    assert records[3]["RoutingReason"] == (
        f"no such gateway: '{label}' (this gateway serves ci, edge, test)"
    )
    assert all(len(orjson.dumps(r)) < 2000 for r in records)


def test_model_names_that_are_not_names_or_hold_a_secret_are_refused_and_not_logged(
    tmp_path: Path,
) -> None:
    """A 4,000-character model, one with a newline, and one that is an API key are refused
    with 400 before any provider; each has one record without the model, and the key is in
    no log file."""
    with gateway(tmp_path) as gw:
        answers = [
            gw.post("/v1/chat/completions", {**CHAT, "model": model})
            for model in ("m" * 4000, "gpt-4o\nmini", SECRET)
        ]
        assert mock_calls(gw.openai) == []
    assert [(a.status, a.json()["error"]["code"]) for a in answers] == [
        (400, "bad_model"),
        (400, "bad_model"),
        (400, "bad_model"),
    ]
    assert answers[2].json()["error"]["message"] == "the model name contains a secret"
    records = read_records(gw.logs)
    assert [(r["StatusCode"], r.get("RequestedModel"), r["Model"]) for r in records] == [
        (400, None, None)
    ] * 3
    assert SECRET[:20].encode() not in log_bytes(gw.logs)


def test_event_ids_and_metadata_keys_are_bounded_and_redacted(tmp_path: Path) -> None:
    """cf-aig-event-id over 256 characters (or with a space) and metadata keys over 64 or
    values over 1,024 characters get 400 with one record, the event id left out; a metadata
    key that is a secret is logged redacted."""
    with gateway(tmp_path) as gw:
        long_id = gw.post("/v1/chat/completions", CHAT, headers={"cf-aig-event-id": "e" * 257})
        spaced = gw.post("/v1/chat/completions", CHAT, headers={"cf-aig-event-id": "a b"})
        long_key = gw.post(
            "/v1/chat/completions", CHAT, headers={"cf-aig-metadata": f'{{"{"k" * 65}": 1}}'}
        )
        long_value = gw.post(
            "/v1/chat/completions", CHAT, headers={"cf-aig-metadata": f'{{"k": "{"v" * 1025}"}}'}
        )
        secret_key = gw.post(
            "/v1/chat/completions",
            CHAT,
            headers={"cf-aig-metadata": f'{{"{GITHUB_TOKEN}": 1}}', "cf-aig-event-id": "e-ok"},
        )
    assert [a.status for a in (long_id, spaced, long_key, long_value, secret_key)] == [
        400,
        400,
        400,
        400,
        200,
    ]
    assert long_id.json()["error"]["message"] == (
        "cf-aig-event-id must be 1-256 printable ASCII characters"
    )
    assert long_key.json()["error"]["message"] == (
        "cf-aig-metadata keys may have 64 characters and string values 1024"
    )
    records = read_records(gw.logs)
    assert [(r["StatusCode"], r.get("EventId")) for r in records] == [
        (400, None),
        (400, None),
        (400, None),
        (400, None),
        (200, "e-ok"),
    ]
    assert GITHUB_TOKEN not in orjson.dumps(records[4]["Metadata"]).decode()
    assert list(records[4]["Metadata"].values()) == [1]
