"""The gateway logs Anthropic's 1-hour cache writes apart (``Metrics.cacheWrite1hTokens``),
prices them at their own rate, and its record loads with the split. Simulated provider on
127.0.0.1: a 5,000-character system block marked ``"ttl": "1h"`` then a 4,000-character one
marked for 5 minutes, and an 8-character user turn: 2,252 input tokens, of which 2,250 are
written, 1,250 of them for an hour."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest.records import ROW_FIELDS, normalize
from models.request_pricing import RequestPricer, Usage
from tests.proxy.gateway_fixtures import GATEWAY_KEYS, gateway, read_records

SYSTEM = [
    {"type": "text", "text": "s" * 5000, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    {"type": "text", "text": "t" * 4000, "cache_control": {"type": "ephemeral"}},
]
BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 50,
    "system": SYSTEM,
    "messages": [{"role": "user", "content": "Hi"}],
}


@pytest.mark.parametrize("stream", [False, True])
def test_one_hour_cache_writes_are_logged_and_priced_apart(tmp_path: Path, stream: bool) -> None:
    """The answer says 1,000 5-minute and 1,250 1-hour writes; the record carries 2,250
    writes of which 1,250 for an hour, its cost prices them at their own rates, and the
    warehouse row keeps the split."""
    with gateway(tmp_path) as gw:
        reply = gw.post(
            "/v1/messages",
            {**BODY, "stream": stream},
            key=None,
            headers={"x-api-key": GATEWAY_KEYS["team-a"]},
        )
    assert reply.status == 200
    if not stream:
        assert reply.json()["usage"]["cache_creation"] == {
            "ephemeral_5m_input_tokens": 1_000,
            "ephemeral_1h_input_tokens": 1_250,
        }
    [record] = read_records(gw.logs)
    metrics: dict[str, Any] = record["Metrics"]
    assert (
        metrics["tokensIn"],
        metrics["cacheReadTokens"],
        metrics["cacheWriteTokens"],
        metrics["cacheWrite1hTokens"],
    ) == (2_252, 0, 2_250, 1_250)
    at = datetime.fromtimestamp(int(record["Timestamp"]) / 1e9, UTC)
    pricer = RequestPricer()
    usage = Usage(2_252, metrics["tokensOut"], 0, 2_250, 1_250)
    assert metrics["cost"] == pricer.cost("anthropic", "claude-haiku-4-5", at, usage)
    all_5_minutes = pricer.cost("anthropic", "claude-haiku-4-5", at, Usage(2_252, 0, 0, 2_250))
    one_hour_more = pricer.cost(
        "anthropic", "claude-haiku-4-5", at, Usage(2_252, 0, 0, 2_250, 1_250)
    )
    assert all_5_minutes is not None and one_hour_more is not None
    # $1 input, $1.25 5-minute, $2 1-hour writes per million: 1,250 x $0.75 / 1M more
    assert one_hour_more - all_5_minutes == pytest.approx(0.0009375, abs=1e-12)
    row = dict(zip(ROW_FIELDS, normalize(record, orjson.dumps(record)), strict=True))
    assert (row["cache_write_tokens"], row["cache_write_1h_tokens"]) == (2_250, 1_250)
