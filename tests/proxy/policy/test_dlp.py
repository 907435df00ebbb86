"""DLP: exact findings per category (and the look-alikes that must not match), redaction,
body inspection in every mode, the streaming redactor, and that no result, repr or error
ever carries matched text."""

from __future__ import annotations

import copy
import string
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import GatewayConfigError
from proxy.policy.dlp import (
    DLP_CATEGORIES,
    DlpResult,
    Finding,
    StreamRedactor,
    inspect_request,
    inspect_response,
    redact,
    scan,
)
from proxy.policy.dlp_detectors import luhn_ok, shannon_entropy

AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # noqa: S105 - AWS docs example
GITHUB = "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
GITHUB_PAT = "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVW"
SLACK = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
OPENAI = "sk-proj-Ab3dEf6hIj9lMn2pQr5tUv8xYz1"
ANTHROPIC = "sk-ant-api03-Ab3dEf6hIj9lMn2pQr5tUv8xYz1"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----"
)

FOUND: list[tuple[str, list[tuple[str, int, int]]]] = [
    ("Mail jane.roe+ops@example.co.uk today.", [("EMAIL", 5, 31)]),
    (
        "Call +44 20 7946 0958 or (415) 555-2671 or 415.555.2671.",
        [("PHONE", 5, 21), ("PHONE", 25, 39), ("PHONE", 43, 55)],
    ),
    (
        "Visa 4111 1111 1111 1111, MC 5555-5555-5555-4444, Amex 378282246310005.",
        [("CARD_NUMBER", 5, 24), ("CARD_NUMBER", 29, 48), ("CARD_NUMBER", 55, 70)],
    ),
    ("Card 4111111111111111 exp 12/27 cvv 123", [("CARD_NUMBER", 5, 21)]),
    (
        "IBAN DE89 3704 0044 0532 0130 00 and GB82WEST12345698765432.",
        [("IBAN", 5, 32), ("IBAN", 37, 59)],
    ),
    ("SSN 123-45-6789.", [("NATIONAL_ID", 4, 15)]),
    (
        "Hosts 192.168.1.10, 2001:db8::8a2e:370:7334 and fe80::1.",
        [("IP_ADDRESS", 6, 18), ("IP_ADDRESS", 20, 43), ("IP_ADDRESS", 48, 55)],
    ),
    (
        f"aws_access_key_id={AWS_ID}\naws_secret_access_key={AWS_SECRET}",
        [("AWS_ACCESS_KEY", 18, 38), ("AWS_SECRET_KEY", 61, 101)],
    ),
    (f"creds {AWS_ID} {AWS_SECRET}", [("AWS_ACCESS_KEY", 6, 26), ("AWS_SECRET_KEY", 27, 67)]),
    (f"token {GITHUB} and {GITHUB_PAT}", [("GITHUB_TOKEN", 6, 46), ("GITHUB_TOKEN", 51, 132)]),
    (f"slack {SLACK} ok", [("SLACK_TOKEN", 6, 62)]),
    (f"keys {OPENAI} and {ANTHROPIC}", [("OPENAI_KEY", 5, 40), ("ANTHROPIC_KEY", 45, 85)]),
    (f"{PEM}\nthanks", [("PRIVATE_KEY", 0, 94)]),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA", [("PRIVATE_KEY", 0, 48)]),
    (f"auth {JWT} end", [("JWT", 5, 113)]),
    (
        'config: password=Tr0ub4dor&3x, "api_key": "q8Zr2LmX9vKp", secret: N0tS0S3cr3t!',
        [
            ("PASSWORD_ASSIGNMENT", 17, 29),
            ("PASSWORD_ASSIGNMENT", 43, 55),
            ("PASSWORD_ASSIGNMENT", 66, 78),
        ],
    ),
    # The more specific category wins an overlap: the key, not "a password".
    (f"password={OPENAI}", [("OPENAI_KEY", 9, 44)]),
]

