"""What the simulated provider's test hooks (``/_mock/*``) keep and show.

Recording is cheap on purpose (it runs on every request of the gateway benchmark): a request
is kept as the raw tuple it arrived as, in a bounded deque; headers are redacted and bodies
parsed only when a test asks for them.

Not thread-safe: the app's one event loop owns a :class:`Recorder`.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

import orjson

from sim.handlers import InvalidSimRequest

__all__ = ["OUTAGE_STATUSES", "RECORD_LIMIT", "REDACTED_HEADERS", "Recorder", "parse_outage"]

RECORD_LIMIT: Final = 1000
OUTAGE_STATUSES: Final = frozenset({429, 500, 503})
MAX_OUTAGE_S: Final = 86_400.0
# Credentials a gateway forwards or adds: tests see that one was sent, never its value.
REDACTED_HEADERS: Final = frozenset(
    {b"authorization", b"x-api-key", b"api-key", b"proxy-authorization", b"cf-aig-authorization"}
)

_Entry = tuple[str, str, list[tuple[bytes, bytes]], bytes | None]


class Recorder:
    """The last :data:`RECORD_LIMIT` requests and a count per (path, status)."""

    def __init__(self) -> None:
        self._requests: deque[_Entry] = deque(maxlen=RECORD_LIMIT)
        self._stats: dict[str, dict[int, int]] = {}

    def record(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes | None
    ) -> None:
        """Keep one request (``body`` None: it was too large to keep)."""
        self._requests.append((method, path, headers, body))

    def count(self, path: str, status: int) -> None:
        """Count one response."""
        counts = self._stats.get(path)
        if counts is None:
            counts = self._stats[path] = {}
        counts[status] = counts.get(status, 0) + 1

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._requests.clear()

    def clear_stats(self) -> None:
        """Reset the counts."""
        self._stats.clear()

    def requests_json(self) -> bytes:
        """The recorded requests, oldest first, as a JSON list (credentials redacted)."""
        return orjson.dumps([_shown(*entry) for entry in self._requests])

    def stats_json(self) -> bytes:
        """``{"total": N, "paths": {path: {"200": n, ...}}}``."""
        paths = {
            path: {str(status): n for status, n in sorted(counts.items())}
            for path, counts in self._stats.items()
        }
        total = sum(sum(counts.values()) for counts in self._stats.values())
        return orjson.dumps({"total": total, "paths": paths})


def _shown(
    method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes | None
) -> dict[str, Any]:
    shown = {
        name.decode("latin-1"): "<present>" if name in REDACTED_HEADERS else value.decode("latin-1")
        for name, value in headers
    }
    parsed: Any
    if body is None:
        parsed = "<over 32 MiB>"
    else:
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = body.decode("utf-8", "replace")
    return {"method": method, "path": path, "headers": shown, "body": parsed}


def parse_outage(raw: bytes | None) -> tuple[int, float]:
    """``{"status": 503|429|500, "seconds": s}`` as (status, seconds), or ``InvalidSimRequest``."""
    try:
        request = orjson.loads(raw or b"")
        status = request["status"]
        seconds = float(request["seconds"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        status, seconds = None, float("nan")
    if status not in OUTAGE_STATUSES or not 0 < seconds <= MAX_OUTAGE_S:
        raise InvalidSimRequest('Send {"status": 503|429|500, "seconds": 0 < s <= 86400}')
    return status, seconds
