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


AZURE_KEY = base64.b64encode(bytes(range(7, 71))).decode()  # 88 characters
BASIC = base64.b64encode(b"alice:Wonderland42").decode()
B64_AWS = base64.b64encode(b"aws key AKIAIOSFODNN7EXAMPLE").decode()
B64_MAIL = base64.urlsafe_b64encode(b"mail me at jane.roe@example.com").decode()
# base64 wrapped at 76 characters (MIME), the key cut by the first line break
B64_WRAPPED = base64.encodebytes(b"x" * 47 + b" aws key AKIAIOSFODNN7EXAMPLE, then more").decode()

# (text, [(category, the exact text that must be redacted)])
FOUND: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "hook https://hooks.slack.com/services/T0ABCDEFGH/B0ABCDEFGHI/abcdefghijklmnopqrstuvwx ok",
        [
            (
                "SLACK_TOKEN",
                "https://hooks.slack.com/services/T0ABCDEFGH/B0ABCDEFGHI/abcdefghijklmnopqrstuvwx",
            )
        ],
    ),
    (
        "stripe rk_live_51Hx9aBcDeFgHiJkLmNoPqRs.",
        [("PASSWORD_ASSIGNMENT", "rk_live_51Hx9aBcDeFgHiJkLmNoPqRs")],
    ),
    (
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        [("PASSWORD_ASSIGNMENT", "sk_test_4eC39HqLyjWDarjtT1zdp7dc")],
    ),
    (
        "key AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        [("PASSWORD_ASSIGNMENT", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe")],
    ),
    ("postgres://admin:S3cr3tP4ss@db.internal/app", [("PASSWORD_ASSIGNMENT", "S3cr3tP4ss")]),
    ("mysql://root:hunter2!x@localhost:3306/db", [("PASSWORD_ASSIGNMENT", "hunter2!x")]),
    (
        "postgresql://svc:pa@ss:w0rd@10.0.0.5:5432/x",
        [("PASSWORD_ASSIGNMENT", "pa@ss:w0rd"), ("IP_ADDRESS", "10.0.0.5")],
    ),
    ("mongodb+srv://app:Mng0Pw@cluster0.ab1cd.mongodb.net/", [("PASSWORD_ASSIGNMENT", "Mng0Pw")]),
    ("amqp://guest:Gu3st-pw@rabbit:5672", [("PASSWORD_ASSIGNMENT", "Gu3st-pw")]),
    ("redis://:R3disPw0rd@cache:6379/0", [("PASSWORD_ASSIGNMENT", "R3disPw0rd")]),
    ("rediss://default:Xy9zAb3d@redis.example.com", [("PASSWORD_ASSIGNMENT", "Xy9zAb3d")]),
    ("see https://bob:Sup3rS3cret@example.com/x", [("PASSWORD_ASSIGNMENT", "Sup3rS3cret")]),
    (
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={AZURE_KEY};EndpointSuffix=core.windows.net",
        [("PASSWORD_ASSIGNMENT", AZURE_KEY)],
    ),
    ("SSN 123 45 6789.", [("NATIONAL_ID", "123 45 6789")]),
    ("Passport No.: 123456789", [("NATIONAL_ID", "123456789")]),
    ("my passport number is 987654321.", [("NATIONAL_ID", "987654321")]),
    (f"Authorization: Basic {BASIC}\r\n", [("PASSWORD_ASSIGNMENT", BASIC)]),
    ("glpat-xYz12AbC34dEf56GhI78j", [("PASSWORD_ASSIGNMENT", "glpat-xYz12AbC34dEf56GhI78j")]),
    (
        "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",
        [("PASSWORD_ASSIGNMENT", "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh")],
    ),
    (
        "SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN0PQ",
        [
            (
                "PASSWORD_ASSIGNMENT",
                "SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN0PQ",
            )
        ],
    ),
    (f"blob {B64_AWS} done", [("AWS_ACCESS_KEY", B64_AWS)]),
    (f"blob:{B64_MAIL}", [("EMAIL", B64_MAIL)]),
    (f"mime:\n{B64_WRAPPED}--", [("AWS_ACCESS_KEY", B64_WRAPPED.rstrip())]),
    ("cb?to=jane%40example.com&x=1", [("EMAIL", "jane%40example.com")]),
    ("q=password%3DTr0ub4dor%263x", [("PASSWORD_ASSIGNMENT", "Tr0ub4dor%263x")]),
]

NOT_FOUND = [
    "https://example.com/a/b?c=d and http://localhost:8080/x@y and ssh://example.org:22/o/r",
    "postgres://user:${DB_PASSWORD}@db/app or mysql://root:<password>@localhost/x",
    "not an SSN: 1 123 45 6789, 000 12 3456, 666 12 3456; order 123456789 shipped",
    "basic idea, basically fine; Basic usage is simple; Basic QUJDREVGR0g=",
    "sk_test_abcdefghijklmnop and hf_download_model_from_the_hub_now_ok",
    "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "png iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJ"
    "RU5ErkJggg==",
    "escaped path /files/annual%20report%202025.pdf",
]


@pytest.mark.parametrize(("text", "expected"), FOUND)
def test_new_formats_are_found_with_exact_spans(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(f.category, text[f.start : f.end]) for f in scan(text)] == expected


@pytest.mark.parametrize("text", NOT_FOUND)
def test_look_alikes_of_the_new_formats_are_not_findings(text: str) -> None:
    assert scan(text) == []