NOT_FOUND: list[str] = [
    "Not phones: 123-456-7890, order 5551234567, dated 2025-09-14, version 2.3.1.",
    "Luhn-invalid 4111 1111 1111 1112, all zeros 0000 0000 0000 0000, no network 1234567812345670.",
    "Bad check digits DE88 3704 0044 0532 0130 00 and GB00WEST12345698765432.",
    "Never issued: 999-45-6789 666-45-6789 000-12-3456 123-00-4567 123-45-0000.",
    "Not IPs: 256.1.1.1, 01.02.03.04, 1.2.3, a[1::2], 12:30:45, v1.2.3.4.",
    "A git sha 4b825dc642cb6eb9a060e54bf8d69288fbee4904 is not an AWS secret key.",
    "Not keys: sk-learn, risk-based-approach-for-everything, sk-this-is-not-a-real-key.",
    "Header without alg: eyJub3QiOiJqd3QifQ.eyJhIjoxfQ.c2lnbmF0dXJl",
    "password=hunter2, api_key=os.environ, token: YOUR_TOKEN_HERE, password = ********, "
    "primary_key: user_id_42, monkey=BananaBread9",
    "Already redacted: password=[REDACTED:PASSWORD_ASSIGNMENT] [REDACTED:EMAIL]",
]


@pytest.mark.parametrize(("text", "expected"), FOUND)
def test_scan_finds_exact_categories_and_spans(
    text: str, expected: list[tuple[str, int, int]]
) -> None:
    assert scan(text) == [Finding(*f) for f in expected]


@pytest.mark.parametrize("text", NOT_FOUND)
def test_look_alikes_that_fail_their_checks_are_not_findings(text: str) -> None:
    assert scan(text) == []


def test_every_category_is_exercised_and_named_as_documented() -> None:
    seen = {cat for _, findings in FOUND for cat, _, _ in findings}
    assert seen == set(DLP_CATEGORIES)
    assert len(DLP_CATEGORIES) == 15


def test_redact_replaces_each_finding_with_its_placeholder() -> None:
    text = f"Mail jane@example.com, card 4111 1111 1111 1111, key {OPENAI}."
    assert redact(text) == (
        "Mail [REDACTED:EMAIL], card [REDACTED:CARD_NUMBER], key [REDACTED:OPENAI_KEY]."
    )
    assert redact("password=Tr0ub4dor&3x") == "password=[REDACTED:PASSWORD_ASSIGNMENT]"
    assert redact("nothing here") == "nothing here"


def test_redact_uses_the_findings_it_is_given() -> None:
    assert redact("abc def", [Finding("EMAIL", 4, 7)]) == "abc [REDACTED:EMAIL]"


def test_redacting_twice_changes_nothing_more() -> None:
    once = redact(f"{PEM} {JWT} jane@example.com password=Tr0ub4dor&3x")
    assert redact(once) == once


def test_luhn_and_entropy_helpers() -> None:
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0


# ---- bodies --------------------------------------------------------------------------

CHAT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "user": "u-17",
    "messages": [
        {"role": "system", "content": "You help with billing."},
        {"role": "user", "content": f"My card is 4111 1111 1111 1111 and key {GITHUB}"},
    ],
}


def test_off_mode_scans_nothing() -> None:
    assert inspect_request(CHAT, "off") == DlpResult(None, (), CHAT)
    assert inspect_request(CHAT, "off").body is CHAT


@pytest.mark.parametrize("mode", ["flag", "block"])
def test_flag_and_block_report_categories_and_forward_the_body_unchanged(mode: str) -> None:
    result = inspect_request(CHAT, mode)
    assert result.action == mode
    assert result.categories == ("CARD_NUMBER", "GITHUB_TOKEN")
    assert result.body is CHAT


