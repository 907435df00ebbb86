"""What the gateway talks to: provider sessions, stores, log writer, prices and clock.

Built once at start-up by :class:`proxy.asgi.GatewayApp`, which owns every part and closes
it at shutdown; the pipeline (:mod:`proxy.pipeline`) and the answer path
(:mod:`proxy.responses`, :mod:`proxy.streaming`) only use them. A module of its own so that
those depend on it and not on each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from models.request_pricing import RequestPricer
from proxy.config import GatewayConfig
from proxy.logs import RecordSink
from proxy.providers import Upstream
from proxy.stores import RateLimiter, ResponseCache, SpendCounter
from proxy.telemetry import GatewayMetrics

__all__ = ["CacheClock", "Services"]


class CacheClock:
    """The response cache's clock, unix seconds: the wall clock, or under ``aigw simulate``
    the simulated time of the latest request, so that TTLs run on the simulated days (eight
    days pass in a minute: on the wall clock no entry would ever expire)."""

    __slots__ = ("simulated_ns",)

    def __init__(self) -> None:
        self.simulated_ns: int | None = None  # set by the pipeline, simulated requests only

    def __call__(self) -> float:
        return time.time() if self.simulated_ns is None else self.simulated_ns / 1e9


@dataclass(slots=True)
class Services:
    """Everything the gateway talks to; used on the gateway's one event loop."""

    config: GatewayConfig
    upstream: Upstream
    logs: RecordSink  # one record per attempt (the LogWriter); submit never blocks
    cache: ResponseCache
    limiter: RateLimiter
    spend: SpendCounter
    pricer: RequestPricer
    metrics: GatewayMetrics  # counted on the way; never changes what a request gets
    clock: Callable[[], int] = time.time_ns  # unixnano
    # `aigw simulate` only (never from config): the request's time comes from SIM_TIME_HEADER.
    simulated_time: bool = False
    cache_clock: CacheClock = field(default_factory=CacheClock)  # the cache store's too
