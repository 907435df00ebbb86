"""The request and model types of a row: as logged (Cloudflare's logs API), else the kind
its endpoint names (aigw's gateway, Logpush), else null."""

from __future__ import annotations

import duckdb
import pytest

from core.warehouse.reads import DERIVED_DIMENSIONS


def _kinds(
    endpoint: str | None, request_type: str | None, model_type: str | None
) -> tuple[str | None, ...]:
    con = duckdb.connect()
    try:
        kinds = f"{DERIVED_DIMENSIONS['request_type']}, {DERIVED_DIMENSIONS['model_type']}"
        row = con.execute(
            f"SELECT {kinds} FROM (SELECT ?::VARCHAR AS endpoint, "  # noqa: S608 - constants
            "?::VARCHAR AS request_type, ?::VARCHAR AS model_type)",
            [endpoint, request_type, model_type],
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize(
    ("endpoint", "kind"),
    [
        ("chat/completions", "chat"),
        ("v1/chat/completions", "chat"),
        ("compat/chat/completions", "chat"),
        ("completions", "chat"),
        ("v1/messages", "chat"),
        ("responses", "chat"),
        ("embeddings", "embeddings"),
        ("v1/embeddings", "embeddings"),
        ("images/generations", "images"),
        ("openai/images/edits", "images"),
        ("audio/transcriptions", "audio"),
        ("audio/speech", "audio"),
        ("v1/messages/count_tokens", None),  # counts tokens, answers nothing
        ("workers-ai/@cf/meta/llama-3.1-8b-instruct", None),  # a model path names no kind
        ("mychat/completionsx", None),
        (None, None),
    ],
)
def test_a_row_without_types_takes_the_kind_of_its_endpoint(
    endpoint: str | None, kind: str | None
) -> None:
    """Both types come from the endpoint's last path segments when nothing was logged."""
    assert _kinds(endpoint, None, None) == (kind, kind)


def test_logged_types_win_over_the_endpoint() -> None:
    """A REST record's ``universal`` request of a chat model stays as logged."""
    assert _kinds("embeddings", "universal", "chat") == ("universal", "chat")
    assert _kinds("embeddings", None, "chat") == ("embeddings", "chat")
