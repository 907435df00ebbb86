"""gateway.toml: the sample loads; each kind of mistake names the file, the key and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import GatewayConfig, TelemetrySettings, load_gateway_config
from proxy.errors import GatewayConfigError
from proxy.serving import ServerSettings
from tests.conftest import REPO

PROVIDER = '[providers.openai]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
KEY = '[[auth.keys]]\nid = "a"\nsha256 = "' + "ab" * 32 + '"\n'


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> object:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return load_gateway_config(path, environ or {})


def error_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(GatewayConfigError) as info:
        load(tmp_path, text, environ)
    return str(info.value).removeprefix(f"{tmp_path / 'gateway.toml'}: ")


def test_the_sample_config_loads_with_its_routes() -> None:
    """sample_data/gateway.toml is valid; routes keep their order; keys are kept hashed."""
    config = load_gateway_config(
        REPO / "sample_data" / "gateway.toml", {"AIGW_SIMULATED_PROVIDER_KEY": "sk-sample-9f3e"}
    )
    assert [r.name for r in config.routes] == ["strict", "embeddings", "chat"]
    assert config.route_for("openai", "gpt-4.1-mini").name == "strict"
    assert config.route_for("openai", "gpt-4o").name == "chat"
    chat = config.routes[2]
    assert (chat.cache, chat.guardrails, chat.dlp) == (True, "monitor", "redact")
    assert (chat.cache_scope, chat.cache_secrets) == ("key", False)
    assert [r.name for r in chat.rate_limits] == ["per-user", "per-agent-tokens"]
    assert chat.budget is not None and chat.budget.reroute == "openai/gpt-4o-mini"
    assert {k.id for k in config.keys.values()} == {
        "search-app",
        "support-app",
        "platform-tools",
        "research-lab",
        "support-jobs",
    }
    assert "sk-sample-9f3e" not in repr(config)  # provider keys never in a repr
    assert config.server == ServerSettings(  # every [server] limit, at its default
        header_timeout_s=10.0,
        body_timeout_s=60.0,
        keepalive_timeout_s=5.0,
        max_connections=1000,
        max_header_bytes=32768,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "providers: no providers; add a [providers.NAME] table"),
        (PROVIDER, "auth.keys: no gateway keys; add [[auth.keys]] or set required = false"),
        (
            "[server]\nprot = 1\n" + PROVIDER + KEY,
            "server.prot: unknown setting (check its spelling)",
        ),
        (
            '[server]\ngateway = "../x"\n' + PROVIDER + KEY,
            "server.gateway: '../x' is not a gateway name (1-64 letters, digits, '.', '_' or '-')",
        ),
        (
            '[server]\ngateways = ["ok", 3]\n' + PROVIDER + KEY,
            "server.gateways: must be a list of strings",
        ),
        (
            PROVIDER.replace("http://127.0.0.1:9/v1", "ftp://x") + KEY,
            "providers.openai.base_url: must be an http(s) URL",
        ),
        (
            PROVIDER.replace('"openai"\n', '"gemini"\n', 1) + KEY,
            "providers.openai.kind: must be one of openai, anthropic (got 'gemini')",
        ),
        (
            PROVIDER + 'api_key_env = "NOPE"\n' + KEY,
            "providers.openai.api_key_env: environment variable NOPE is not set",
        ),
        (
            PROVIDER + '[[auth.keys]]\nid = "a"\nsha256 = "xyz"\n',
            "auth.keys[0].sha256: must be 64 hex digits (sha256 of the key)",
        ),
        (
            PROVIDER + KEY + '[routes.r]\ndlp = "mask"\n',
            "routes.r.dlp: must be one of off, flag, redact, block (got 'mask')",
        ),
        (
            PROVIDER + KEY + '[routes.r]\nfallbacks = [{ provider = "azure" }]\n',
            "routes.r.fallbacks[0].provider: no provider called 'azure'",
        ),
        (
            PROVIDER + KEY + '[routes.r]\nrate_limits = [{ per = "team", limit = 5 }]\n',
            "routes.r.rate_limits[0].per: "
            "must be one of key, route, ip, metadata:<name> (got 'team')",
        ),
        (
            PROVIDER + KEY + "[routes.r]\nrate_limits = [{ limit = 0 }]\n",
            "routes.r.rate_limits[0].limit: must be a positive integer",
        ),
        (
            PROVIDER + KEY + '[routes.r]\nbudget = { usd = 5, action = "reroute" }\n',
            'routes.r.budget.reroute: must be "provider/model" when action is reroute',
        ),
        (
            PROVIDER + KEY + '[routes.r]\ncache = "yes"\n',
            "routes.r.cache: must be a boolean (got 'yes')",
        ),
        (
            PROVIDER + KEY + '[routes.r]\ncache_scope = "everyone"\n',
            "routes.r.cache_scope: must be one of key, team, shared (got 'everyone')",
        ),
        (
            PROVIDER + KEY + "[routes.r]\ncache_scope = 1\n",
            "routes.r.cache_scope: must be a string (got 1)",
        ),
        (
            PROVIDER + KEY + '[routes.r]\ncache_secrets = "no"\n',
            "routes.r.cache_secrets: must be a boolean (got 'no')",
        ),
        (
            PROVIDER + KEY + "[routes.r]\ncache_secret = true\n",
            "routes.r.cache_secret: unknown setting (check its spelling)",
        ),
        (
            PROVIDER + KEY + '[limits]\nurl = "memcached://admin:hunter2@cache:11211"\n',
            "limits.url: must be redis://host:port/db, or unset (got 'memcached://cache:11211')",
        ),
        (
            PROVIDER + KEY + '[cache]\nurl = "s3://bucket/cache"\n',
            "cache.url: must be a file path, sqlite:///path or redis://host:port/db, or unset "
            "(got 's3://bucket/cache')",
        ),
        (
            PROVIDER + KEY + '[cache]\nurl = "redis://u:hunter2@[::1/0"\n',
            "cache.url: is not a valid URL (got 'redis://…')",
        ),
        (
            PROVIDER + KEY + '[limits]\nurl = "redis://:hunter2@cache:63x79/0"\n',
            "limits.url: is not a valid URL (got 'redis://…')",
        ),
        (
            "[server]\nmax_conections = 5\n" + PROVIDER + KEY,
            "server.max_conections: unknown setting (check its spelling)",
        ),
        (
            "[server]\nheader_timeout_s = 0\n" + PROVIDER + KEY,
            "server.header_timeout_s: must be positive (got 0.0)",
        ),
        (
            '[server]\nbody_timeout_s = "30s"\n' + PROVIDER + KEY,
            "server.body_timeout_s: must be a number (got '30s')",
        ),
        (
            "[server]\nkeepalive_timeout_s = -1\n" + PROVIDER + KEY,
            "server.keepalive_timeout_s: must be positive (got -1.0)",
        ),
        (
            "[server]\nmax_connections = 0\n" + PROVIDER + KEY,
            "server.max_connections: must be a positive integer (got 0)",
        ),
        (
            "[server]\nmax_connections = 1.5\n" + PROVIDER + KEY,
            "server.max_connections: must be an integer (got 1.5)",
        ),
        (
            "[server]\nmax_header_bytes = 100\n" + PROVIDER + KEY,
            "server.max_header_bytes: must be 1024-1048576 (got 100)",
        ),
        (
            "[server\n",
            "not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 8)",
        ),
    ],
)
def test_config_errors_name_file_key_and_reason(tmp_path: Path, text: str, message: str) -> None:
    """Each mistake gives one line: file, dotted key, reason."""
    assert error_of(tmp_path, text) == message


def test_the_sample_config_checks_the_answers_it_caches() -> None:
    """Every sample route that stores answers redacts them first (response DLP on)."""
    config = load_gateway_config(
        REPO / "sample_data" / "gateway.toml", {"AIGW_SIMULATED_PROVIDER_KEY": "sk-sample-9f3e"}
    )
    caching = [r for r in config.routes if r.cache]
    assert [r.name for r in caching] == ["embeddings", "chat"]
    assert [(r.dlp, r.dlp_responses, r.cache_secrets) for r in caching] == [
        ("redact", True, False),
        ("redact", True, False),
    ]


def test_cache_settings_default_to_the_safe_choice(tmp_path: Path) -> None:
    """Unset, a route's cache is scoped to the key and keeps no answer holding a secret."""
    config = load(tmp_path, PROVIDER + KEY + "[routes.r]\ncache = true\n")
    [route] = config.routes  # type: ignore[attr-defined]
    assert (route.cache_scope, route.cache_secrets) == ("key", False)


