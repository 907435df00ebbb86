"""Readiness of a running gateway (``GET /readyz``): what a load balancer or a Kubernetes
readiness probe asks before sending traffic.

Ready means: the configuration is loaded and the services are started; the log spool
folder (where every record is journalled first) and a local log destination accept a
file; the response cache and the limit and budget store answer a read (a Redis server
when ``url`` is redis://). An S3 or R2 destination is not probed: while it is down,
batches wait in the spool and ``aigw_log_upload_failures_total`` rises, and taking every
instance out of the load balancer for it would turn a delayed upload into an outage.

Reasons are one line, without paths, URLs or keys (probes are not authenticated); the
details go to the ``aigw.proxy`` log at debug level.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Final

from proxy.errors import StoreError
from proxy.logs import LocalFolderSink, LogSink
from proxy.stores import ResponseCache, SpendCounter

__all__ = ["not_ready"]

_log = logging.getLogger("aigw.proxy")
_PROBE_TIMEOUT_S: Final = 2.0
_PROBE_KEY: Final = "aigw-readyz-probe"


async def not_ready(
    sink: LogSink, spool_dir: Path, cache: ResponseCache, spend: SpendCounter
) -> str | None:
    """Why the started gateway is not ready (one line), or None when it is."""
    folders = [("log spool", spool_dir)]
    if isinstance(sink, LocalFolderSink):
        folders.append(("log sink", sink.root))
    for what, folder in folders:
        try:
            await asyncio.to_thread(_write_probe, folder)
        except OSError as err:
            _log.debug("readyz: %s %s: %s", what, folder, err)
            return f"{what} not writable ({type(err).__name__})"
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT_S):
            await cache.get(_PROBE_KEY)
    except (StoreError, TimeoutError) as err:
        _log.debug("readyz: response cache: %s", err)
        return "response cache unreachable"
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT_S):
            await spend.total(_PROBE_KEY, "probe")
    except (StoreError, TimeoutError) as err:
        _log.debug("readyz: limits store: %s", err)
        return "limits store unreachable"
    return None


def _write_probe(folder: Path) -> None:
    """Create ``folder`` if needed, write and remove a small file in it (``OSError`` if
    that fails: a path that is a file, a full or read-only disk)."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".readyz-{os.getpid()}"
    probe.write_bytes(b"ok")
    probe.unlink()
