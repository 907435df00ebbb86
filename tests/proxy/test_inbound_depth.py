"""The depth check's shortcut: text with no more opening brackets than the limit cannot
nest deeper, so the walk is skipped; anything else is still walked and refused."""

from __future__ import annotations

import orjson
import pytest

from proxy.errors import RequestRefused
from proxy.inbound import check_depth, few_brackets


def nested(levels: int) -> bytes:
    return b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1)


def test_few_brackets_is_exact_at_the_limit_and_counts_brackets_in_strings() -> None:
    assert few_brackets(nested(64), 64)
    assert not few_brackets(nested(65), 64)
    assert not few_brackets(b'{"text": "' + b"[" * 64 + b'"}', 64)  # only ever too careful


@pytest.mark.parametrize("levels", [65, 200])
def test_bodies_past_the_limit_are_refused_with_or_without_their_bytes(levels: int) -> None:
    raw = nested(levels)
    body = orjson.loads(raw)
    for given in (raw, None):
        with pytest.raises(RequestRefused) as info:
            check_depth(body, 64, given)
        assert str(info.value) == "the request body nests deeper than 64 levels"


def test_a_shallow_body_with_many_brackets_in_strings_passes() -> None:
    raw = orjson.dumps({"messages": [{"content": "[" * 500 + "{" * 500}]})
    check_depth(orjson.loads(raw), 64, raw)  # walked (the shortcut cannot vouch), not deep
