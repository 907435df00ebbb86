"""What a planned call is, the demo's gateway keys, and when people call (seeded, pure).

Shared by the steady traffic (``sim.traffic``) and the demo's cases (``sim.cases``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

__all__ = ["DEMO_KEYS", "WORDS", "PlannedCall", "busy_moment", "ns"]

# The demo's gateway keys: one per team, and support's key for its background jobs (their
# SHA-256 is in sample_data/gateway.toml).
DEMO_KEYS: Final = {
    "search": "aigw-demo-key-search",
    "support": "aigw-demo-key-support",
    "platform": "aigw-demo-key-platform",
    "research": "aigw-demo-key-research",
    "support-jobs": "aigw-demo-key-support-jobs",
}
WORDS: Final = (
    "invoice",
    "latency",
    "customer",
    "churn",
    "cohort",
    "pipeline",
    "retry",
    "schema",
    "index",
    "shard",
    "replica",
    "cache",
    "budget",
    "forecast",
    "anomaly",
    "release",
    "rollout",
    "canary",
    "feature",
    "flag",
    "tenant",
    "region",
    "quota",
)


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """One call: when (unixnano), with which key, where, what body and headers.

    ``key`` names the ``DEMO_KEYS`` entry ("": the team's); ``headers`` are sent besides
    the key, the metadata and the simulated time (e.g. ``cf-aig-skip-cache``)."""

    ts_ns: int
    team: str
    path: str
    body: dict[str, Any]
    metadata: dict[str, str]
    runaway: bool = False
    key: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def gateway_key(self) -> str:
        """The gateway key the call carries."""
        return DEMO_KEYS[self.key or self.team]


def busy_moment(rng: random.Random, start: datetime, days: float) -> datetime:
    """A moment in ``days`` from ``start``: working hours and weekdays are busier (by
    rejection sampling)."""
    while True:
        moment = start + timedelta(seconds=rng.uniform(0, days * 86400))
        weight = (1.0 if 8 <= moment.hour < 19 else 0.3) * (0.4 if moment.weekday() >= 5 else 1.0)
        if rng.random() < weight:
            return moment


def ns(moment: datetime) -> int:
    """``moment`` in unixnano (whole microseconds)."""
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000
