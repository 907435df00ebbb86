"""One worker of ``aigw proxy --workers N``: ``python -m proxy.worker --fd FD --index I
--parent PID CONFIG``, started by ``proxy.workers`` (not meant to be run by hand).

It loads CONFIG (with this environment, as the supervisor did), accepts on the inherited
listening socket FD and serves as ``aigw proxy`` does: SIGTERM or SIGINT drains in-flight
requests and flushes every log record, then it exits 0; SIGHUP reloads CONFIG (the
supervisor's copy of the accepted file; it says so itself). Signals sent while the worker
starts wait until its server handles them (the supervisor starts it with them blocked).
When the supervisor PID dies it stops as on SIGTERM (within a second). A config that no
longer loads exits 2 with one line.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Final

from proxy.asgi import run_gateway
from proxy.config import load_gateway_config
from proxy.errors import ProxyError

_PARENT_POLL_S: Final = 1.0


def _watch_parent(parent: int) -> None:
    """Send this process SIGTERM (once: a second would force the stop) when the supervisor
    ``parent`` is gone, as after a SIGKILL; checked every second from a daemon thread.
    (``PR_SET_PDEATHSIG`` was tried: it delivered SIGTERM twice after a SIGKILL of the
    supervisor, which forced the workers to stop without flushing.)"""
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    """Serve until stopped; the exit status (0 after a drain, 2 when the config fails)."""
    parser = argparse.ArgumentParser(prog="python -m proxy.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("config", type=Path)
    args = parser.parse_args(argv)
    if os.getppid() != args.parent:
        return 0  # the supervisor died before this worker started
    threading.Thread(target=_watch_parent, args=(args.parent,), daemon=True).start()
    try:
        config = load_gateway_config(args.config, os.environ)
    except ProxyError as err:
        print(f"aigw proxy: worker {args.index}: {err}", file=sys.stderr, flush=True)
        return 2
    sock = socket.socket(fileno=args.fd)
    run_gateway(config, sockets=[sock], quiet_reload=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
