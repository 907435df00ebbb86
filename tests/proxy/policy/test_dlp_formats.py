"""DLP formats added after the first release: values of any length, vendor tokens,
credentials in URLs and headers, spaced SSNs, passport numbers, and secrets encoded once in
base64 or URL encoding. Each case names the exact span that must be redacted."""

from __future__ import annotations

import base64

import pytest

from proxy.policy.dlp import redact, scan

# A one-line base64 private key (1,640 characters), as pasted into an env file.
LONG_KEY = base64.b64encode(bytes(range(256)) * 4 + bytes(range(206))).decode()


@pytest.mark.parametrize("name", ["password", "secret", "private_key", "api_key", "token"])
def test_an_assigned_value_is_redacted_whatever_its_length(name: str) -> None:
    """Values were cut at 200 characters: the rest of a long key reached the provider."""
    assert len(LONG_KEY) == 1640
    assert redact(f"{name}={LONG_KEY} done") == f"{name}=[REDACTED:PASSWORD_ASSIGNMENT] done"


@pytest.mark.parametrize(
    "token",
    [
        "ghp_" + "a1B2c3D4e5" * 30,
        "sk-proj-" + "Ab3dEf6hIj" * 30,
        "sk-ant-api03-" + "Ab3dEf6hIj" * 30,
        "xoxb-123456789012-" + "AbCdEfGh12" * 30,
    ],
)
def test_a_token_longer_than_250_characters_is_redacted_whole(token: str) -> None:
    (finding,) = scan(f"use {token} now")
    assert (finding.start, finding.end) == (4, 4 + len(token))
