"""Rate limits and budgets of a route, applied to one request.

Subjects (``per``): ``key`` (the gateway key's id), ``route``, ``ip`` (rate limits
only) or ``metadata:<name>`` (a ``cf-aig-metadata`` value such as the user or agent).
Token limits are charged an estimate of the input tokens before the call
(characters / 4) and settled with the actual input plus output tokens after it.
Budgets are USD per UTC day or month, from the same prices as the logs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from proxy.config import BudgetSettings, KeyIdentity, LimitSettings, RouteSettings
from proxy.stores import Limit, RateLimiter, SpendCounter

__all__ = [
    "BudgetCheck",
    "Charged",
    "Denied",
    "check_budget",
    "estimate_tokens",
    "rate_limit",
    "subject",
]


def subject(
    per: str,
    route: RouteSettings,
    identity: KeyIdentity | None,
    client_ip: str | None,
    metadata: Mapping[str, Any] | None,
) -> str:
    """The value a limit or budget counts by (``-`` when the request has none)."""
    if per == "key":
        return identity.id if identity else "-"
    if per == "route":
        return route.name
    if per == "ip":
        return client_ip or "-"
    name = per.removeprefix("metadata:")
    value = (metadata or {}).get(name)
    return "-" if value is None else str(value)


def estimate_tokens(texts: list[str]) -> int:
    """Input tokens before the call: about four characters a token."""
    return sum(len(text) for text in texts) // 4 + 1


@dataclass(slots=True)
class Charged:
    """The limits a request was charged against, to settle after the call."""

    key: str = ""
    limits: list[Limit] = field(default_factory=list)
    estimate: int = 0

    async def settle(self, limiter: RateLimiter, actual_tokens: int, now: float) -> None:
        delta = actual_tokens - self.estimate
        tokens = [limit for limit in self.limits if limit.unit == "tokens"]
        if tokens and delta:
            await limiter.settle(self.key, tokens, delta, now)


@dataclass(frozen=True, slots=True)
class Denied:
    limit: LimitSettings
    retry_after_s: int


async def rate_limit(  # noqa: PLR0917 - one call site, in the pipeline's order of facts
    limiter: RateLimiter,
    route: RouteSettings,
    identity: KeyIdentity | None,
    client_ip: str | None,
    metadata: Mapping[str, Any] | None,
    estimate: int,
    now: float,
) -> tuple[Charged, Denied | None]:
    """Charge every limit of ``route`` at once: all or nothing, so a refused request
    uses up none of them. Each limit counts per its own subject (the subject is part of
    the limit's name in the store)."""
    charged = Charged(key=f"route:{route.name}", estimate=estimate)
    by_name: dict[str, LimitSettings] = {}
    for settings in route.rate_limits:
        who = subject(settings.per, route, identity, client_ip, metadata)
        name = f"{settings.name}:{who}"
        by_name[name] = settings
        charged.limits.append(
            Limit(
                name=name,
                unit=settings.unit,  # type: ignore[arg-type]
                limit=settings.limit,
                window_s=settings.window_s,
                sliding=settings.sliding,
            )
        )
    if not charged.limits:
        return charged, None
    cost = {"requests": 1, "tokens": estimate}
    decision = await limiter.acquire(charged.key, charged.limits, cost, now)
    if decision.allowed or decision.limit is None:
        return charged, None
    return charged, Denied(by_name[decision.limit.name], max(1, math.ceil(decision.retry_after_s)))


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    settings: BudgetSettings
    key: str
    period: str
    spent_usd: float

    @property
    def exceeded(self) -> bool:
        return self.spent_usd >= self.settings.usd

    def message(self) -> str:
        who = self.key.split(":", 1)[1]
        return (
            f"budget of ${self.settings.usd:,.2f} per {self.settings.period} for "
            f"{self.settings.per} {who} is spent (${self.spent_usd:,.2f}); it resets at the "
            f"start of the next {self.settings.period} (UTC)"
        )


def period_label(period: str, now: datetime) -> str:
    return f"day:{now:%Y-%m-%d}" if period == "day" else f"month:{now:%Y-%m}"


async def check_budget(
    counter: SpendCounter,
    route: RouteSettings,
    identity: KeyIdentity | None,
    metadata: Mapping[str, Any] | None,
    now: datetime,
) -> BudgetCheck | None:
    """What the route's budget subject has spent this period (None: no budget)."""
    settings = route.budget
    if settings is None:
        return None
    key = f"{route.name}:{subject(settings.per, route, identity, None, metadata)}"
    period = period_label(settings.period, now)
    return BudgetCheck(settings, key, period, await counter.total(key, period))