def test_redact_mode_returns_a_redacted_copy_and_leaves_the_input_alone() -> None:
    before = copy.deepcopy(CHAT)
    result = inspect_request(CHAT, "redact")
    assert before == CHAT
    assert result.action == "redact"
    assert result.categories == ("CARD_NUMBER", "GITHUB_TOKEN")
    assert result.body == {
        "model": "gpt-4o-mini",
        "user": "u-17",
        "messages": [
            {"role": "system", "content": "You help with billing."},
            {
                "role": "user",
                "content": "My card is [REDACTED:CARD_NUMBER] and key [REDACTED:GITHUB_TOKEN]",
            },
        ],
    }


@pytest.mark.parametrize("mode", ["flag", "redact", "block"])
def test_a_clean_body_has_no_action_and_is_passed_through(mode: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Hello there"}]}
    assert inspect_request(body, mode) == DlpResult(None, (), body)
    assert inspect_request(body, mode).body is body


def test_anthropic_request_system_and_tool_result_are_redacted() -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "system": "Contact ops@example.com on failure.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": f"env: {AWS_ID}"}
                ],
            }
        ],
    }
    result = inspect_request(body, "redact")
    assert result.categories == ("AWS_ACCESS_KEY", "EMAIL")
    assert result.body["system"] == "Contact [REDACTED:EMAIL] on failure."
    assert result.body["messages"][0]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": "env: [REDACTED:AWS_ACCESS_KEY]",
    }


def test_responses_are_inspected_for_both_api_shapes() -> None:
    openai = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "SSN 123-45-6789"}}]
    }
    anthropic = {"content": [{"type": "text", "text": "Reach me at +1 415 555 2671"}]}
    assert inspect_response(openai, "flag").categories == ("NATIONAL_ID",)
    redacted = inspect_response(anthropic, "redact")
    assert redacted.body == {"content": [{"type": "text", "text": "Reach me at [REDACTED:PHONE]"}]}


def test_an_unknown_mode_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(GatewayConfigError) as err:
        inspect_request(CHAT, "mask")
    assert str(err.value) == "unknown DLP mode 'mask': use off, flag, redact or block"


def test_results_and_reprs_never_contain_the_matched_secret() -> None:
    secrets = ["4111 1111 1111 1111", GITHUB]
    for mode in ("flag", "redact", "block"):
        text = repr(inspect_request(CHAT, mode)) + repr(scan(CHAT["messages"][1]["content"]))
        assert not any(s in text for s in secrets)
    redactor = StreamRedactor()
    redactor.feed(f"key {GITHUB} " + "x " * 200)
    assert GITHUB not in repr(redactor)
    assert repr(redactor) == "StreamRedactor(categories=['GITHUB_TOKEN'])"


# ---- streaming -----------------------------------------------------------------------


def _stream(text: str, cuts: list[int], **kwargs: int) -> tuple[str, StreamRedactor]:
    redactor = StreamRedactor(**kwargs)
    out, prev = [], 0
    for cut in [*sorted(cuts), len(text)]:
        out.append(redactor.feed(text[prev:cut]))
        prev = cut
    out.append(redactor.flush())
    return "".join(out), redactor


def test_a_secret_split_across_deltas_is_still_redacted() -> None:
    text = "Here is the key: " + OPENAI + " keep it safe. " + "Filler words. " * 30
    split_inside_key = text.index(OPENAI) + 10
    out, redactor = _stream(text, [split_inside_key])
    assert out == redact(text)
    assert OPENAI[:12] not in out
    assert redactor.categories == {"OPENAI_KEY"}


def test_small_deltas_give_the_same_text_as_redacting_the_whole() -> None:
    text = (
        "Summary for jane@example.com: card 4111 1111 1111 1111 was charged. "
        + "Nothing else to report today. " * 20
        + f"Deploy with password={'Tr0ub4dor&3x'} and token {GITHUB}."
    )
    out, redactor = _stream(text, list(range(3, len(text), 3)))
    assert out == redact(text)
    assert redactor.categories == {"EMAIL", "CARD_NUMBER", "PASSWORD_ASSIGNMENT", "GITHUB_TOKEN"}


