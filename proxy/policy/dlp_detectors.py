"""The DLP detectors: one compiled regex, a cheap gate and a validator per shape.

Private to ``proxy.policy.dlp`` (which resolves overlaps and redacts). Each regex starts with a
literal or a character class so ``re`` can skip ahead quickly; left word boundaries are
lookbehinds placed after the first character for the same reason. A detector runs only when
its gate (substrings of the text, or of the lower-cased text) says it could match.

What counts (and what deliberately does not):

* EMAIL: ``local@domain.tld``. PHONE: ``+`` and 8-15 digits in groups, or North American
  ``(NXX) NXX-XXXX`` / ``NXX-NXX-XXXX`` / ``NXX.NXX.XXXX`` (N = 2-9); bare digit runs are
  not phones. CARD_NUMBER: 13-19 digits, optionally grouped by spaces or dashes, with a
  major-network prefix (2221-2720, 3, 4, 5, 6) and a valid Luhn check digit. IBAN:
  upper-case country code, check digits 02-98, 15-34 characters, mod-97 == 1.
  NATIONAL_ID: US SSN ``AAA-GG-SSSS`` or ``AAA GG SSSS`` (not one of more digit groups)
  without the never-issued ranges (area 000, 666, 900-999; group 00; serial 0000); US
  passports in ``dlp_credentials``. IP_ADDRESS: dotted IPv4 with octets 0-255 and no
  leading zeros; IPv6 that ``ipaddress`` accepts, where a ``::`` form needs a group of 3+
  hex digits (so slices like ``a[1::2]`` stay clean).
* Secrets: AWS key ids (AKIA/ASIA + 16), AWS secret keys (40 base64 characters after an
  ``aws_secret_access_key``-like name or within 160 characters after a key id, with upper,
  lower and digits), GitHub ``ghp_/gho_/ghs_/ghu_/ghr_`` + 36+ and ``github_pat_`` tokens,
  Slack ``xox[bpars]-`` tokens, OpenAI ``sk-``/``sk-proj-`` keys and Anthropic ``sk-ant-``
  keys (20+ characters with letters and digits), PEM/OpenSSH/PGP private-key blocks (to the
  END line, or to the end of the text when it is missing), JWTs whose header decodes to a
  JSON object with ``alg``, and ``password=``/``api_key:``/``secret=``/``token:``
  assignments whose value has 8+ characters, two character classes and Shannon entropy of
  at least 2.7 bits per character (dotted names like ``os.environ`` do not count; ``key``
  needs a prefix such as ``api_``, ``private_`` or ``Account``). Only the value of an
  assignment is a finding; the name stays readable. No value or token has an upper length
  bound: a 2 KB one-line key is redacted whole.
* More credentials, spaced SSNs and passports: ``proxy.policy.dlp_credentials``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "DETECTORS",
    "Candidate",
    "Detector",
    "luhn_ok",
    "numeric_starts",
    "shannon_entropy",
]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A validated match: lower ``rank`` is more specific and wins overlaps."""

    rank: int
    category: str
    start: int
    end: int


Validator = Callable[[str, re.Match[str]], tuple[int, int] | None]


@dataclass(frozen=True, slots=True)
class Detector:
    """One shape of one category; ``find`` yields only validated spans.

    Where the regex is tried, cheapest first: ``anchors`` (lower-case substrings found
    with ``str.find``; the regex is matched at each occurrence), ``numeric`` (matched only
    at the starts ``numeric_starts`` found, shifted back by ``offset``), else a full
    ``finditer``. ``triggers``/``gate`` skip the detector when the text cannot match.
    """

    category: str
    rank: int
    pattern: re.Pattern[str]
    validate: Validator
    triggers: tuple[str, ...] = ()  # any must occur in the text (empty: always run)
    gate: Callable[[str], bool] | None = None  # a custom cheap test on the text
    anchors: tuple[str, ...] = ()
    numeric: bool = False
    offset: int = 0

    def may_match(self, text: str) -> bool:
        if self.triggers and not any(t in text for t in self.triggers):
            return False
        return self.gate is None or self.gate(text)

    def find(self, text: str, lowered: str, starts: Sequence[int]) -> list[Candidate]:
        if self.anchors:
            matches: Iterable[re.Match[str] | None] = self._at(
                text, _anchor_positions(text, lowered, self.anchors)
            )
        elif self.numeric:
            matches = self._at(text, starts)
        else:
            matches = self.pattern.finditer(text)
        found = []
        for match in matches:
            if match is not None and (span := self.validate(text, match)) is not None:
                found.append(Candidate(self.rank, self.category, span[0], span[1]))
        return found

    def _at(self, text: str, positions: Iterable[int]) -> Iterator[re.Match[str] | None]:
        end = 0
        for pos in positions:
            start = pos - self.offset
            if start >= end:
                match = self.pattern.match(text, start)
                if match is not None:
                    end = match.end()
                yield match


