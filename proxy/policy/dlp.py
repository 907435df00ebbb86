"""Data-loss prevention: find PII and secrets in text, redact them, inspect bodies.

``scan`` finds spans by category (``DLP_CATEGORIES``); each detector is a compiled regex
plus a validator (Luhn for cards, mod-97 for IBANs, SSN ranges, IPv4 octets, JWT header,
Shannon entropy for ``password=`` values), so shapes that merely look right are not
reported. The detectors and what they accept are listed in ``dlp_detectors`` and
``dlp_credentials``; ``dlp_encoded`` decodes base64 runs and %-encoded words once and
scans the decoded text with them too. Detectors run only when a cheap substring test
says they could match, which keeps a 4 KB prompt with nothing in it well under a
millisecond (see ``bench/dlp.py``).

Nothing here ever returns, logs or raises with matched text: a ``Finding`` is a category
and a span, ``DlpResult`` carries category names, and its ``repr`` leaves the body out.

Modes (per route, from ``gateway.toml``): ``off`` scans nothing; ``flag`` reports
categories and forwards the body unchanged; ``redact`` forwards a copy with every finding
replaced by ``[REDACTED:CATEGORY]``; ``block`` reports categories and the gateway refuses
the request. All functions are pure and safe from any thread; a ``StreamRedactor`` belongs
to one stream (one choice) and is not thread-safe.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from proxy.errors import GatewayConfigError
from proxy.policy.dlp_credentials import CREDENTIAL_DETECTORS
from proxy.policy.dlp_detectors import DETECTORS, Candidate, numeric_starts
from proxy.policy.dlp_encoded import encoded_candidates
from proxy.policy.texts import map_request_texts, map_response_texts, request_texts, response_texts

__all__ = [
    "DLP_CATEGORIES",
    "DLP_MODES",
    "SECRET_CATEGORIES",
    "DlpResult",
    "Finding",
    "StreamRedactor",
    "inspect_request",
    "inspect_response",
    "redact",
    "redactor_into",
    "scan",
]

DLP_CATEGORIES: Final[tuple[str, ...]] = (
    "EMAIL",
    "PHONE",
    "CARD_NUMBER",
    "IBAN",
    "NATIONAL_ID",
    "IP_ADDRESS",
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "GITHUB_TOKEN",
    "SLACK_TOKEN",
    "OPENAI_KEY",
    "ANTHROPIC_KEY",
    "PRIVATE_KEY",
    "JWT",
    "PASSWORD_ASSIGNMENT",
)
# The categories that are credentials rather than personal data: an answer holding one
# is not cached unless its route allows it (``proxy.cache_policy``).
SECRET_CATEGORIES: Final = frozenset(DLP_CATEGORIES) - {
    "EMAIL",
    "PHONE",
    "CARD_NUMBER",
    "IBAN",
    "NATIONAL_ID",
    "IP_ADDRESS",
}

DLP_MODES: Final[tuple[str, ...]] = ("off", "flag", "redact", "block")


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected span ``text[start:end]`` (character offsets) and its category."""

    category: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class DlpResult:
    """What DLP decided for one body.

    ``action`` is None when nothing was found, else the mode (``flag``/``redact``/``block``);
    ``categories`` are sorted and unique; ``body`` is the redacted copy in ``redact`` mode
    and the input body itself otherwise. ``repr`` omits the body (it may hold secrets).
    """

    action: str | None
    categories: tuple[str, ...]
    body: dict[str, Any] = field(repr=False)


def scan(text: str) -> list[Finding]:
    """Findings in ``text``, sorted by position and non-overlapping.

    Where candidates overlap, the more specific category wins (secrets before PII, phone
    numbers last), then the longer span.
    """
    candidates = _candidates(text)
    candidates.extend(encoded_candidates(text, _candidates))
    if not candidates:
        return []
    candidates.sort(key=lambda c: (c.rank, c.start - c.end, c.start))
    # Greedy by priority; ``taken`` stays sorted and non-overlapping, so one bisect finds
    # the only two neighbours a candidate could overlap.
    taken_starts: list[int] = []
    taken: list[Candidate] = []
    for cand in candidates:
        i = bisect.bisect_right(taken_starts, cand.start)
        if i and taken[i - 1].end > cand.start:
            continue
        if i < len(taken) and taken[i].start < cand.end:
            continue
        taken_starts.insert(i, cand.start)
        taken.insert(i, cand)
    return [Finding(c.category, c.start, c.end) for c in taken]


_DETECTORS: Final = DETECTORS + CREDENTIAL_DETECTORS


def _candidates(text: str) -> list[Candidate]:
    """What the plain (not decoding) detectors find in ``text``, overlaps included."""
    candidates: list[Candidate] = []
    lowered = text.lower()
    starts = numeric_starts(text)
    for detector in _DETECTORS:
        if (starts or not detector.numeric) and detector.may_match(text):
            candidates.extend(detector.find(text, lowered, starts))
    return candidates


def redact(text: str, findings: Sequence[Finding] | None = None) -> str:
    """``text`` with each finding replaced by ``[REDACTED:CATEGORY]`` (scans if not given).

    ``findings`` must be sorted and non-overlapping, as ``scan`` returns them.
    """
    if findings is None:
        findings = scan(text)
    if not findings:
        return text
    parts: list[str] = []
    pos = 0
    for f in findings:
        parts.append(text[pos : f.start])
        parts.append(f"[REDACTED:{f.category}]")
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)


def redactor_into(found: set[str]) -> Callable[[str], str]:
    """A text function that redacts its text and adds the categories it found to ``found``."""

    def redact_one(text: str) -> str:
        findings = scan(text)
        found.update(f.category for f in findings)
        return redact(text, findings)

    return redact_one


