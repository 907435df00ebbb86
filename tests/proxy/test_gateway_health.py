"""GET /healthz and /readyz: what a load balancer's probes get, without a key, as the log
sink, the spool and the stores come and go. Real gateway and providers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path
from typing import Any

from proxy.asgi import GatewayApp
from proxy.config import load_gateway_config
from tests.proxy.gateway_fixtures import (
    PROVIDER_KEY,
    Response,
    edited_gateway,
    gateway,
    request,
    write_config,
)


def probe(url: str, path: str) -> tuple[int, str]:
    response: Response = request(url, "GET", path, None, {})
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    return response.status, response.body.decode()


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_ready_until_the_log_sink_is_not_writable(tmp_path: Path) -> None:
    """Up and ready; a log folder replaced by a file: 503 with a one-line reason (no path);
    back to ready once the folder can be written again. The process stays up throughout."""
    logs = tmp_path / "logs"
    with gateway(tmp_path) as gw:
        assert probe(gw.url, "/healthz") == (200, "ok\n")
        assert probe(gw.url, "/readyz") == (200, "ready\n")
        head = request(gw.url, "HEAD", "/readyz", None, {})
        assert (head.status, head.body) == (200, b"")  # load balancers that probe with HEAD
        shutil.rmtree(logs)
        logs.write_text("not a folder")
        assert probe(gw.url, "/readyz") == (503, "log sink not writable (FileExistsError)\n")
        assert probe(gw.url, "/healthz") == (200, "ok\n")
        logs.unlink()
        assert probe(gw.url, "/readyz") == (200, "ready\n")


def test_not_ready_without_a_writable_spool(tmp_path: Path) -> None:
    """The spool folder (where every record is journalled first) must take a file too."""
    with gateway(tmp_path) as gw:
        spool = tmp_path / "spool"
        shutil.rmtree(spool, ignore_errors=True)
        spool.write_text("not a folder")
        assert probe(gw.url, "/readyz") == (503, "log spool not writable (FileExistsError)\n")
        spool.unlink()
        assert probe(gw.url, "/readyz") == (200, "ready\n")


def test_not_ready_when_the_shared_cache_is_unreachable(tmp_path: Path) -> None:
    """A redis:// response cache nobody listens on: 503 ``response cache unreachable``
    (the URL is not shown); a limits store likewise."""
    url = f"redis://127.0.0.1:{unused_port()}/0"
    cache = tmp_path / "cache"
    cache.mkdir()
    with edited_gateway(cache, {"[cache]": f'url = "{url}"'}) as gw:
        assert probe(gw.url, "/readyz") == (503, "response cache unreachable\n")
    limits = tmp_path / "limits"
    limits.mkdir()
    with gateway(limits, extra=f'[limits]\nurl = "{url}"\n') as gw:
        assert probe(gw.url, "/readyz") == (503, "limits store unreachable\n")


def test_not_ready_while_starting(tmp_path: Path) -> None:
    """Before its lifespan has started the services: /readyz 503 ``starting``, /healthz 200."""
    with_providers = ("http://127.0.0.1:9", "http://127.0.0.1:9", "http://127.0.0.1:9")
    config = load_gateway_config(
        write_config(tmp_path, with_providers, ""), {"TEST_PROVIDER_KEY": PROVIDER_KEY}
    )
    app = GatewayApp(config)

    async def get(path: str) -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": path, "headers": [], "client": None}
        await app(scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    assert asyncio.run(get("/readyz")) == (503, b"starting\n")
    assert asyncio.run(get("/healthz")) == (200, b"ok\n")
