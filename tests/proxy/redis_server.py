"""A real redis-server for the gateway tests: 127.0.0.1, a free port, no persistence.

Test files build their fixtures on :func:`run_redis_server` (session-scoped: one server per
test session) and :func:`flush` (before each test). Needs the ``redis-server`` binary
(Debian package ``redis-server``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

__all__ = ["flush", "run_redis_server"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(binary: str, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    options = {
        "bind": "127.0.0.1",
        "port": str(port),
        "save": "",  # no snapshots and no append-only file: nothing persists
        "appendonly": "no",
        "dir": str(workdir),
        "daemonize": "no",
        "logfile": str(workdir / "redis.log"),
    }
    argv = [binary]
    for name, value in options.items():
        argv += [f"--{name}", value]
    return subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _ready(proc: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
    """Wait until the server answers PING; False when it exited (port taken meanwhile)."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on 127.0.0.1:{port} did not answer within 10 s")
    finally:
        client.close()


@contextmanager
def run_redis_server() -> Iterator[str]:
    """Start redis-server in a temporary directory; yield ``redis://127.0.0.1:PORT/0``; stop
    it (SIGTERM, then SIGKILL after 5 s) and remove the directory when the block ends."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: apt-get install redis-server")
    with tempfile.TemporaryDirectory(prefix="aigw-redis-") as tmp:
        for _ in range(5):  # another process may take the free port before redis binds it
            port = _free_port()
            proc = _start(binary, Path(tmp), port)
            if _ready(proc, port, time.monotonic() + 10):
                break
        else:
            raise RuntimeError("redis-server could not bind a free port in 5 attempts")
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def flush(url: str) -> None:
    """Empty the server's database so that each test starts from nothing."""
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
