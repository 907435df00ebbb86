"""``gateway.toml``: the gateway's settings, read and checked once at start-up.

``load_gateway_config(path, environ)`` returns a frozen ``GatewayConfig`` or raises
``GatewayConfigError`` naming the file, the key and the reason. Provider API keys
are never written in the file: each provider names the environment variable that
holds its key. Gateway keys are given as the SHA-256 of the key (``sha256``) or
by environment variable (``env``). See ``sample_data/gateway.toml``.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from proxy.errors import GatewayConfigError
from proxy.serving import ServerSettings
from proxy.settings import (
    BudgetSettings,
    Fallback,
    GatewayConfig,
    KeyIdentity,
    LimitSettings,
    LogSettings,
    ProviderSettings,
    RouteSettings,
    TelemetrySettings,
)
from proxy.stores import is_redis_url, redacted

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
    "load_gateway_config",
]

PROVIDER_KINDS: Final = ("openai", "anthropic")
GUARDRAIL_MODES: Final = ("off", "monitor", "block")
DLP_MODES: Final = ("off", "flag", "redact", "block")
LIMIT_UNITS: Final = ("requests", "tokens")
BUDGET_PERIODS: Final = ("day", "month")
BUDGET_ACTIONS: Final = ("reject", "reroute")
METRICS_ACCESS: Final = ("key", "open", "off")  # who may read GET /metrics
CACHE_SCOPES: Final = ("key", "team", "shared")  # whose cached answers a request may read
SERVER_LIMITS: Final = tuple(limit.name for limit in fields(ServerSettings))
# A record holds the request body one level down, and orjson writes at most 254 levels.
MAX_JSON_DEPTH: Final = 200
_MAX: Final = 10**9
_GATEWAY_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_GATEWAY_NAME_RULE: Final = "1-64 letters, digits, '.', '_' or '-'"


def load_gateway_config(path: Path, environ: Mapping[str, str]) -> GatewayConfig:
    """Read and check ``path``; raise ``GatewayConfigError`` with file, key and reason."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GatewayConfigError(f"{path}: no such file; pass --config") from None
    except (OSError, UnicodeDecodeError) as err:
        raise GatewayConfigError(f"{path}: cannot read: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise GatewayConfigError(f"{path}: not valid TOML: {err}") from None
    return _Reader(path, environ).config(data)


class _Reader:
    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ

    def fail(self, key: str, reason: str) -> GatewayConfigError:
        return GatewayConfigError(f"{self.path}: {key}: {reason}")

    def table(self, data: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(_join(where, key), "must be a table")
        return value

    def value(  # noqa: PLR0917 - private; reads as "value of key in where, of kind"
        self,
        data: Mapping[str, Any],
        key: str,
        where: str,
        kind: type | tuple[type, ...],
        default: Any = None,
        choices: tuple[str, ...] | None = None,
    ) -> Any:
        value = data.get(key, default)
        if value is None:
            return None
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            names = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise self.fail(_join(where, key), f"must be {_article(names)} (got {value!r})")
        if choices is not None and value not in choices:
            raise self.fail(
                _join(where, key), f"must be one of {', '.join(choices)} (got {value!r})"
            )
        return value

    def unknown(self, data: Mapping[str, Any], allowed: set[str], where: str) -> None:
        extra = sorted(set(data) - allowed)
        if extra:
            raise self.fail(_join(where, extra[0]), "unknown setting (check its spelling)")

    def config(self, data: dict[str, Any]) -> GatewayConfig:
        self.unknown(
            data,
            {
                "server",
                "auth",
                "providers",
                "routes",
                "logs",
                "cache",
                "limits",
                "pricing",
                "telemetry",
            },
            "",
        )
        server = self.table(data, "server", "")
        self.unknown(
            server,
            {
                "host",
                "port",
                "gateway",
                "gateways",
                "max_json_depth",
                "per_worker_limits",
                *SERVER_LIMITS,
            },
            "server",
        )
        auth = self.table(data, "auth", "")
        self.unknown(auth, {"required", "keys"}, "auth")
        providers = self.providers(self.table(data, "providers", ""))
        routes = self.routes(self.table(data, "routes", ""), providers)
        keys = self.keys(auth.get("keys", []))
        required = self.value(auth, "required", "auth", bool, True)
        if required and not keys:
            raise self.fail(
                "auth.keys", "no gateway keys; add [[auth.keys]] or set required = false"
            )
        cache = self.table(data, "cache", "")
        self.unknown(cache, {"url", "path"}, "cache")
        limits = self.table(data, "limits", "")
        self.unknown(limits, {"url"}, "limits")
        pricing = self.table(data, "pricing", "")
        self.unknown(pricing, {"price_file"}, "pricing")
        port = self.value(server, "port", "server", int, 8080)
        if not 0 <= port <= 65535:
            raise self.fail("server.port", f"must be 0-65535 (got {port})")
        return GatewayConfig(
            path=self.path,
            host=self.value(server, "host", "server", str, "127.0.0.1"),
            port=port,
            gateway=self.gateway_name(self.value(server, "gateway", "server", str, "default")),
            gateways=frozenset(
                self.gateway_name(name, "server.gateways")
                for name in self.strings(server, "gateways", "server")
            ),
            max_json_depth=self.count(server, "max_json_depth", "server", 64, MAX_JSON_DEPTH),
            per_worker_limits=self.value(server, "per_worker_limits", "server", bool, False),
            server=self.server(server),
            auth_required=required,
            keys=keys,
            providers=providers,
            routes=routes,
            logs=self.logs(self.table(data, "logs", "")),
            cache_url=self.store_url(cache, "cache", files=True),
            cache_path=self.value(cache, "path", "cache", str, "data/gateway-cache.sqlite"),
            state_url=self.store_url(limits, "limits", files=False),
            price_file=self.value(pricing, "price_file", "pricing", str) or None,
            telemetry=self.telemetry(self.table(data, "telemetry", "")),
        )

    def telemetry(self, table: Mapping[str, Any]) -> TelemetrySettings:
        """``[telemetry]``; the multi-process metrics folder comes from the environment."""
        where = "telemetry"
        self.unknown(table, {"metrics", "max_model_labels", "otlp_endpoint", "service_name"}, where)
        endpoint = self.value(table, "otlp_endpoint", where, str) or None
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise self.fail("telemetry.otlp_endpoint", f"must be an http(s) URL (got {endpoint!r})")
        return TelemetrySettings(
            metrics=self.value(table, "metrics", where, str, "key", METRICS_ACCESS),
            max_model_labels=self.count(table, "max_model_labels", where, 50, 1000),
            otlp_endpoint=endpoint.rstrip("/") if endpoint else None,
            service_name=self.value(table, "service_name", where, str, "aigw-gateway"),
            multiprocess_dir=self.environ.get("PROMETHEUS_MULTIPROC_DIR") or None,
        )

    def server(self, table: Mapping[str, Any]) -> ServerSettings:
        """``[server]``'s limits: positive numbers; headers 1 KiB-1 MiB (a key needs room)."""
        default = ServerSettings()
        limits: dict[str, Any] = {}
        for key in SERVER_LIMITS:
            if key.endswith("_s"):
                limits[key] = self.positive(table, key, "server", getattr(default, key))
                continue
            limits[key] = value = self.value(table, key, "server", int, getattr(default, key))
            if value <= 0:
                raise self.fail(f"server.{key}", f"must be a positive integer (got {value})")
        header_bytes = limits["max_header_bytes"]
        if not 1024 <= header_bytes <= 1024 * 1024:
            raise self.fail("server.max_header_bytes", f"must be 1024-1048576 (got {header_bytes})")
        return ServerSettings(**limits)

    def store_url(self, table: Mapping[str, Any], where: str, *, files: bool) -> str | None:
        """``[where] url``: unset, ``redis://…``, and for the cache a file path or
        ``sqlite:///path``, for limits ``memory://``; anything else fails here, at start-up."""
        url: str | None = self.value(table, "url", where, str) or None
        if url is not None and "://" in url:
            try:
                urlsplit(url).port  # noqa: B018 -- parses host and port, raising if malformed
            except ValueError:
                raise self.fail(
                    f"{where}.url", f"is not a valid URL (got {redacted(url)!r})"
                ) from None
        if url is None or is_redis_url(url) or (url == "memory://" and not files):
            return url
        if files and ("://" not in url or url.startswith("sqlite:///")):
            return url
        shapes = (
            "a file path, sqlite:///path or redis://host:port/db"
            if files
            else "redis://host:port/db"
        )
        raise self.fail(f"{where}.url", f"must be {shapes}, or unset (got {redacted(url)!r})")

    def keys(self, entries: Any) -> dict[str, KeyIdentity]:
        if not isinstance(entries, list):
            raise self.fail("auth.keys", "must be an array of tables ([[auth.keys]])")
        keys: dict[str, KeyIdentity] = {}
        for index, entry in enumerate(entries):
            where = f"auth.keys[{index}]"
            if not isinstance(entry, dict):
                raise self.fail(where, "must be a table")
            self.unknown(entry, {"id", "team", "sha256", "env"}, where)
            key_id = self.value(entry, "id", where, str)
            if not key_id:
                raise self.fail(f"{where}.id", "missing")
            digest = self.value(entry, "sha256", where, str)
            env = self.value(entry, "env", where, str)
            if (digest is None) == (env is None):
                raise self.fail(where, "give exactly one of sha256 or env")
            if env is not None:
                secret = self.environ.get(env)
                if not secret:
                    raise self.fail(f"{where}.env", f"environment variable {env} is not set")
                digest = hashlib.sha256(secret.encode()).hexdigest()
            elif len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                raise self.fail(f"{where}.sha256", "must be 64 hex digits (sha256 of the key)")
            keys[digest.lower()] = KeyIdentity(key_id, self.value(entry, "team", where, str))
        return keys

    def providers(self, table: dict[str, Any]) -> dict[str, ProviderSettings]:
        if not table:
            raise self.fail("providers", "no providers; add a [providers.NAME] table")
        providers = {}
        for name, entry in table.items():
            where = f"providers.{name}"
            if not isinstance(entry, dict):
                raise self.fail(where, "must be a table")
            allowed = {"kind", "base_url", "api_key_env", "timeout_s", "connect_timeout_s"}
            self.unknown(entry, allowed | {"catalog_name"}, where)
            kind = self.value(entry, "kind", where, str, name, PROVIDER_KINDS)
            base_url = self.value(entry, "base_url", where, str)
            if not base_url or not base_url.startswith(("http://", "https://")):
                raise self.fail(f"{where}.base_url", "must be an http(s) URL")
            env = self.value(entry, "api_key_env", where, str)
            api_key = None
            if env:
                api_key = self.environ.get(env)
                if not api_key:
                    raise self.fail(
                        f"{where}.api_key_env", f"environment variable {env} is not set"
                    )
            providers[name] = ProviderSettings(
                name=name,
                kind=kind,
                base_url=base_url.rstrip("/"),
                api_key=api_key,
                timeout_s=self.positive(entry, "timeout_s", where, 60.0),
                connect_timeout_s=self.positive(entry, "connect_timeout_s", where, 5.0),
                catalog_name=self.value(entry, "catalog_name", where, str),
            )
        return providers

    def strings(self, data: Mapping[str, Any], key: str, where: str) -> list[str]:
        value: list[Any] = self.value(data, key, where, list, [])
        if not all(isinstance(item, str) for item in value):
            raise self.fail(_join(where, key), "must be a list of strings")
        return [str(item) for item in value]

    def gateway_name(self, name: str, key: str = "server.gateway") -> str:
        if not _GATEWAY_NAME.fullmatch(name):
            raise self.fail(key, f"{name[:64]!r} is not a gateway name ({_GATEWAY_NAME_RULE})")
        return name

    def count(self, data: Mapping[str, Any], key: str, where: str, default: int, most: int) -> int:
        value = int(self.value(data, key, where, int, default))
        if not 1 <= value <= most:
            raise self.fail(_join(where, key), f"must be 1-{most} (got {value})")
        return value

    def positive(self, data: Mapping[str, Any], key: str, where: str, default: float) -> float:
        value = float(self.value(data, key, where, float, default))
        if value <= 0:
            raise self.fail(_join(where, key), f"must be positive (got {value})")
        return value

    def routes(
        self, table: dict[str, Any], providers: Mapping[str, ProviderSettings]
    ) -> tuple[RouteSettings, ...]:
        routes = []
        for name, entry in table.items():
            where = f"routes.{name}"
            if not isinstance(entry, dict):
                raise self.fail(where, "must be a table")
            allowed = {"match", "provider", "cache", "cache_ttl_s", "cache_scope", "guardrails"}
            allowed |= {"guardrail_responses", "dlp", "dlp_responses", "fallbacks"}
            self.unknown(entry, allowed | {"cache_secrets", "rate_limits", "budget"}, where)
            match = self.value(entry, "match", where, list, ["*"])
            if not match or not all(isinstance(glob, str) for glob in match):
                raise self.fail(f"{where}.match", "must be a non-empty list of model globs")
            provider = self.value(entry, "provider", where, str)
            if provider is not None and provider not in providers:
                raise self.fail(f"{where}.provider", f"no provider called {provider!r}")
            routes.append(
                RouteSettings(
                    name=name,
                    match=tuple(match),
                    provider=provider,
                    cache=self.value(entry, "cache", where, bool, False),
                    cache_ttl_s=self.positive(entry, "cache_ttl_s", where, 300.0),
                    cache_scope=self.value(entry, "cache_scope", where, str, "key", CACHE_SCOPES),
                    cache_secrets=self.value(entry, "cache_secrets", where, bool, False),
                    guardrails=self.value(entry, "guardrails", where, str, "off", GUARDRAIL_MODES),
                    guardrail_responses=self.value(
                        entry, "guardrail_responses", where, bool, False
                    ),
                    dlp=self.value(entry, "dlp", where, str, "off", DLP_MODES),
                    dlp_responses=self.value(entry, "dlp_responses", where, bool, False),
                    fallbacks=self.fallbacks(entry.get("fallbacks", []), where, providers),
                    rate_limits=self.limits(entry.get("rate_limits", []), where),
                    budget=self.budget(entry.get("budget"), where, providers),
                )
            )
        return tuple(routes)

    def fallbacks(
        self, entries: Any, where: str, providers: Mapping[str, ProviderSettings]
    ) -> tuple[Fallback, ...]:
        if not isinstance(entries, list):
            raise self.fail(f"{where}.fallbacks", "must be an array of tables")
        result = []
        for index, entry in enumerate(entries):
            at = f"{where}.fallbacks[{index}]"
            if not isinstance(entry, dict):
                raise self.fail(at, 'must be a table like { provider = "anthropic" }')
            self.unknown(entry, {"provider", "model"}, at)
            provider = self.value(entry, "provider", at, str)
            if provider not in providers:
                raise self.fail(f"{at}.provider", f"no provider called {provider!r}")
            result.append(Fallback(provider, self.value(entry, "model", at, str)))
        return tuple(result)

    def limits(self, entries: Any, where: str) -> tuple[LimitSettings, ...]:
        if not isinstance(entries, list):
            raise self.fail(f"{where}.rate_limits", "must be an array of tables")
        result = []
        for index, entry in enumerate(entries):
            at = f"{where}.rate_limits[{index}]"
            if not isinstance(entry, dict):
                raise self.fail(at, "must be a table")
            self.unknown(entry, {"name", "per", "unit", "limit", "window_s", "sliding"}, at)
            per = self.per(entry, at, ("key", "route", "ip"))
            limit = self.value(entry, "limit", at, int)
            if limit is None or limit <= 0:
                raise self.fail(f"{at}.limit", "must be a positive integer")
            result.append(
                LimitSettings(
                    name=self.value(entry, "name", at, str, f"limit-{index}"),
                    per=per,
                    unit=self.value(entry, "unit", at, str, "requests", LIMIT_UNITS),
                    limit=limit,
                    window_s=self.positive(entry, "window_s", at, 60.0),
                    sliding=self.value(entry, "sliding", at, bool, False),
                )
            )
        return tuple(result)

    def per(self, entry: Mapping[str, Any], at: str, plain: tuple[str, ...]) -> str:
        per = self.value(entry, "per", at, str, "key")
        if per not in plain and not (per.startswith("metadata:") and len(per) > len("metadata:")):
            choices = ", ".join((*plain, "metadata:<name>"))
            raise self.fail(f"{at}.per", f"must be one of {choices} (got {per!r})")
        return str(per)

    def budget(
        self, entry: Any, where: str, providers: Mapping[str, ProviderSettings]
    ) -> BudgetSettings | None:
        if entry is None:
            return None
        at = f"{where}.budget"
        if not isinstance(entry, dict):
            raise self.fail(at, "must be a table")
        self.unknown(entry, {"usd", "period", "per", "action", "reroute"}, at)
        usd = self.positive(entry, "usd", at, 0.0) if "usd" in entry else None
        if usd is None:
            raise self.fail(f"{at}.usd", "missing")
        action = self.value(entry, "action", at, str, "reject", BUDGET_ACTIONS)
        reroute = self.value(entry, "reroute", at, str)
        if action == "reroute":
            if not reroute or "/" not in reroute:
                raise self.fail(f"{at}.reroute", 'must be "provider/model" when action is reroute')
            if reroute.split("/", 1)[0] not in providers:
                raise self.fail(f"{at}.reroute", f"no provider called {reroute.split('/', 1)[0]!r}")
        return BudgetSettings(
            usd=usd,
            period=self.value(entry, "period", at, str, "day", BUDGET_PERIODS),
            per=self.per(entry, at, ("key", "route")),
            action=action,
            reroute=reroute,
        )

    def logs(self, table: dict[str, Any]) -> LogSettings:
        where = "logs"
        allowed = {"destination", "endpoint_url", "max_records", "max_bytes", "max_interval_s"}
        allowed.add("sync_interval_s")
        allowed |= {"spool_dir", "log_bodies", "refusals_per_ip_per_min", "refusals_per_min"}
        self.unknown(table, allowed, where)
        max_records = self.value(table, "max_records", where, int, 100_000)
        max_bytes = self.value(table, "max_bytes", where, int, 5_000_000)
        if max_records <= 0 or max_bytes <= 0:
            raise self.fail(where, "max_records and max_bytes must be positive")
        return LogSettings(
            destination=self.value(table, "destination", where, str, "data/gateway-logs"),
            endpoint_url=self.value(table, "endpoint_url", where, str) or None,
            max_records=max_records,
            max_bytes=max_bytes,
            max_interval_s=self.positive(table, "max_interval_s", where, 30.0),
            sync_interval_s=self.positive(table, "sync_interval_s", where, 0.2),
            spool_dir=self.value(table, "spool_dir", where, str, "data/gateway-spool"),
            log_bodies=self.value(table, "log_bodies", where, bool, False),
            refusals_per_ip_per_min=self.count(table, "refusals_per_ip_per_min", where, 600, _MAX),
            refusals_per_min=self.count(table, "refusals_per_min", where, 6000, _MAX),
        )


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _article(names: str) -> str:
    return ("an " if names[:1] in "aeiou" else "a ") + {
        "str": "string",
        "int": "integer",
        "float": "number",
        "bool": "boolean",
        "list": "array",
    }.get(names, names)
