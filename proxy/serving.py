"""Serving an ASGI app with uvicorn until SIGTERM or SIGINT: the gateway's ``aigw proxy``
and the simulated provider's ``aigw mock-provider`` (``sim.provider`` imports it).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket

    import uvicorn

__all__ = ["serve_until_signal"]


def serve_until_signal(
    server: uvicorn.Server, *, sockets: list[socket.socket] | None = None
) -> None:
    """Run ``server`` (on ``sockets`` when given) until SIGTERM or SIGINT, then return.

    The first signal starts uvicorn's graceful shutdown (in-flight requests finish, then the
    app's lifespan shutdown runs); a second one forces it. The signal is not raised again
    once the server has stopped, as uvicorn's own handler does, so the process exits 0: a
    supervisor reads a re-raised SIGTERM as a crash. Signals are caught only when called
    from the main thread; elsewhere, stop the server with ``server.should_exit = True``.
    """
    server.capture_signals = lambda: _stop_on_signals(server)  # type: ignore[method-assign]
    server.run(sockets=sockets)


@contextlib.contextmanager
def _stop_on_signals(server: uvicorn.Server) -> Iterator[None]:
    """SIGTERM and SIGINT ask ``server`` to stop (a second one forces it) while it runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