def test_server_limits_have_safe_defaults_and_read_from_server(tmp_path: Path) -> None:
    """Without settings the limits are the documented defaults; [server] sets each one."""
    assert load(tmp_path, PROVIDER + KEY).server == ServerSettings(  # type: ignore[attr-defined]
        header_timeout_s=10.0,
        body_timeout_s=60.0,
        keepalive_timeout_s=5.0,
        max_connections=1000,
        max_header_bytes=32768,
    )
    limits = (
        "[server]\nheader_timeout_s = 2\nbody_timeout_s = 3.5\nkeepalive_timeout_s = 1\n"
        "max_connections = 50\nmax_header_bytes = 8192\n"
    )
    config = load(tmp_path, limits + PROVIDER + KEY)
    assert config.server == ServerSettings(2.0, 3.5, 1.0, 50, 8192)  # type: ignore[attr-defined]


def test_gateway_key_from_the_environment(tmp_path: Path) -> None:
    """A key given by env is hashed at start-up; the key itself is not kept."""
    config = load(
        tmp_path, PROVIDER + '[[auth.keys]]\nid = "ci"\nenv = "GW_KEY"\n', {"GW_KEY": "secret-1"}
    )
    keys = config.keys  # type: ignore[attr-defined]
    assert [k.id for k in keys.values()] == ["ci"]
    assert "secret-1" not in repr(config)


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(GatewayConfigError) as info:
        load_gateway_config(tmp_path / "none.toml", {})
    assert str(info.value) == f"{tmp_path / 'none.toml'}: no such file; pass --config"


def test_json_depth_and_refusal_record_limits_have_defaults(tmp_path: Path) -> None:
    """Unset: bodies up to 64 levels; 600 refusal records per client IP, 6000 in all, a minute."""
    config = load(tmp_path, PROVIDER + KEY)
    assert config.max_json_depth == 64  # type: ignore[attr-defined]
    logs = config.logs  # type: ignore[attr-defined]
    assert (logs.refusals_per_ip_per_min, logs.refusals_per_min) == (600, 6000)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nmax_json_depth = 0\n", "server.max_json_depth: must be 1-200 (got 0)"),
        ("[server]\nmax_json_depth = 201\n", "server.max_json_depth: must be 1-200 (got 201)"),
        (
            '[server]\nmax_json_depth = "64"\n',
            "server.max_json_depth: must be an integer (got '64')",
        ),
        ("[server]\nmax_depth = 64\n", "server.max_depth: unknown setting (check its spelling)"),
        (
            "[logs]\nrefusals_per_ip_per_min = 0\n",
            "logs.refusals_per_ip_per_min: must be 1-1000000000 (got 0)",
        ),
    ],
)
def test_json_depth_and_refusal_limits_are_checked(tmp_path: Path, text: str, message: str) -> None:
    """Out of range, of the wrong type or misspelt: one line naming the key."""
    assert error_of(tmp_path, PROVIDER + KEY + text) == message


def test_telemetry_defaults_send_nothing_and_guard_metrics(tmp_path: Path) -> None:
    """Without [telemetry]: /metrics needs a key, no OTLP endpoint; the multi-process folder
    comes from PROMETHEUS_MULTIPROC_DIR."""
    config = load(tmp_path, PROVIDER + KEY, {"PROMETHEUS_MULTIPROC_DIR": "/run/aigw-metrics"})
    assert isinstance(config, GatewayConfig)
    assert config.telemetry == TelemetrySettings(multiprocess_dir="/run/aigw-metrics")
    assert (config.telemetry.metrics, config.telemetry.otlp_endpoint) == ("key", None)
    text = '[telemetry]\nmetrics = "open"\notlp_endpoint = "http://127.0.0.1:4318/"\n'
    config = load(tmp_path, PROVIDER + KEY + text)
    assert isinstance(config, GatewayConfig)
    assert (config.telemetry.metrics, config.telemetry.otlp_endpoint) == (
        "open",
        "http://127.0.0.1:4318",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('metrics = "public"', "telemetry.metrics: must be one of key, open, off (got 'public')"),
        ('otlp_endpoint = "127.0.0.1:4318"', "telemetry.otlp_endpoint: must be an http(s) URL"),
        ("max_model_labels = 0", "telemetry.max_model_labels: must be 1-1000 (got 0)"),
        ("otlp_headers = 1", "telemetry.otlp_headers: unknown setting (check its spelling)"),
    ],
)
def test_telemetry_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    assert error_of(tmp_path, f"{PROVIDER}{KEY}[telemetry]\n{text}\n").startswith(message)