def test_a_long_jwt_and_a_private_key_block_are_held_until_complete() -> None:
    long_jwt = JWT + "x" * 600  # a 700-character token: longer than the hold-back
    key = "-----BEGIN RSA PRIVATE KEY-----\n" + "QUJD\n" * 400 + "-----END RSA PRIVATE KEY-----"
    text = f"token {long_jwt} then\n{key}\ndone " + "ok " * 100
    out, _ = _stream(text, list(range(7, len(text), 7)))
    assert out == redact(text)
    assert out.startswith("token [REDACTED:JWT] then\n[REDACTED:PRIVATE_KEY]\ndone ")


def test_a_finding_with_spaces_is_not_split_where_a_word_starts() -> None:
    """Regression: backing up to a word start once cut a card number in two."""
    text = "jane@example.com jane@example.com. 4111 1111 1111 1111. 10.0.0.1 " + "x " * 120
    out, _ = _stream(text, [], step=1)
    assert out == redact(text)
    assert out.count("[REDACTED:CARD_NUMBER]") == 1


def test_text_is_released_in_whole_words_as_the_stream_advances() -> None:
    redactor = StreamRedactor(hold_back=16, step=8)
    assert redactor.feed("short ") == ""  # within the hold-back
    # 66 characters: the last 16 are held, and the word the cut falls in ("wo|rds").
    assert redactor.feed("words " * 10) == "short " + "words " * 7
    assert redactor.flush() == "words " * 3


def test_flush_empties_the_redactor_for_reuse() -> None:
    redactor = StreamRedactor()
    assert redactor.feed("mail a@example.com") == ""
    assert redactor.flush() == "mail [REDACTED:EMAIL]"
    assert redactor.flush() == ""
    assert redactor.feed("x") == ""
    assert redactor.flush() == "x"


# ---- properties ----------------------------------------------------------------------

_FILLER = st.text(alphabet=string.ascii_letters + " ,;!?", max_size=40)


@st.composite
def _cards(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["4", "51", "55", "34", "37", "6011", "65", "2221", "2720"]))
    length = draw(st.sampled_from([16] if prefix[0] in "256" else [15, 16]))
    body = prefix + "".join(
        draw(st.sampled_from(string.digits)) for _ in range(length - len(prefix) - 1)
    )
    check = next(d for d in string.digits if luhn_ok(body + d))
    return body + check


@st.composite
def _keys(draw: st.DrawFn) -> str:
    token = draw(st.text(alphabet=string.ascii_letters + string.digits, min_size=36, max_size=36))
    token += "a1"  # keys carry letters and digits
    prefix = draw(st.sampled_from(["ghp_", "sk-proj-", "sk-ant-api03-", "xoxb-"]))
    return prefix + (token[:36] if prefix == "ghp_" else token)


@settings(max_examples=150, deadline=None)
@given(before=_FILLER, after=_FILLER, card=_cards())
def test_redacted_text_never_contains_a_generated_card_number(
    before: str, after: str, card: str
) -> None:
    out = redact(f"{before} {card} {after}")
    assert card not in out
    assert "[REDACTED:CARD_NUMBER]" in out


@settings(max_examples=150, deadline=None)
@given(before=_FILLER, after=_FILLER, secret=_keys())
def test_redacted_text_never_contains_a_generated_key(before: str, after: str, secret: str) -> None:
    out = redact(f"{before} {secret} {after}")
    assert secret not in out
    assert secret[-12:] not in out


