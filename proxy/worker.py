"""One worker of ``aigw proxy --workers N``: ``python -m proxy.worker --fd FD --index I
--parent PID CONFIG``, started by ``proxy.workers`` (not meant to be run by hand).

It loads CONFIG (with this environment, as the supervisor did), accepts on the inherited
listening socket FD and serves as ``aigw proxy`` does: SIGTERM or SIGINT drains in-flight
requests and flushes every log record, then it exits 0; SIGHUP reloads CONFIG (the
supervisor's copy of the accepted file; it says so itself). Signals sent while the worker
starts wait until its server handles them (the supervisor starts it with them blocked).
It exits when the supervisor PID dies (``PR_SET_PDEATHSIG``, Linux). A config that no
longer loads exits 2 with one line.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Final

from proxy.asgi import run_gateway
from proxy.config import load_gateway_config
from proxy.errors import ProxyError

_PR_SET_PDEATHSIG: Final = 1


def _die_with(parent: int) -> None:
    """Be sent SIGTERM when the supervisor exits (Linux); exit now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the supervisor stops us itself
        return
    if os.getppid() != parent:
        sys.exit(0)


def main(argv: list[str] | None = None) -> int:
    """Serve until stopped; the exit status (0 after a drain, 2 when the config fails)."""
    parser = argparse.ArgumentParser(prog="python -m proxy.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("config", type=Path)
    args = parser.parse_args(argv)
    _die_with(args.parent)
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