def inspect_request(body: dict[str, Any], mode: str) -> DlpResult:
    """Scan a request body's texts (see ``proxy.policy.texts``) under ``mode``."""
    return _inspect(body, _check_mode(mode), request_texts, map_request_texts)


def inspect_response(body: dict[str, Any], mode: str) -> DlpResult:
    """Scan a whole (non-streamed) response body's texts under ``mode``."""
    return _inspect(body, _check_mode(mode), response_texts, map_response_texts)


def _check_mode(mode: str) -> str:
    if mode not in DLP_MODES:
        raise GatewayConfigError(f"unknown DLP mode {mode!r}: use off, flag, redact or block")
    return mode


_Texts = Callable[[dict[str, Any]], list[str]]
_Mapper = Callable[[dict[str, Any], Callable[[str], str]], dict[str, Any]]


def _inspect(body: dict[str, Any], mode: str, texts: _Texts, mapper: _Mapper) -> DlpResult:
    if mode == "off":
        return DlpResult(None, (), body)
    found: set[str] = set()
    if mode == "redact":
        redacted = mapper(body, redactor_into(found))
        if found:
            return DlpResult(mode, tuple(sorted(found)), redacted)
        return DlpResult(None, (), body)
    for text in texts(body):
        found.update(f.category for f in scan(text))
    if found:
        return DlpResult(mode, tuple(sorted(found)), body)
    return DlpResult(None, (), body)


class StreamRedactor:
    """Redacts a streamed text (one SSE choice) delta by delta.

    ``feed`` returns the text that is safe to send now, ``flush`` the rest at stream end;
    ``categories`` collects what was redacted. It holds back the last ``hold_back``
    characters (default 256) and, beyond that, any trailing run of non-whitespace (up to
    ``max_hold`` characters, default 8192) and any finding that reaches the held tail, so a
    secret split across deltas is still caught: the concatenated outputs equal
    ``redact(whole_text)`` whenever every finding, with the context its detector needs
    (``password=`` before a value, an AWS key id before its secret), spans at most
    ``hold_back`` characters, or contains no whitespace and at most ``max_hold``. An
    unterminated ``BEGIN PRIVATE KEY`` block is held until its END line or ``flush``.
    Longer findings may be sent partly before they are recognised.

    Text is scanned and released once at least ``step`` (default 64) new characters have
    arrived, so the stream runs some ``hold_back + step`` characters (60-80 tokens) behind
    the provider; a scan costs about as much as ``scan`` on ``2 * hold_back + step``
    characters.
    Memory: up to ``hold_back`` characters of already-sent raw text are kept as left context.
    """

    def __init__(self, *, hold_back: int = 256, max_hold: int = 8192, step: int = 64) -> None:
        self._hold = hold_back
        self._max_hold = max_hold
        self._step = step
        self._scan_at = hold_back + step  # pending length that triggers the next scan
        self._context = ""  # raw text already sent, kept for detectors' left context
        self._pending = ""  # raw text not yet sent
        self.categories: set[str] = set()

    def __repr__(self) -> str:
        return f"StreamRedactor(categories={sorted(self.categories)!r})"

    def feed(self, delta: str) -> str:
        """Take the next delta; return the redacted text that can be sent now (maybe "")."""
        self._pending += delta
        if len(self._pending) < self._scan_at:
            return ""
        out = self._emit(final=False)
        self._scan_at = len(self._pending) + self._step
        return out

    def release(self) -> str:
        """Return the redacted text held so far, keeping its end as left context for
        what is fed next (text before and after a tool call is one text)."""
        out = self._emit(final=True)
        self._scan_at = self._hold + self._step
        return out

    def flush(self) -> str:
        """Return the redacted remainder; the redactor is then empty (and reusable)."""
        out = self.release()
        self._context = ""
        return out

    def _emit(self, *, final: bool) -> str:
        buffer = self._context + self._pending
        base = len(self._context)
        findings = scan(buffer)
        end = len(buffer)
        cut = end
        if not final:
            cut = end - self._hold
            tail_start = _trailing_word_start(buffer)
            if end - tail_start <= self._max_hold:
                cut = min(cut, tail_start)
            # Release whole words: back up to the start of a word the cut falls in.
            word_start = cut if cut < end and not buffer[cut].isspace() else base
            while word_start > base and cut - word_start < 64:
                if buffer[word_start - 1].isspace():
                    cut = word_start
                    break
                word_start -= 1
            # Never split a finding (this comes last: findings may contain spaces).
            for f in reversed(findings):
                if f.start < cut < f.end:
                    cut = f.start
        if cut <= base:
            return ""
        parts: list[str] = []
        pos = base
        for f in findings:
            if f.end <= base or f.start >= cut:
                continue
            # A finding that began in already-sent text (longer than the hold-back) is
            # redacted from where the unsent text begins.
            start = max(f.start, base)
            parts.append(buffer[pos:start])
            parts.append(f"[REDACTED:{f.category}]")
            self.categories.add(f.category)
            pos = f.end
        parts.append(buffer[pos:cut])
        self._context = buffer[max(0, cut - self._hold) : cut]
        self._pending = buffer[cut:]
        return "".join(parts)


def _trailing_word_start(text: str) -> int:
    """Index where the trailing run of non-whitespace characters begins.

    ASCII whitespace only (four C-speed ``rfind`` calls instead of a Python loop); other
    spaces just make the held run longer.
    """
    return max(text.rfind(c) for c in " \n\t\r") + 1
