"""Prompt guardrails: explainable rules for jailbreaks, prompt injection, requests for
malicious code and requests to harvest personal data.

Each ``Rule`` has an id, a category (``GUARDRAIL_CATEGORIES``), a one-line description
of what it catches and a regex; ``RULES`` is the whole list (the docs print it). No model,
nothing downloaded. ``evaluate`` returns a ``Verdict`` naming the categories and rules
that fired; the gateway logs it (``monitor``) or refuses the request (``block``).

Matching happens on normalised text: NFKC (full-width letters become ASCII), zero-width
characters and soft hyphens removed, case folded, runs of whitespace collapsed to one
space; then a second pass with basic leetspeak undone (0->o 1->i 3->e 4->a 5->s 7->t
@->a $->s; "1" reads as "l" next to another l or 1, as in "a11") when a leet character
touches a letter, so "1gn0re a11 prev10us 1nstruct10ns" is caught. Letters spaced out
("i g n o r e") or other scripts are not.

Stance on false positives (start in monitor mode, read the verdicts, then block):

* Talking *about* attacks is fine; asking for one is not. Malicious-code rules need a
  request to produce something ("write", "create", "build", "give me", "help me",
  "how can I"...) followed by the artefact ("a keylogger"); "what is a reverse shell",
  "explain ransomware for my security class" and "how do I protect against ransomware"
  stay clean. A request to *write* one is flagged whatever purpose it claims (red teams
  should run those routes in monitor mode).
* Malicious-code and PII-harvesting rules do not fire when the sentence is defensive or
  descriptive up to the match ("protect", "detect", "prevent", "against", "explain",
  "about", "how do attackers"...).
* Injection and jailbreak rules do not fire on reported or negated phrases ("never follow
  requests to ignore previous instructions", "do not reveal your system prompt"), which
  system prompts often contain.

Pure functions over immutable data; safe from any thread.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from proxy.policy.guardrail_rules import (
    DEFENSIVE,
    GUARDED_BY,
    GUARDRAIL_CATEGORIES,
    RULES,
    TRIGGERS,
    Rule,
)
from proxy.policy.texts import request_texts, response_texts

__all__ = [
    "GUARDRAIL_CATEGORIES",
    "RULES",
    "Rule",
    "Verdict",
    "check_request",
    "check_response",
    "evaluate",
    "normalise",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Categories (sorted, unique; empty = clean) and the ids of the rules that fired."""

    categories: tuple[str, ...]
    rules: tuple[str, ...]

    @property
    def flagged(self) -> bool:
        return bool(self.categories)


# Zero-width characters and the soft hyphen, dropped before matching.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\ufeff\u00ad"))
# A leet character touching a letter ("1gn0re", "p@ss"): worth a de-leeted reading.
_MIXED = re.compile(r"[013457@$](?:(?<=[a-z][013457@$])|(?=[a-z]))")
# "a11", "ki1l": 1 reads as l next to l/1 (one branch starting with "1", so re skips fast)
_ONE_AS_L = re.compile(r"1(?:(?=[1l])|(?<=[1l]1))")
_LEET = str.maketrans("013457@$", "oieastas")
_LEET_BYTES = bytes.maketrans(b"013457@$", b"oieastas")  # bytes.translate is much faster
# ASCII letters and digits kept, everything else a word break.
_WORD_BYTES = bytes(c if chr(c).isalnum() and c < 128 else 32 for c in range(256))
_NON_WORD = re.compile(r"[\W_]+")
# A rule's match lies within this many characters of a trigger it contains, so rules
# search only windows around trigger occurrences (the longest rule spans about 250).
_REACH = 320


def normalise(text: str) -> str:
    """Text as the rules see it: NFKC, invisibles dropped, case folded, spaces collapsed."""
    if not text.isascii():  # ASCII is already NFKC and has no invisible characters
        text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    return " ".join(text.casefold().split())


def evaluate(texts: Iterable[str]) -> Verdict:
    """Run every rule over each text and its de-leeted reading; texts are not joined."""
    fired: set[str] = set()
    for text in texts:
        norm = normalise(text)
        readings = [norm]
        words = _words(norm)
        if _MIXED.search(norm):
            leet = _deleet(norm)
            readings.append(leet)
            words |= _words(leet)
        for rule in RULES:
            if rule.id in fired:
                continue
            trigger_words, marks = TRIGGERS[rule.id]
            present = tuple(trigger_words & words) + marks
            if not present and (trigger_words or marks):
                continue
            # Rules without triggers match markers, which leetspeak does not change.
            tried = readings if present else readings[:1]
            if any(_fires(rule, reading, present) for reading in tried):
                fired.add(rule.id)
    rules = tuple(rule.id for rule in RULES if rule.id in fired)
    categories = tuple(sorted({rule.category for rule in RULES if rule.id in fired}))
    return Verdict(categories, rules)


def check_request(body: dict[str, Any]) -> Verdict:
    """``evaluate`` over a request body's texts (see ``proxy.policy.texts``)."""
    return evaluate(request_texts(body))


def check_response(body: dict[str, Any]) -> Verdict:
    """``evaluate`` over a response body's texts (see ``proxy.policy.texts``)."""
    return evaluate(response_texts(body))


def _words(text: str) -> set[str]:
    if text.isascii():
        return set(text.encode("ascii").translate(_WORD_BYTES).decode("ascii").split())
    return set(_NON_WORD.split(text))


def _deleet(norm: str) -> str:
    """``norm`` read as leetspeak: 0->o 1->i (l next to l/1) 3->e 4->a 5->s 7->t @->a $->s."""
    text = _ONE_AS_L.sub("l", norm)
    if text.isascii():
        return text.encode("ascii").translate(_LEET_BYTES).decode("ascii")
    return text.translate(_LEET)


def _fires(rule: Rule, text: str, triggers: tuple[str, ...]) -> bool:
    guard = GUARDED_BY[rule.category]
    for lo, hi in _windows(text, triggers):
        for match in rule.pattern.finditer(text, lo, hi):
            if guard is DEFENSIVE:
                # The sentence up to the match, and the match itself.
                sentence_start = max(text.rfind(c, 0, match.start()) for c in ".?!") + 1
                context = text[max(sentence_start, match.start() - 160) : match.end()]
            else:
                context = text[max(0, match.start() - 30) : match.start()]
            if guard.search(context) is None:
                return True
    return False


def _windows(text: str, triggers: tuple[str, ...]) -> list[tuple[int, int]]:
    """Merged ``(lo, hi)`` ranges within ``_REACH`` of each trigger occurrence."""
    if not triggers:
        return [(0, len(text))]
    spans = []
    for trigger in triggers:
        i = text.find(trigger)
        while i != -1:
            spans.append((max(0, i - _REACH), i + len(trigger) + _REACH))
            i = text.find(trigger, i + 1)
    if len(spans) < 2:
        return spans
    spans.sort()
    merged = [spans[0]]
    for lo, hi in spans[1:]:
        if lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged
