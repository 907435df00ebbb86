"""A running gateway for tests: simulated OpenAI and Anthropic providers on 127.0.0.1,
the gateway (uvicorn) in front of them, a small HTTP client, and its log records."""

from __future__ import annotations

import gzip
import hashlib
import http.client
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from proxy.asgi import GatewayApp
from proxy.config import load_gateway_config
from proxy.serving import gateway_server
from sim.provider import MockSettings, create_mock_app
from tests.proxy.servers import run_server, serve_asgi

PROVIDER_KEY = "sk-provider-test-0000000000000000"
GATEWAY_KEYS = {"team-a": "gw-key-team-a", "team-b": "gw-key-team-b"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


BASE_TOML = f"""
[server]
gateway = "test"
gateways = ["ci", "edge"]
[[auth.keys]]
id = "team-a"
team = "a"
sha256 = "{sha(GATEWAY_KEYS["team-a"])}"
[[auth.keys]]
id = "team-b"
team = "b"
sha256 = "{sha(GATEWAY_KEYS["team-b"])}"
[providers.openai]
kind = "openai"
base_url = "OPENAI_URL/v1"
api_key_env = "TEST_PROVIDER_KEY"
timeout_s = 2
[providers.backup]
kind = "openai"
base_url = "BACKUP_URL/v1"
api_key_env = "TEST_PROVIDER_KEY"
catalog_name = "openai"
[providers.anthropic]
kind = "anthropic"
base_url = "ANTHROPIC_URL"
api_key_env = "TEST_PROVIDER_KEY"
[logs]
destination = "LOGS"
spool_dir = "SPOOL"
max_interval_s = 3600
[cache]
path = "CACHE"
"""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    chunks: list[bytes] = field(default_factory=list)

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Running:
    """A gateway under test: its URL, its providers' URLs and where its logs go."""

    url: str
    openai: str
    backup: str
    anthropic: str
    logs: Path

    def post(
        self,
        path: str,
        body: Any,
        *,
        key: str | None = GATEWAY_KEYS["team-a"],
        headers: dict[str, str] | None = None,
    ) -> Response:
        """POST JSON; a streamed answer's body arrives as ``chunks`` (joined in ``body``)."""
        all_headers = {"content-type": "application/json", **(headers or {})}
        if key is not None:
            all_headers.setdefault("authorization", f"Bearer {key}")
        return request(self.url, "POST", path, orjson.dumps(body), all_headers)


def request(
    base: str, method: str, path: str, data: bytes | None, headers: dict[str, str]
) -> Response:
    """One HTTP/1.1 request with http.client, reading a chunked body chunk by chunk."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        chunks = []
        while True:
            chunk = response.read1(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return Response(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            b"".join(chunks),
            chunks,
        )
    finally:
        connection.close()


def mock_calls(url: str) -> list[dict[str, Any]]:
    """The requests a simulated provider received (its test hook)."""
    return orjson.loads(request(url, "GET", "/_mock/requests", None, {}).body)  # type: ignore[no-any-return]


def read_records(logs: Path) -> list[dict[str, Any]]:
    """Every record the gateway wrote under ``logs``, in time order."""
    records = []
    for path in sorted(logs.rglob("*.log.gz")):
        records += [orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    return sorted(records, key=lambda r: r["Timestamp"])


def log_bytes(logs: Path) -> bytes:
    """All log bytes, decompressed (to search for secrets)."""
    return b"".join(gzip.decompress(p.read_bytes()) for p in sorted(logs.rglob("*.log.gz")))


@contextmanager
def providers(seed: int = 3) -> Iterator[tuple[str, str, str]]:
    """Three simulated providers: OpenAI, a second OpenAI-shaped backup, Anthropic."""
    settings = MockSettings(seed=seed, api_key=PROVIDER_KEY)
    with (
        serve_asgi(create_mock_app(settings), lifespan="off") as openai,
        serve_asgi(
            create_mock_app(MockSettings(seed=seed + 1, api_key=PROVIDER_KEY)), lifespan="off"
        ) as backup,
        serve_asgi(create_mock_app(settings), lifespan="off") as anthropic,
    ):
        yield openai, backup, anthropic


def write_config(
    tmp: Path,
    urls: tuple[str, str, str],
    routes: str,
    extra: str = "",
    *,
    log_bodies: bool = False,
    server: str = "",
) -> Path:
    """gateway.toml for ``urls``; ``server`` is added to its [server] table."""
    text = (
        BASE_TOML.replace('gateway = "test"', f'gateway = "test"\n{server}')
        .replace("OPENAI_URL", urls[0])
        .replace("BACKUP_URL", urls[1])
        .replace("ANTHROPIC_URL", urls[2])
        .replace("LOGS", str(tmp / "logs"))
        .replace("SPOOL", str(tmp / "spool"))
        .replace("CACHE", str(tmp / "cache.sqlite"))
        .replace(
            "max_interval_s = 3600",
            f"max_interval_s = 3600\nlog_bodies = {str(log_bodies).lower()}",
        )
    )
    path = tmp / "gateway.toml"
    path.write_text(text + extra + routes)
    return path


@contextmanager
def gateway(
    tmp: Path,
    routes: str = "",
    *,
    extra: str = "",
    seed: int = 3,
    log_bodies: bool = False,
    server: str = "",
) -> Iterator[Running]:
    """Providers and a gateway with ``routes`` (TOML) and ``server`` (lines of [server]),
    served as ``aigw proxy`` serves it (its limits); logs are flushed when the block ends."""
    with providers(seed) as urls:
        path = write_config(tmp, urls, routes, extra, log_bodies=log_bodies, server=server)
        config = load_gateway_config(path, {"TEST_PROVIDER_KEY": PROVIDER_KEY})
        app = GatewayApp(config)
        server = gateway_server(
            app,
            config.server,
            "127.0.0.1",
            0,
            on_refusal=app.log_server_refusal,
            on_connection=app.connection_changed,
        )
        with run_server(server) as url:
            yield Running(url, *urls, logs=tmp / "logs")


@contextmanager
def edited_gateway(tmp: Path, edits: dict[str, str]) -> Iterator[Running]:
    """Providers and a gateway whose gateway.toml has, for each ``after: line`` of ``edits``,
    ``line`` added after the base config's line ``after`` (in the table it belongs to)."""
    with providers() as urls:
        path = write_config(tmp, urls, "")
        text = path.read_text()
        for after, line in edits.items():
            text = text.replace(after, f"{after}\n{line}", 1)
        path.write_text(text)
        config = load_gateway_config(path, {"TEST_PROVIDER_KEY": PROVIDER_KEY})
        with serve_asgi(GatewayApp(config), lifespan="on") as url:
            yield Running(url, *urls, logs=tmp / "logs")