def _anchor_positions(text: str, lowered: str, anchors: tuple[str, ...]) -> list[int]:
    """Sorted offsets in ``text`` where any anchor occurs, ignoring case."""
    found: set[int] = set()
    if len(lowered) != len(text):  # lower-casing changed offsets (rare scripts): slow path
        for anchor in anchors:
            found.update(m.start() for m in re.finditer(re.escape(anchor), text, re.I))
        return sorted(found)
    for anchor in anchors:
        i = lowered.find(anchor)
        while i != -1:
            found.add(i)
            i = lowered.find(anchor, i + 1)
    return sorted(found)


# Where a card, SSN, IPv4, phone or IBAN could start: "+", "(" or the first digit of a
# number, followed by a number-like run (or an IBAN's check digits and a group). Numeric
# detectors are tried only here, so the text is scanned for numbers once, not five times.
_NUMERIC_STARTS = re.compile(r"[0-9(+](?<![0-9][0-9(+])(?=[0-9 ().\-]{6}|[0-9] ?[A-Z0-9]{4})")


def numeric_starts(text: str) -> list[int]:
    """Offsets where the numeric detectors (``Detector.numeric``) are tried."""
    return [m.start() for m in _NUMERIC_STARTS.finditer(text)]


def shannon_entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character (0.0 for "")."""
    n = len(value)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def luhn_ok(digits: str) -> bool:
    """True when the decimal string ``digits`` ends in a valid Luhn check digit."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _whole(text: str, match: re.Match[str]) -> tuple[int, int]:
    return match.span()


def _has_letter_and_digit(s: str) -> bool:
    return any(c.isdigit() for c in s) and any(c.isalpha() for c in s)


# ---- PII -----------------------------------------------------------------------------

_EMAIL = re.compile(
    r"[A-Za-z0-9](?<![\w.%+\-][A-Za-z0-9])[A-Za-z0-9._%+\-]{0,63}+@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-])"
)

_PHONE_INTL = re.compile(
    r"\+(?<![\w+]\+)[1-9](?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9]{1,4}))"
    r"{2,7}+(?![\w]|[.\-]?[0-9])"
)

_PHONE_NANP = re.compile(
    r"[(2-9](?<![\w(+\-.][(2-9])"
    r"(?:(?<=\()[2-9][0-9]{2}\) ?[2-9][0-9]{2}[.\- ]"
    r"|(?<=[2-9])[0-9]{2}(?P<s>[.\-])[2-9][0-9]{2}(?P=s))"
    r"[0-9]{4}(?![\w]|[.\-][0-9])"
)


