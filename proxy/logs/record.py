"""One log record per attempt, in Cloudflare's Logpush ``ai_gateway_events`` shape.

Cloudflare's fields (``Timestamp`` as unixnano, ``Gateway``, ``Provider``, ``Model``,
``RequestedModel``, ``Endpoint``, ``StatusCode``, ``Cached``, ``RateLimited``,
``Metrics``, ``Metadata``, ``RequestBody``, ``ResponseBody``) plus this gateway's
extension fields (``LogId``, ``EventId``, ``Step``, ``Route``, ``ApiKeyId``,
``DlpAction``, ``DlpCategories``, ``GuardrailAction``, ``GuardrailCategories``,
``CacheKeyHash``, ``RequestSha256``, ``ResponseSha256``).

Bodies: by default only SHA-256 hashes; with ``log_bodies`` the bodies as sent
upstream and to the client, which are the DLP-redacted ones whenever DLP is on.
Secrets found by DLP never reach a record: only category names do.

The path of a record: the pipeline makes one ``RequestLog`` per client request, with the
gateway's ``RecordSink`` (its ``LogWriter``); every attempt, refusal or cache hit is one
``RequestLog.submit_attempt`` call, which builds the record and submits it to the sink.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from core import logpush
from models.request_pricing import Usage

__all__ = ["RecordSink", "RequestLog", "new_log_id"]


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
    endpoint: str
    requested_model: str | None
    route: str
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
    request_body: Any = None  # what went upstream (redacted when DLP redacts)
    request_bytes: bytes = b""

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
        if self.log_bodies:
            record[logpush.REQUEST_BODY] = self.request_body
            record[logpush.RESPONSE_BODY] = response_body
        else:
            if self.request_bytes:
                record[logpush.REQUEST_SHA256] = hashlib.sha256(self.request_bytes).hexdigest()
            if response_bytes:
                record[logpush.RESPONSE_SHA256] = hashlib.sha256(response_bytes).hexdigest()
        self.sink.submit(record)
