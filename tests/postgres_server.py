"""A real PostgreSQL server for the lakehouse tests: a throwaway cluster in a temporary
directory, listening on 127.0.0.1 only, on a free port, fsync off.

Test files build a fixture on :func:`run_postgres_server` (module- or session-scoped: one
server, then :func:`create_database` for each test that wants an empty database). Needs
Debian's ``postgresql`` package (``initdb`` and ``postgres`` in
``/usr/lib/postgresql/<version>/bin``; ``tools/system-deps.sh`` installs it). PostgreSQL
refuses to run as root: as root, the server runs as the ``postgres`` user the package
creates, and the temporary directory is handed to it.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

__all__ = ["create_database", "run_postgres_server"]

USER = "aigw"
DATABASE = "aigw"
_DEBIAN_BIN = Path("/usr/lib/postgresql")


def _bindir() -> Path:
    """The folder of ``initdb`` and ``postgres``: Debian's newest version, else ``PATH``."""
    versions = sorted(
        (p for p in _DEBIAN_BIN.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0),
    )
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    if found is None:
        raise RuntimeError("PostgreSQL server not found: apt-get install postgresql")
    return Path(found).parent


def _as_server_user() -> list[str]:
    """The prefix that runs a command as the server's user: nothing unless we are root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "running as root and no postgres user: apt-get install postgresql"
        ) from None
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _initdb(bindir: Path, tmp: Path) -> Path:
    data = tmp / "data"
    done = subprocess.run(
        [
            *_as_server_user(),
            str(bindir / "initdb"),
            "--pgdata",
            str(data),
            "--username",
            USER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        ],
        cwd=tmp,
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed in {tmp}: {done.stderr.strip()[-500:]}")
    return data


def _start(bindir: Path, tmp: Path, data: Path, port: int) -> subprocess.Popen[bytes]:
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(tmp),
        "fsync": "off",  # a throwaway cluster: durability buys nothing here
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "60",
    }
    argv = [*_as_server_user(), str(bindir / "postgres"), "-D", str(data)]
    for name, value in settings.items():
        argv += ["-c", f"{name}={value}"]
    with (tmp / "postgres.log").open("ab") as log:
        return subprocess.Popen(argv, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)


def _ready(proc: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
    """Wait until the server accepts a connection; False when it exited (port taken)."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with psycopg.connect(_dsn(port, "postgres"), connect_timeout=1):
                return True
        except psycopg.OperationalError:
            time.sleep(0.05)  # polling a server that is starting up: nothing to wait on
    raise RuntimeError(f"postgres on 127.0.0.1:{port} did not accept connections within 30 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT: sessions are ended), SIGKILL after 10 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _dsn(port: int, database: str) -> str:
    return f"host=127.0.0.1 port={port} user={USER} dbname={database}"


@contextmanager
def run_postgres_server() -> Iterator[str]:
    """Create a cluster in a temporary directory and start it; yield the SQLAlchemy URL
    ``postgresql+psycopg://aigw@127.0.0.1:PORT/aigw`` of its (empty) database ``aigw``;
    stop the server and remove the directory when the block ends."""
    bindir = _bindir()
    with tempfile.TemporaryDirectory(prefix="aigw-pg-") as name:
        tmp = Path(name)
        if os.geteuid() == 0:
            _as_server_user()  # one-line error when the postgres user is missing
            shutil.chown(tmp, "postgres", "postgres")
        data = _initdb(bindir, tmp)
        for _ in range(5):  # another process may take the free port before postgres binds it
            port = _free_port()
            proc = _start(bindir, tmp, data, port)
            if _ready(proc, port, time.monotonic() + 30):
                break
        else:
            log = (tmp / "postgres.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"postgres could not start on a free port in 5 attempts:\n{log}")
        try:
            with psycopg.connect(_dsn(port, "postgres"), autocommit=True) as con:
                con.execute(f"CREATE DATABASE {DATABASE}")
            yield f"postgresql+psycopg://{USER}@127.0.0.1:{port}/{DATABASE}"
        finally:
            _stop(proc)


def create_database(url: str, name: str) -> str:
    """Create the empty database ``name`` (letters, digits, ``_``) on the server of ``url``
    and return its URL."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"not a plain database name: {name!r}")
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    with psycopg.connect(_dsn(port, "postgres"), autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + "/" + name