def _phone_intl(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    digits = sum(c.isdigit() for c in match.group())
    return match.span() if 8 <= digits <= 15 else None


_CARD = re.compile(r"[0-9](?<![\w.][0-9])(?:[ \-]?[0-9]){12,18}(?![\w]|\.[0-9])")


def _card(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    # Try the whole run, then shorter runs ending at a group boundary (a year or a CVV
    # typed after the number must not hide it).
    raw = match.group()
    if len({c for c in raw if not c.isdigit()}) > 1:
        return None  # mixed separators: not a card written by a person
    ends = [i for i, c in enumerate(raw) if not c.isdigit()] + [len(raw)]
    for end in reversed(ends):
        digits = raw[:end].replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _card_prefix_ok(digits) and luhn_ok(digits):
            if digits.strip("0") == "":
                return None
            return match.start(), match.start() + end
    return None


def _card_prefix_ok(digits: str) -> bool:
    if digits[0] in "3456":
        return True
    return digits[0] == "2" and 2221 <= int(digits[:4]) <= 2720


_IBAN = re.compile(
    r"[A-Z]{2}[0-9]{2}(?<![\w][A-Z]{2}[0-9]{2})(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![\w])"
)


def _iban(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    raw = match.group()
    ends = [i for i, c in enumerate(raw) if c == " "] + [len(raw)]
    for end in reversed(ends):
        compact = raw[:end].replace(" ", "")
        if 15 <= len(compact) <= 34 and _iban_ok(compact):
            return match.start(), match.start() + end
    return None


def _iban_ok(iban: str) -> bool:
    if not "02" <= iban[2:4] <= "98":
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


_SSN = re.compile(
    r"[0-9](?<![\w\-.][0-9])[0-9]{2}(?P<s>[\- ])[0-9]{2}(?P=s)[0-9]{4}(?![\w]|-[0-9])"
)


def _ssn(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    start, end = match.span()
    sep = match.group("s")
    if sep == " " and (
        _DIGIT_SPACE.match(text[max(0, start - 2) : start]) or _SPACE_DIGIT.match(text, end)
    ):
        return None  # one of several groups of digits, not an SSN written with spaces
    return match.span() if _ssn_ranges_ok(*match.group().split(sep)) else None


_DIGIT_SPACE = re.compile(r"[0-9] \Z")
_SPACE_DIGIT = re.compile(r" [0-9]")


def _ssn_ranges_ok(area: str, group: str, serial: str) -> bool:
    """False for the never-issued SSN ranges (area 000, 666, 900-999; group 00; serial 0000)."""
    return not (area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000")


_IPV4 = re.compile(r"[0-9](?<![\w.][0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![\w]|\.[0-9])")


def _ipv4(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    for octet in match.group().split("."):
        if int(octet) > 255 or (len(octet) > 1 and octet[0] == "0"):
            return None
    return match.span()


# No left-boundary lookbehind here (it would run at every hex letter): the validator
# checks the character before the match instead.
_IPV6 = re.compile(r"[0-9A-Fa-f:][0-9A-Fa-f]{0,3}:[0-9A-Fa-f:.]{1,42}(?![\w:])")


def _ipv6_gate(text: str) -> bool:
    # Full addresses have 7 colons; shorter ones need "::".
    return "::" in text or text.count(":") >= 7


def _ipv6(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    start = match.start()
    if start and (text[start - 1].isalnum() or text[start - 1] in "_:."):
        return None
    raw = match.group().rstrip(".")
    if raw.endswith(":") and not raw.endswith("::"):
        raw = raw[:-1]
    if raw.count(":") < 2:
        return None
    try:
        ipaddress.IPv6Address(raw)
    except ValueError:
        return None
    if "::" in raw:
        groups = [g for g in re.split(r"[:.]", raw) if g]
        if not any(len(g) >= 3 for g in groups):
            return None
    return match.start(), match.start() + len(raw)


# ---- secrets -------------------------------------------------------------------------

_AWS_ACCESS = re.compile(r"(?:AKIA|ASIA)(?<![A-Za-z0-9/+]A[KS]IA)[A-Z0-9]{16}(?![A-Za-z0-9/+=])")
_AWS_SECRET_NAMED = re.compile(  # tried where "secret" occurs
    r"(?i:secret(?:[_\-. ]?access)?(?:[_\-. ]?key)?)"
    r"[\"']?\s{0,3}(?:[:=]|=>)\s{0,3}[\"']?"
    r"(?P<v>(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)
_AWS_SECRET_NEAR_ID = re.compile(
    r"(?:AKIA|ASIA)[A-Z0-9]{16}[\s\S]{1,160}?"
    r"(?P<v>(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)


def _aws_secret_named(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    # aws_secret_access_key, AWS_SECRET_KEY, SecretAccessKey: "aws" before or "access" in it
    name = match.group()[: match.start("v") - match.start()].lower()
    if (
        "access" not in name
        and "aws" not in text[max(0, match.start() - 12) : match.start()].lower()
    ):
        return None
    return _aws_secret(text, match)


def _aws_secret(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    value = match.group("v")
    if not (any(c.isupper() for c in value) and any(c.islower() for c in value)):
        return None  # 40 hex digits (a git SHA) is not a secret key
    if not any(c.isdigit() for c in value) or shannon_entropy(value) < 4.0:
        return None
    return match.span("v")


_GITHUB = re.compile(
    r"gh[pousr]_(?<![A-Za-z0-9_]gh[pousr]_)[A-Za-z0-9]{36,}+(?![A-Za-z0-9_])"
    r"|github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{22,}+(?![A-Za-z0-9_])"
)
_SLACK = re.compile(
    r"xox[bpars]-(?<![A-Za-z0-9_\-]xox[bpars]-)[A-Za-z0-9][A-Za-z0-9\-]{8,}[A-Za-z0-9]"
    r"(?![A-Za-z0-9_\-])"
)
_ANTHROPIC = re.compile(r"sk-ant-(?<![\w\-]sk-ant-)(?P<v>[A-Za-z0-9_\-]{20,}+)(?![\w\-])")
_OPENAI = re.compile(
    r"sk-(?<![\w\-]sk-)(?!ant-)(?:proj-|svcacct-|admin-)?(?P<v>[A-Za-z0-9_\-]{20,}+)(?![\w\-])"
)


def _digits_and_letters(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    return match.span() if _has_letter_and_digit(match.group("v")) else None


def _letters_and_digits(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    return match.span() if _has_letter_and_digit(match.group()) else None


_PRIVATE_KEY = re.compile(
    r"-----BEGIN(?: [A-Z0-9]+){0,3} PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
    r"(?:-----END(?: [A-Z0-9]+){0,3} PRIVATE KEY(?: BLOCK)?-----|\Z)"
)

_JWT = re.compile(
    r"eyJ(?<![\w\-.]eyJ)[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*(?![\w\-])"
)


def _jwt(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    header = match.group().split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError included
        return None
    return match.span() if isinstance(decoded, dict) and "alg" in decoded else None


_ASSIGNMENT = re.compile(  # tried where a name anchor occurs
    r"(?i:(?P<k>pass(?:word|wd|phrase)?|pwd|secret|token|key)s?(?:[_\-][\w\-]{0,20})?)"
    r"[\"']?\s{0,3}(?:[:=]|=>)\s{0,3}[\"']?"
    r"(?P<v>[^\s\"'`,;()\[\]{}<>]{8,}+)"
)
# "key" alone is too common ("primary key", "monkey"): it needs a secret-ish prefix.
_KEY_PREFIX = re.compile(
    r"(?i:api|access|secret|private|auth|client|signing|encryption|master|account)[_\-]?\Z"
)
_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def _assignment(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    if match.group("k").lower() == "key" and not _KEY_PREFIX.search(
        text, max(0, match.start() - 12), match.start()
    ):
        return None
    start = match.start("v")
    value = text[start : match.end("v")].rstrip(".")
    if value.startswith(("$", "%")) or _DOTTED_NAME.fullmatch(value):
        return None  # a variable or an environment lookup, not a literal secret
    classes = (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() and c not in "_-." for c in value)
    )
    if len(value) < 8 or classes < 2 or shannon_entropy(value) < 2.7:
        return None
    return start, start + len(value)


DETECTORS: tuple[Detector, ...] = (
    Detector("PRIVATE_KEY", 0, _PRIVATE_KEY, _whole, triggers=("-----BEGIN",)),
    Detector("JWT", 1, _JWT, _jwt, triggers=("eyJ",)),
    Detector("ANTHROPIC_KEY", 2, _ANTHROPIC, _digits_and_letters, triggers=("sk-ant-",)),
    Detector("OPENAI_KEY", 3, _OPENAI, _digits_and_letters, triggers=("sk-",)),
    Detector(
        "GITHUB_TOKEN",
        4,
        _GITHUB,
        _whole,
        triggers=("ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_"),
    ),
    Detector("SLACK_TOKEN", 5, _SLACK, _letters_and_digits, triggers=("xox",)),
    Detector("AWS_ACCESS_KEY", 6, _AWS_ACCESS, _whole, triggers=("AKIA", "ASIA")),
    Detector("AWS_SECRET_KEY", 7, _AWS_SECRET_NAMED, _aws_secret_named, anchors=("secret",)),
    Detector("AWS_SECRET_KEY", 7, _AWS_SECRET_NEAR_ID, _aws_secret, triggers=("AKIA", "ASIA")),
    Detector(
        "PASSWORD_ASSIGNMENT",
        8,
        _ASSIGNMENT,
        _assignment,
        anchors=("pass", "pwd", "secret", "token", "key"),
    ),
    Detector("EMAIL", 9, _EMAIL, _whole, triggers=("@",)),
    Detector("IBAN", 10, _IBAN, _iban, numeric=True, offset=2),
    Detector("CARD_NUMBER", 11, _CARD, _card, numeric=True),
    Detector("NATIONAL_ID", 12, _SSN, _ssn, numeric=True),
    Detector("IP_ADDRESS", 13, _IPV4, _ipv4, triggers=(".",), numeric=True),
    Detector("IP_ADDRESS", 13, _IPV6, _ipv6, gate=_ipv6_gate),
    Detector("PHONE", 14, _PHONE_INTL, _phone_intl, triggers=("+",), numeric=True),
    Detector("PHONE", 14, _PHONE_NANP, _whole, numeric=True),
)
