"""The gateway's settings as frozen dataclasses: what ``proxy.config`` reads from
``gateway.toml`` and every other module of the gateway receives (read-only)."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from proxy.serving import ServerSettings

__all__ = [
    "BudgetSettings",
    "Fallback",
    "GatewayConfig",
    "KeyIdentity",
    "LimitSettings",
    "LogSettings",
    "ProviderSettings",
    "RouteSettings",
    "ServerSettings",
    "TelemetrySettings",
]


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    """Who a gateway key belongs to (the key itself is never kept)."""

    id: str
    team: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    name: str
    kind: str  # "openai" or "anthropic": the API the provider speaks
    base_url: str  # openai kind: up to and including /v1; anthropic kind: without /v1
    api_key: str | None = field(repr=False)  # from the environment, never from the file
    timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    catalog_name: str | None = None  # provider slug for pricing; default: name


@dataclass(frozen=True, slots=True)
class Fallback:
    provider: str
    model: str | None = None  # None: the requested model


@dataclass(frozen=True, slots=True)
class LimitSettings:
    name: str
    per: str  # "key", "route", "ip" or "metadata:<name>"
    unit: str  # "requests" or "tokens"
    limit: int
    window_s: float
    sliding: bool = False


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    usd: float
    period: str  # "day" or "month" (UTC)
    per: str  # "key", "route" or "metadata:<name>"
    action: str = "reject"  # or "reroute"
    reroute: str | None = None  # "provider/model" when action is reroute


@dataclass(frozen=True, slots=True)
class RouteSettings:
    name: str
    match: tuple[str, ...] = ("*",)
    provider: str | None = None  # for models given without a provider/ prefix
    cache: bool = False
    cache_ttl_s: float = 300.0
    cache_scope: str = "key"  # "key", "team" or "shared" (see proxy.cache_policy)
    cache_secrets: bool = False  # keep answers in which DLP finds a secret
    guardrails: str = "off"
    guardrail_responses: bool = False
    dlp: str = "off"
    dlp_responses: bool = False
    fallbacks: tuple[Fallback, ...] = ()
    rate_limits: tuple[LimitSettings, ...] = ()
    budget: BudgetSettings | None = None

    def matches(self, provider: str, model: str) -> bool:
        """Whether ``provider/model`` (or the bare model) matches one of the globs."""
        full = f"{provider}/{model}"
        return any(
            fnmatch.fnmatchcase(full, g) or fnmatch.fnmatchcase(model, g) for g in self.match
        )


@dataclass(frozen=True, slots=True)
class LogSettings:
    destination: str = "data/gateway-logs"  # folder, or s3://bucket/prefix
    endpoint_url: str | None = None  # S3-compatible endpoint (R2, MinIO)
    max_records: int = 100_000
    max_bytes: int = 5_000_000
    max_interval_s: float = 30.0
    sync_interval_s: float = 0.2  # records are fsynced to the journal within this
    spool_dir: str = "data/gateway-spool"
    log_bodies: bool = False
    # records of requests refused without an accepted gateway key (401, 404), per minute
    refusals_per_ip_per_min: int = 600
    refusals_per_min: int = 6000


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """``[telemetry]``: the Prometheus endpoint and OpenTelemetry export (off by default)."""

    metrics: str = "key"  # GET /metrics: "key" (any gateway key), "open" or "off"
    max_model_labels: int = 50  # distinct priced models kept as label values; others "other"
    otlp_endpoint: str | None = None  # OTLP/HTTP base URL (…/v1/traces); None: nothing sent
    service_name: str = "aigw-gateway"
    # PROMETHEUS_MULTIPROC_DIR from the environment: several processes share the metrics
    multiprocess_dir: str | None = None


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    path: Path
    host: str = "127.0.0.1"
    port: int = 8080
    gateway: str = "default"  # the gateway name logged for the /v1 endpoints
    # other names accepted as {gateway} in the passthrough path /{gateway}/{provider}/...
    gateways: frozenset[str] = frozenset()
    max_json_depth: int = 64  # request bodies nested deeper are refused (400)
    # several workers with in-process rate limits and budgets: each worker counts its own
    per_worker_limits: bool = False
    server: ServerSettings = field(default_factory=ServerSettings)
    auth_required: bool = True
    keys: Mapping[str, KeyIdentity] = field(default_factory=dict, repr=False)  # sha256 -> id
    providers: Mapping[str, ProviderSettings] = field(default_factory=dict)
    routes: tuple[RouteSettings, ...] = ()
    logs: LogSettings = LogSettings()
    cache_url: str | None = None
    cache_path: str = "data/gateway-cache.sqlite"
    state_url: str | None = None  # rate limits and budgets; redis:// to share
    price_file: str | None = None
    telemetry: TelemetrySettings = TelemetrySettings()

    @property
    def gateway_names(self) -> frozenset[str]:
        """Every gateway name this gateway serves (and logs)."""
        return self.gateways | {self.gateway}

    def needs_restart(self, new: GatewayConfig) -> list[str]:
        """The tables whose settings differ in ``new`` and cannot change while serving
        (sorted, e.g. ``["[logs]", "[providers]"]``); empty when ``new`` can be reloaded:
        only routes (their limits, budgets, DLP and guardrail modes), keys and names differ.
        """
        return sorted(
            {
                table
                for name, table in _RESTART_TABLES.items()
                if getattr(self, name) != getattr(new, name)
            }
        )

    def serves_gateway(self, name: str) -> bool:
        return name == self.gateway or name in self.gateways

    def route_for(self, provider: str, model: str) -> RouteSettings:
        for route in self.routes:
            if route.matches(provider, model):
                return route
        return _NO_ROUTE


_NO_ROUTE: Final = RouteSettings(name="default")
# GatewayConfig fields a reload cannot change (they make the server, stores, writer, metrics)
_RESTART_TABLES: Final = {
    "host": "[server]",
    "port": "[server]",
    "per_worker_limits": "[server]",
    "server": "[server]",
    "providers": "[providers]",
    "logs": "[logs]",
    "cache_url": "[cache]",
    "cache_path": "[cache]",
    "state_url": "[limits]",
    "price_file": "[pricing]",
    "telemetry": "[telemetry]",
}
