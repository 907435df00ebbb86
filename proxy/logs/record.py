"""One log record per attempt, in Cloudflare's Logpush ``ai_gateway_events`` shape.

Cloudflare's fields (``Timestamp`` as unixnano, ``Gateway``, ``Provider``, ``Model``,
``RequestedModel``, ``Endpoint``, ``StatusCode``, ``Cached``, ``RateLimited``,
``Metrics``, ``Metadata``, ``RequestBody``, ``ResponseBody``) plus this gateway's
extension fields (``LogId``, ``EventId``, ``Step``, ``Route``, ``ApiKeyId``,
``DlpAction``, ``DlpCategories``, ``GuardrailAction``, ``GuardrailCategories``,
``CacheKeyHash``, ``CacheSkipped``, ``RequestSha256``, ``ResponseSha256``,
``PromptPrefixHash``, ``PromptPrefixTokens``).

Bodies: by default only SHA-256 hashes; with ``log_bodies`` the bodies as sent
upstream and to the client, which are the DLP-redacted ones whenever DLP is on.
Secrets found by DLP never reach a record: only category names do.

The path of a record: the pipeline makes one ``RequestLog`` per client request, with the
gateway's ``RecordSink`` (its ``LogWriter``); every attempt, refusal or cache hit is one
``RequestLog.submit_attempt`` call, which builds the record and submits it to the sink.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from core import logpush
from models.request_pricing import Usage

__all__ = ["RecordSink", "RefusalGate", "RequestLog", "new_log_id"]

_log = logging.getLogger("aigw.proxy")


class RecordSink(Protocol):
    """Where finished records go: in the gateway, its :class:`proxy.logs.LogWriter`.

    ``submit`` must not block the event loop; the record dict passes to the sink and is not
    changed by the caller afterwards.
    """

    def submit(self, record: dict[str, Any]) -> None:
        """Take one record (a Logpush-shaped dict) for writing."""
        ...


def new_log_id() -> str:
    """A time-ordered unique id: 16 hex digits of unixnano, then 16 random hex digits."""
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"


@dataclass(slots=True)
class RequestLog:
    """What is known of one client request, and where its records go.

    ``submit_attempt`` makes one record per attempt and submits it to ``sink``. Used by one
    request's task only (not thread-safe).
    """

    sink: RecordSink
    gateway: str
    endpoint: str | None  # None until known (a request refused for its path)
    requested_model: str | None
    route: str | None
    api_key_id: str | None
    metadata: dict[str, Any] | None
    event_id: str | None
    log_bodies: bool
    ts_ns: int = field(default_factory=time.time_ns)  # the request's time (the gateway's clock)
    t0: int = field(default_factory=time.perf_counter_ns)  # when it arrived (monotonic)
    dlp_action: str | None = None
    dlp_categories: tuple[str, ...] = ()
    guardrail_action: str | None = None
    guardrail_categories: tuple[str, ...] = ()
    cache_key_hash: str | None = None
    cache_skipped: bool = False  # the client sent cf-aig-skip-cache
    prompt_prefix: tuple[str, int] | None = None  # hash and estimated tokens (prompt_prefix)
    request_body: Any = None  # what went upstream (redacted when DLP redacts)
    request_bytes: bytes = b""
    records: int = 0  # submitted so far
    upstream_ns: int = 0  # time spent waiting on providers, every attempt (for metrics)

    def submit_attempt(
        self,
        *,
        step: int,
        provider: str | None,
        model: str | None,
        status: int,
        started: int,
        usage: Usage | None = None,
        cost: float | None = None,
        cached: bool = False,
        rate_limited: bool = False,
        response_body: Any = None,
        response_bytes: bytes = b"",
        reason: str | None = None,
        log_id: str | None = None,
    ) -> None:
        """Log one attempt (``step`` 0 = first provider tried) that began at ``started``
        (``time.perf_counter_ns``): build its record and submit it to ``sink``. Its Timestamp
        is the request's time plus the time since the request arrived, so attempts sort in
        order. ``cost`` is USD; ``reason`` says why the attempt went as it did (failover,
        refusal, reroute)."""
        elapsed_ms = round((time.perf_counter_ns() - started) / 1e6, 3)
        metrics: dict[str, Any] = {logpush.METRIC_DURATION_MS: elapsed_ms}
        if cost is not None:
            metrics[logpush.METRIC_COST] = cost
        if usage is not None:
            metrics[logpush.METRIC_TOKENS_IN] = usage.tokens_in
            metrics[logpush.METRIC_TOKENS_OUT] = usage.tokens_out
            metrics[logpush.METRIC_CACHE_READ_TOKENS] = usage.cache_read
            metrics[logpush.METRIC_CACHE_WRITE_TOKENS] = usage.cache_write
            if usage.cache_write_1h:
                metrics[logpush.METRIC_CACHE_WRITE_1H_TOKENS] = usage.cache_write_1h
        record: dict[str, Any] = {
            logpush.TIMESTAMP: self.ts_ns + max(started - self.t0, 0),
            logpush.LOG_ID: log_id or new_log_id(),
            logpush.GATEWAY: self.gateway,
            logpush.PROVIDER: provider,
            logpush.MODEL: model,
            logpush.REQUESTED_MODEL: self.requested_model,
            logpush.ENDPOINT: self.endpoint,
            logpush.STATUS_CODE: status,
            logpush.CACHED: cached,
            logpush.RATE_LIMITED: rate_limited,
            logpush.METRICS: metrics,
            logpush.METADATA: self.metadata,
            logpush.STEP: step,
            logpush.ROUTE: self.route,
            logpush.API_KEY_ID: self.api_key_id,
        }
        if self.event_id is not None:
            record[logpush.EVENT_ID] = self.event_id
        if reason is not None:
            record[logpush.ROUTING_REASON] = reason
        if self.dlp_action is not None:
            record[logpush.DLP_ACTION] = self.dlp_action
            record[logpush.DLP_CATEGORIES] = list(self.dlp_categories)
        if self.guardrail_action is not None:
            record[logpush.GUARDRAIL_ACTION] = self.guardrail_action
            record[logpush.GUARDRAIL_CATEGORIES] = list(self.guardrail_categories)
        if self.cache_key_hash is not None:
            record[logpush.CACHE_KEY_HASH] = self.cache_key_hash
        if self.cache_skipped:
            record[logpush.CACHE_SKIPPED] = True
        if self.prompt_prefix is not None:
            record[logpush.PROMPT_PREFIX_HASH], record[logpush.PROMPT_PREFIX_TOKENS] = (
                self.prompt_prefix
            )
        if self.log_bodies:
            record[logpush.REQUEST_BODY] = self.request_body
            record[logpush.RESPONSE_BODY] = response_body
        else:
            if self.request_bytes:
                record[logpush.REQUEST_SHA256] = hashlib.sha256(self.request_bytes).hexdigest()
            if response_bytes:
                record[logpush.RESPONSE_SHA256] = hashlib.sha256(response_bytes).hexdigest()
        self.records += 1
        self.sink.submit(record)


class RefusalGate:
    """How many records of refused requests without an accepted gateway key are kept: at
    most ``per_ip`` per client IP and ``overall`` in all per window of ``window_s`` seconds
    (``clock``: monotonic seconds). The rest are counted; ``summarise`` puts one warning
    line on the ``aigw.proxy`` log saying how many were left out. Not thread-safe: one
    event loop."""

    def __init__(
        self,
        per_ip: int,
        overall: int,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_ip = per_ip
        self.overall = overall
        self.window_s = window_s
        self._clock = clock
        self._start = clock()
        self._kept: dict[str | None, int] = {}  # per client IP, this window
        self._kept_all = 0
        self.left_out = 0  # since the last summary

    def allow(self, client_ip: str | None) -> bool:
        """Whether to keep the record of one more refusal from ``client_ip``."""
        now = self._clock()
        if now - self._start >= self.window_s:
            self._start, self._kept, self._kept_all = now, {}, 0
        kept = self._kept.get(client_ip, 0)
        if kept >= self.per_ip or self._kept_all >= self.overall:
            self.left_out += 1
            return False
        self._kept[client_ip] = kept + 1
        self._kept_all += 1
        return True

    def summarise(self) -> None:
        """Log how many records were left out since the last summary (nothing if none)."""
        if self.left_out:
            _log.warning(
                "%d records of refused unauthenticated requests left out (limits: %d per "
                "client IP, %d in all, per %g s)",
                self.left_out,
                self.per_ip,
                self.overall,
                self.window_s,
            )
            self.left_out = 0
