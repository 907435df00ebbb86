"""The log writer's journal: every record on local disk within ``sync_interval_s`` of its
submission, so that a killed gateway (SIGKILL, power loss) loses no record older than that.

Each open batch has one journal file, ``<spool_dir>/journal/<token>.ndjson``: the batch's
NDJSON lines, appended by the writer's thread and fsynced in small groups. When the batch
has been uploaded (or spooled, itself fsynced) its journal file is deleted. A journal file
left behind by a dead writer is recovered at the next start: its lines become the batch
again, named with the same token, so re-sending it overwrites the same object and never
duplicates it (a line cut short by the kill is dropped: it was never synced).

Several gateways may share a spool folder: a writer holds an exclusive ``flock`` on each
journal file it writes, and recovery skips files another live process holds.

Thread-safety: one thread at a time (the writer's ``_io`` lock).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["Journal", "RecoveredBatch"]

_log = logging.getLogger(__name__)
_SUFFIX = ".ndjson"

RecoveredBatch = tuple[str, list[bytes]]  # (token, complete lines)


class Journal:
    """The journal files of one writer under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._file: BinaryIO | None = None
        self._token: str | None = None
        self._dirty = False

    def open(self, token: str) -> None:
        """Start the journal file of a new batch (locked for this process)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = (self.folder / f"{token}{_SUFFIX}").open("ab")
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._file, self._token = handle, token
        _sync_folder(self.folder)

    @property
    def token(self) -> str | None:
        """The open batch's token, or None."""
        return self._token

    def append(self, line: bytes) -> None:
        """Add one NDJSON line (with its newline) to the open file; durable at ``sync``."""
        if self._file is not None:
            self._file.write(line)
            self._dirty = True

    def sync(self) -> None:
        """Make every appended line durable (one write and fsync for the group)."""
        if self._file is not None and self._dirty:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._dirty = False

    def discard(self) -> None:
        """The open batch is delivered (or spooled): delete its journal file."""
        handle, token = self._file, self._token
        self._file = self._token = None
        self._dirty = False
        if handle is None or token is None:
            return
        (self.folder / f"{token}{_SUFFIX}").unlink(missing_ok=True)
        handle.close()

    def recover(self) -> Iterator[RecoveredBatch]:
        """Journal files no live writer holds, oldest first, each with its complete lines;
        the caller delivers the batch, then calls ``forget(token)``."""
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob(f"*{_SUFFIX}"), key=_mtime):
            try:
                handle = path.open("rb")
            except FileNotFoundError:
                continue  # recovered meanwhile by another gateway
            except OSError as err:
                _log.error("cannot read log journal %s (%s)", path, err.strerror)
                continue
            with handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer's open batch
                except OSError as err:
                    _log.error("cannot lock log journal %s (%s)", path, err.strerror)
                    continue
                data = handle.read()
                complete = data[: data.rfind(b"\n") + 1]
                lines = complete.splitlines(keepends=True)
                if len(complete) < len(data):
                    _log.warning("log journal %s: a record cut short by a crash is dropped", path)
                yield path.name.removesuffix(_SUFFIX), lines

    def forget(self, token: str) -> None:
        """A recovered batch is delivered: delete its journal file."""
        (self.folder / f"{token}{_SUFFIX}").unlink(missing_ok=True)

    def close(self) -> None:
        """Release the open file, keeping it (its batch was not delivered)."""
        if self._file is not None:
            self.sync()
            self._file.close()
            self._file = self._token = None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _sync_folder(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
