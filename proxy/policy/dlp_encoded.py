"""Secrets encoded once: base64 runs and %-encoded words are decoded and scanned again.

Private to ``proxy.policy.dlp``, which passes the plain detectors in (``find``); decoded
text is not decoded again. What counts:

* A run of 20+ base64 characters (standard or URL-safe alphabet, not both; with upper
  and lower case letters, so hex hashes and UUIDs are skipped) that decodes to UTF-8 text
  without control characters: when that text holds a finding, the whole run is a finding
  of the same category (base64 does not map characters one to one).
* Lines of base64 wrapped as MIME and PEM wrap them (76 or 64 characters, then a line
  break): the block is decoded as one run, so that a secret cut by a line break is found;
  the whole block is the finding.
* A word (between whitespace, quotes and angle brackets) holding a ``%XX`` escape of an
  ASCII character: ``%XX`` escapes are decoded and ``+`` read as a space, and each
  finding in the decoded word is mapped back to the encoded characters it came from.

Binary data (images, DER keys) does not decode to text, so it is never rescanned. Pure
functions; safe from any thread.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from proxy.policy.dlp_detectors import Candidate

__all__ = ["encoded_candidates"]

Finder = Callable[[str], list[Candidate]]

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"
_ALPHABET_MASK = bytes(1 if i in _ALPHABET else 0 for i in range(256))
_MIN_RUN = b"\1" * 20
_HAS_UPPER = re.compile(r"[A-Z]")
_HAS_LOWER = re.compile(r"[a-z]")
_URLSAFE = str.maketrans("-_", "+/")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")

# Two or more lines of the standard alphabet, each full line 20+ characters: MIME, PEM.
_WRAPPED = re.compile(r"(?:[A-Za-z0-9+/]{20,}\r?\n)+[A-Za-z0-9+/]+={0,2}")
_LINE_BREAK = re.compile(r"\r?\n")

_ESCAPE = re.compile(r"%[0-7][0-9A-Fa-f]")
_WORD_END = re.compile(r"[^\s\"'<>`]*+")
_DELIMITERS = (" ", "\n", "\t", "\r", '"', "'", "<", ">", "`")


def encoded_candidates(text: str, find: Finder) -> list[Candidate]:
    """Candidates for the encoded runs of ``text`` whose decoded text ``find`` reports."""
    found = _base64_candidates(text, find)
    if "%" in text:
        found.extend(_percent_candidates(text, find))
    return found


def _base64_candidates(text: str, find: Finder) -> list[Candidate]:
    found = []
    covered = 0  # the end of the last wrapped block found
    for start, end in _base64_runs(text):
        if start < covered:
            continue
        if text.startswith(("\n", "\r\n"), end):
            block = _wrapped_block(text, start, find)
            if block is not None:
                found.append(block)
                covered = block.end
                continue
        run = text[start:end]
        if _HAS_UPPER.search(run) is None or _HAS_LOWER.search(run) is None:
            continue
        decoded = _decode_base64(run)
        if decoded is None:
            continue
        inner = find(decoded)
        if inner:
            best = min(inner, key=lambda c: c.rank)
            found.append(Candidate(best.rank, best.category, start, end))
    return found


def _wrapped_block(text: str, start: int, find: Finder) -> Candidate | None:
    """The finding of the line-wrapped base64 block at ``start``, decoded as one run."""
    block = _WRAPPED.match(text, start)
    if block is None:
        return None
    decoded = _decode_base64(_LINE_BREAK.sub("", block.group()))
    inner = find(decoded) if decoded is not None else []
    if not inner:
        return None
    best = min(inner, key=lambda c: c.rank)
    return Candidate(best.rank, best.category, start, block.end())


def _base64_runs(text: str) -> list[tuple[int, int]]:
    """Spans of the runs of 20+ base64 characters (either alphabet), with their padding.

    Found in a byte mask of the text (1 for an alphabet character) with ``bytes.find``:
    C speed, where a regex tried at every character of a prompt would cost as much as all
    the other detectors together. Non-ASCII characters become ``?`` (one byte each), so
    offsets in the mask are offsets in the text."""
    mask = text.encode("ascii", "replace").translate(_ALPHABET_MASK)
    runs = []
    start = mask.find(_MIN_RUN)
    while start != -1:
        end = mask.find(b"\0", start)
        if end == -1:
            end = len(mask)
        padded = end
        while padded < len(text) and padded - end < 2 and text[padded] == "=":
            padded += 1
        runs.append((start, padded))
        start = mask.find(_MIN_RUN, end)
    return runs


def _decode_base64(run: str) -> str | None:
    """The UTF-8 text ``run`` encodes, or None when it is not text."""
    run = run.rstrip("=")
    if "-" in run or "_" in run:
        if "+" in run or "/" in run:
            return None
        run = run.translate(_URLSAFE)
    if len(run) % 4 == 1:
        run = run[:-1]  # a trailing character that cannot be base64 on its own
    try:
        decoded = base64.b64decode(run + "=" * (-len(run) % 4), validate=True).decode()
    except (binascii.Error, ValueError):  # UnicodeDecodeError included
        return None
    return None if _CONTROL.search(decoded) else decoded


def _percent_candidates(text: str, find: Finder) -> list[Candidate]:
    found: list[Candidate] = []
    end = 0
    for escape in _ESCAPE.finditer(text):
        if escape.start() < end:
            continue  # in the word just decoded
        start = max(text.rfind(d, 0, escape.start()) for d in _DELIMITERS) + 1
        word_end = _WORD_END.match(text, escape.start())
        end = word_end.end() if word_end is not None else escape.end()
        decoded, origins = _decode_percent(text, start, end)
        for c in find(decoded):
            span_start, span_end = origins[c.start], origins[c.end]
            found.append(Candidate(c.rank, c.category, span_start, span_end))
    return found


def _decode_percent(text: str, start: int, end: int) -> tuple[str, list[int]]:
    """``text[start:end]`` with ASCII ``%XX`` escapes decoded and ``+`` as a space, and
    for each decoded character (and the end) its offset in ``text``."""
    chars: list[str] = []
    origins: list[int] = []
    i = start
    while i < end:
        origins.append(i)
        ch = text[i]
        if ch == "%" and _ESCAPE.match(text, i, end) is not None:
            chars.append(chr(int(text[i + 1 : i + 3], 16)))
            i += 3
            continue
        chars.append(" " if ch == "+" else ch)
        i += 1
    origins.append(end)
    return "".join(chars), origins