_PIECES = [
    "jane@example.com",
    "4111 1111 1111 1111",
    "DE89 3704 0044 0532 0130 00",
    "+44 20 7946 0958",
    "123-45-6789",
    "10.0.0.1",
    GITHUB,
    OPENAI,
    ANTHROPIC,
    SLACK,
    JWT,
    "password=Tr0ub4dor&3x",
    f"{AWS_ID} {AWS_SECRET}",
    "lorem",
    "ipsum dolor",
    "sit amet,",
    "1999",
    "\n",
]


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(_PIECES), min_size=1, max_size=40),
    seps=st.lists(st.sampled_from([" ", "  ", ". ", "\n", ", "]), min_size=40, max_size=40),
    cuts=st.lists(st.integers(0, 2000), max_size=60),
    hold_back=st.sampled_from([64, 256]),
    step=st.sampled_from([1, 8, 64]),
)
def test_streamed_output_equals_redacting_the_whole_text(
    pieces: list[str], seps: list[str], cuts: list[int], hold_back: int, step: int
) -> None:
    """Every piece is shorter than the hold-back (or has no whitespace), as documented."""
    text = "".join(p + s for p, s in zip(pieces, seps, strict=False))
    cuts = [c for c in cuts if c < len(text)]
    out, redactor = _stream(text, cuts, hold_back=hold_back, step=step)
    assert out == redact(text)
    assert redactor.categories == {f.category for f in scan(text)}


def test_tool_call_arguments_in_an_answer_are_redacted_as_valid_json() -> None:
    """A secret the model puts in a tool call is caught like one in its text."""
    arguments = '{"recipient": "ana@example.com", "subject": "hi"}'
    body = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c", "function": {"name": "mail", "arguments": arguments}}
                    ],
                },
            }
        ]
    }
    result = inspect_response(body, "redact")
    assert (result.action, result.categories) == ("redact", ("EMAIL",))
    redacted_arguments = result.body["choices"][0]["message"]["tool_calls"][0]["function"][
        "arguments"
    ]
    assert orjson.loads(redacted_arguments) == {"recipient": "[REDACTED:EMAIL]", "subject": "hi"}
    assert inspect_response(body, "flag").categories == ("EMAIL",)


def test_a_secret_named_by_its_json_key_is_found() -> None:
    """``{"password": "…"}`` is a password assignment even though the value alone is not."""
    arguments = '{"password": "Tr0ub4dor9xQ", "user": "ana"}'
    openai = {
        "choices": [
            {"message": {"tool_calls": [{"function": {"name": "login", "arguments": arguments}}]}}
        ]
    }
    anthropic = {
        "content": [
            {"type": "tool_use", "id": "t", "name": "f", "input": {"api_key": "Zx9vQ2mN8pL4kR7t"}}
        ]
    }
    redacted = inspect_response(openai, "redact")
    call = redacted.body["choices"][0]["message"]["tool_calls"][0]
    assert orjson.loads(call["function"]["arguments"]) == {
        "password": "[REDACTED:PASSWORD_ASSIGNMENT]",
        "user": "ana",
    }
    assert inspect_response(anthropic, "redact").body["content"][0]["input"] == {
        "api_key": "[REDACTED:PASSWORD_ASSIGNMENT]"
    }


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (  # a secret as the key, its secret as the value
            f'{{"{AWS_ID}": "{AWS_SECRET}"}}',
            '{"[REDACTED:AWS_ACCESS_KEY]":"[REDACTED:AWS_SECRET_KEY]"}',
        ),
        ('{"ana@example.com": 5}', '{"[REDACTED:EMAIL]":5}'),  # a key alone
        (  # numbers keep their text, an escaped @ is decoded, duplicate keys stay
            '{"n": 1e400, "big": 18446744073709551617, "e": "ana\\u0040example.com", "e": "x"}',
            '{"n":1e400,"big":18446744073709551617,"e":"[REDACTED:EMAIL]","e":"x"}',
        ),
        ('{"a": "ana@example.com", "a": "x"}', '{"a":"[REDACTED:EMAIL]","a":"x"}'),
    ],
)
def test_tool_arguments_keys_numbers_escapes_and_duplicates(arguments: str, expected: str) -> None:
    """What a decoder could hide or change: keys, exact numbers, escapes, repeated keys."""
    body = {"choices": [{"message": {"tool_calls": [{"function": {"arguments": arguments}}]}}]}
    result = inspect_response(body, "redact")
    assert result.body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == (
        expected
    )
