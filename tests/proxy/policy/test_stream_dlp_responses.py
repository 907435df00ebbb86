"""Response DLP on an OpenAI Responses API stream (the simulated provider's real event
shapes, fed to ``ResponsesStreamDlp`` in 7-byte pieces): a secret split across text deltas
and a password in a function call's arguments never reach the client, and the deltas, the
``.done`` events and ``response.completed`` agree; ``flag`` passes the bytes unchanged; a
stream cut off still sends its held text, redacted. And ``SseUsage`` reads such a stream's
usage from its last event."""

from __future__ import annotations

from typing import Any

import orjson

from proxy.policy import ResponsesStreamDlp
from proxy.providers import SseUsage
from sim.responses_api import openai_response_stream
from sim.shapes import Answer, ToolCall
from sim.usage import Usage

SECRET = "AKIAIOSFODNN7EXAMPLE"  # noqa: S105 - AWS documentation example key
TEXT = f"Your key is {SECRET} and the rest of this answer is long enough to stream. " * 3
ARGUMENTS = {"user": "ana", "note": "password=Sup3rS3cretPassw0rd!"}


def stream(*, truncated: bool = False) -> list[bytes]:
    answer = Answer(
        id="resp_1",
        created=0,
        model="gpt-4o-mini",
        text=TEXT,
        usage=Usage(input_tokens=1060, output_tokens=200, cache_read_tokens=1024),
        truncated=truncated,
        tool_call=ToolCall("toolu_1", "save", ARGUMENTS),
    )
    return openai_response_stream(answer, reasoning=16)


def relay(events: list[bytes], mode: str, *, cut: int | None = None) -> tuple[bytes, Any]:
    dlp = ResponsesStreamDlp(mode)
    data = b"".join(events[:cut])
    out = b"".join(dlp.process(data[i : i + 7]) for i in range(0, len(data), 7))
    return out + dlp.finish(), dlp


def parsed(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in data.splitlines() if line.startswith(b"data: ")]


def test_text_and_arguments_are_redacted_everywhere_they_appear() -> None:
    out, dlp = relay(stream(), "redact")
    events = parsed(out)
    assert SECRET.encode() not in out
    assert b"Sup3rS3cret" not in out
    kinds = [e["type"] for e in events]
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    [done] = [e["text"] for e in events if e["type"] == "response.output_text.done"]
    final = events[-1]["response"]
    assert kinds[-1] == "response.completed"
    assert deltas == done == final["output"][0]["content"][0]["text"]
    assert deltas == TEXT.replace(SECRET, "[REDACTED:AWS_ACCESS_KEY]")
    arguments = [
        e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
    ]
    [whole] = [
        e["arguments"] for e in events if e["type"] == "response.function_call_arguments.done"
    ]
    assert len(arguments) == 1  # held, then sent whole in one delta
    assert arguments[0] == whole == final["output"][1]["arguments"]
    assert orjson.loads(whole)["user"] == "ana"
    assert "REDACTED" in orjson.loads(whole)["note"]
    assert (dlp.action, dlp.categories) == ("redact", ("AWS_ACCESS_KEY", "PASSWORD_ASSIGNMENT"))


def test_flag_mode_passes_the_bytes_unchanged() -> None:
    events = stream()
    out, dlp = relay(events, "flag")
    assert out == b"".join(events)
    assert (dlp.action, dlp.categories) == ("flag", ("AWS_ACCESS_KEY", "PASSWORD_ASSIGNMENT"))


def test_a_stream_cut_off_sends_its_held_text_redacted() -> None:
    """Cut after the sixth event (two text deltas, the key in the first): the held text
    comes out at the end as one more delta, redacted."""
    events = stream()
    out, _ = relay(events, "redact", cut=6)
    sent = "".join(e["delta"] for e in parsed(out) if e.get("delta"))
    original = "".join(e["delta"] for e in parsed(b"".join(events[:6])) if e.get("delta"))
    assert SECRET.encode() not in out
    assert sent == original.replace(SECRET, "[REDACTED:AWS_ACCESS_KEY]")


def test_usage_comes_from_the_last_event() -> None:
    """1060 input tokens (1024 cached), 200 + 16 reasoning output tokens; the text seen
    counts the deltas only (text and arguments)."""
    for truncated, last in ((False, "response.completed"), (True, "response.incomplete")):
        tracker = SseUsage("openai")
        tracker.feed(b"".join(stream(truncated=truncated)))
        usage = tracker.usage
        assert usage is not None
        assert (usage.tokens_in, usage.tokens_out, usage.cache_read) == (1060, 216, 1024)
        assert tracker.finished == last
        assert tracker.text_chars == len(TEXT) + len(orjson.dumps(ARGUMENTS))
