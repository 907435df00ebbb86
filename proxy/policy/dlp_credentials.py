"""More DLP detectors: vendor tokens, credentials in URLs and headers, and
passport numbers. Same contract as ``proxy.policy.dlp_detectors`` (whose docstring says
how a detector is tried); private to ``proxy.policy.dlp``.

The token formats are those the established open-source scanners document (gitleaks'
rules are the reference), written as our own rules:

* SLACK_TOKEN: Slack webhook URLs, ``hooks.slack.com/services|workflows|triggers/…``
  (with their ``https://``).
* PASSWORD_ASSIGNMENT, the category of credentials without a vendor category of their
  own: Stripe ``sk_``/``rk_`` + ``live``/``test``/``prod`` + 10+ characters, Google API
  keys (``AIza`` + 35), GitLab ``glpat-``/``gldt-``/``glrt-``/``glptt-``/``glsoat-`` + 20+,
  Hugging Face ``hf_`` + 34, SendGrid ``SG.`` + 22 + ``.`` + 43; the password of a URL
  ``scheme://user:password@host`` (databases, brokers, Redis ``redis://:pw@host``, HTTP;
  any host, ``localhost`` and IPs included; ``$VAR``/``${VAR}``/``<placeholder>``/``***``
  passwords do not count); an ``Authorization: Basic`` value (8+ base64 characters that
  decode to ``user:password``).
* NATIONAL_ID: US passport numbers (9 digits within 40 characters after "passport").

Only the secret part is a finding: a URL keeps its scheme, user and host, a header its
name and ``Basic``.
"""

from __future__ import annotations

import base64
import binascii
import re

from proxy.policy.dlp_detectors import Detector

__all__ = ["CREDENTIAL_DETECTORS"]

_SLACK_WEBHOOK = re.compile(
    r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/+\-]{20,}+"
)


def _slack_webhook(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    start = match.start()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme, start - len(scheme)):
            return start - len(scheme), match.end()
    return match.span()


_TAIL = r"(?![A-Za-z0-9_\-])"
_VENDOR_TOKEN = re.compile(r"[sr]k_(?<![\w\-][sr]k_)(?:live|test|prod)_[A-Za-z0-9]{10,}+" + _TAIL)
_GOOGLE_KEY = re.compile(r"AIza(?<![\w\-]AIza)[A-Za-z0-9_\-]{35}" + _TAIL)
_GITLAB = re.compile(r"gl(?<![\w\-]gl)(?:pat|dt|rt|ptt|soat)-[A-Za-z0-9_\-]{20,}+" + _TAIL)
_HUGGING_FACE = re.compile(r"hf_(?<![\w\-]hf_)[A-Za-z0-9]{34}" + _TAIL)
_SENDGRID = re.compile(r"SG\.(?<![\w\-.]SG\.)[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}" + _TAIL)


def _token(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    # Generated, so mixed: two of lower case, upper case and digits (not "sk_test_abcdefghij").
    value = match.group()[4:]
    kinds = any(c.islower() for c in value) + any(c.isupper() for c in value)
    return match.span() if kinds + any(c.isdigit() for c in value) >= 2 else None


# scheme://user:password@host -- tried at each "://"; the user has no ":" or "@", the
# password runs to the last "@" before the host (unencoded "@" in passwords happen).
_URL_CREDENTIAL = re.compile(r"://(?P<u>[^\s/?#@:\"'`<>]*):(?P<v>[^\s/?#\"'`<>]*)@(?=[\w\[])")
_PLACEHOLDER = re.compile(r"\$\{?\w+\}?|<[^<>]*>|\*+|\.\.\.|x+|\{\{?[^{}]*\}\}?")


def _url_credential(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    value = match.group("v")
    if not value or _PLACEHOLDER.fullmatch(value):
        return None
    scheme_end = match.start()
    if scheme_end == 0 or not text[scheme_end - 1].isalnum():
        return None  # not a URL: "://" with no scheme before it
    return match.span("v")


_BASIC_AUTH = re.compile(r"(?i:basic)[ \t]+(?P<v>[A-Za-z0-9+/]{8,}+={0,2})(?![\w+/=\-])")


def _basic_auth(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    value = match.group("v")
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode()
    except (binascii.Error, ValueError):  # UnicodeDecodeError included
        return None
    _user, colon, password = decoded.partition(":")
    if not colon or not password or not decoded.isprintable():
        return None
    return match.span("v")


_PASSPORT = re.compile(r"(?i:passport)[^0-9\n]{0,40}?(?P<v>(?<![\w\-])[0-9]{9})(?![\w]|[.\-][0-9])")


def _value(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    return match.span("v")


CREDENTIAL_DETECTORS: tuple[Detector, ...] = (
    Detector("SLACK_TOKEN", 5, _SLACK_WEBHOOK, _slack_webhook, triggers=("hooks.slack.com",)),
    Detector(
        "PASSWORD_ASSIGNMENT",
        6,
        _VENDOR_TOKEN,
        _token,
        anchors=("k_",),  # one search, not three; a few "task_" in code are cheap to try
        offset=1,
    ),
    Detector("PASSWORD_ASSIGNMENT", 6, _GOOGLE_KEY, _token, triggers=("AIza",)),
    Detector("PASSWORD_ASSIGNMENT", 6, _GITLAB, _token, anchors=("gl",)),
    Detector("PASSWORD_ASSIGNMENT", 6, _HUGGING_FACE, _token, triggers=("hf_",)),
    Detector("PASSWORD_ASSIGNMENT", 6, _SENDGRID, _token, triggers=("SG.",)),
    Detector("PASSWORD_ASSIGNMENT", 8, _URL_CREDENTIAL, _url_credential, anchors=("://",)),
    Detector("PASSWORD_ASSIGNMENT", 8, _BASIC_AUTH, _basic_auth, anchors=("basic",)),
    Detector("NATIONAL_ID", 12, _PASSPORT, _value, anchors=("passport",)),
)
