"""Real servers for the gateway tests: an ASGI app on uvicorn, 127.0.0.1, an ephemeral port."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

__all__ = ["run_server", "serve_asgi"]


@contextmanager
def serve_asgi(app: Any, *, lifespan: str = "auto") -> Iterator[str]:
    """Serve ``app`` with uvicorn (uvloop, httptools) on 127.0.0.1 in a background thread.

    Yields the base URL (``http://127.0.0.1:PORT``); stops the server (lifespan shutdown
    included) when the block ends.
    """
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        loop="uvloop",
        http="httptools",
        lifespan=lifespan,  # type: ignore[arg-type]
        log_level="warning",
        access_log=False,
    )
    with run_server(uvicorn.Server(config)) as url:
        yield url


@contextmanager
def run_server(server: uvicorn.Server) -> Iterator[str]:
    """Run ``server`` (listening on 127.0.0.1) in a background thread; yields its base URL
    and stops it (lifespan shutdown included) when the block ends."""
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
