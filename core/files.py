"""Files that another process reads: written whole or not at all.

Used by the gateway's log folder and spool (``proxy.logs``) and the alert outbox
(``alerts.channels.outbox``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: Path, data: bytes, *, mode: int = 0o666) -> None:
    """Write ``data`` to ``path`` so that a reader sees no file, the old one or the new one
    whole: never a partial file, even after a crash.

    Contract: ``path``'s folder is created when missing. The bytes go to a hidden temporary
    file beside ``path`` (``.NAME.<random>.tmp``: a dot name ending in ``.tmp``, which no
    reader of ours takes for a finished file), are fsynced, then renamed over ``path``,
    replacing any file there; then the folder is fsynced, so the rename survives a crash.
    Safe from several threads and processes at once: each write has its own temporary
    file, and when two write the same ``path`` the last rename wins. The new file gets ``mode``
    less the umask (0o600: only its owner may read it). Raises ``OSError``; on any failure
    before the rename the temporary file is removed and ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
