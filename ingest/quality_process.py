"""The data-quality gate in a second process: importing Great Expectations (3-5 s of
Python bytecode) and building the suite run on the machine's other core while the load
parses, instead of after the load or in a thread that takes the parser's GIL.

``GateProcess.start`` spawns the child with multiprocessing's ``spawn`` context (never a
fork of a process that holds a DuckDB connection); ``ingest.service`` calls it once the
first object with new rows is stored, so a run with nothing new starts nothing. The
child imports GX, builds the suite, then waits. ``submit`` writes the new rows (the
suite's columns only) to an Arrow IPC file in a temporary folder and returns at once; the
child runs ``QualityGate.check_table`` over them (the same code as the check in this
process) and sends the outcomes back, which the function ``submit`` returned waits for;
then the folder is removed. Between the two the loading process does other work (``aigw
ingest`` refreshes the rollups: ``check_batch``'s ``meanwhile``).

Fallback: if the child cannot start, dies, or has not answered within 60 s plus 1 s per
10,000 rows of the hand-over, it is killed and the rows are checked in this process when
the outcomes are asked for (the same outcomes; ``fallback`` says why). A
``QualityGateError`` the child reports (GX missing, the suite could not run) is raised
there, as the check in this process would raise it.

Lifetime: ``close`` (the ``with`` block's exit, on every path) kills the child and
removes the folder of a check submitted but not collected (abandoned). A child
whose parent dies without closing it (SIGKILL) exits on its own: a thread in it waits on
the parent's sentinel. It ignores SIGINT: Ctrl-C reaches the whole process group, and
the parent's exit kills it.

Thread-safety: a ``GateProcess`` is used by one thread at a time.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import pyarrow as pa

from ingest.errors import QualityGateError
from ingest.quality import ExpectationOutcome, Outcomes, QualityGate

__all__ = ["GateProcess"]

_TIMEOUT_SECONDS: Final = 60.0  # the import and the suite's build, on a loaded machine
_ROWS_PER_SECOND: Final = 10_000  # far below the validation's pace (about 150,000/s)
_JOIN_SECONDS: Final = 5.0
_SPAWN: Final = multiprocessing.get_context("spawn")

Reply = tuple[Any, ...]  # ("ok", outcomes) | ("error", message, detail) | ("crash", why)


class GateProcess:
    """A ``Checker`` that runs the suite in a child process, started by ``start``;
    checks in this process when there is no child to ask. Close it (or use it as a
    context manager): that kills the child."""

    def __init__(self, folder: str | None = None) -> None:
        """``folder``: where the rows are handed over (default: the system's temporary
        folder)."""
        self._folder = folder
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._started = False
        self._local: QualityGate | None = None
        self._pending: _Pending | None = None  # a check handed over, not yet collected
        self.fallback: str | None = None  # why the last check ran in this process

    @property
    def pid(self) -> int | None:
        """The child's process id while it may be asked (None otherwise)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Spawn the child to import GX and build the suite; once per ``GateProcess``
        (later calls do nothing). If it cannot start, checks run in this process."""
        if self._started:
            return
        self._started = True
        ours, theirs = _SPAWN.Pipe()
        process = _SPAWN.Process(target=_serve, args=(theirs,), name="aigw-quality", daemon=True)
        try:
            process.start()
        except OSError as err:  # no process, no memory, too many open files
            ours.close()
            self.fallback = f"the quality check's process did not start ({err})"
            return
        finally:
            theirs.close()
        self._process, self._conn = process, ours

    def check_table(self, table: pa.Table, *, now: datetime) -> tuple[ExpectationOutcome, ...]:
        """The suite's outcomes over ``table``, from the child if it answers, otherwise
        from this process. Raises ``QualityGateError`` if the suite cannot run."""
        return self.submit(table, now=now)()

    def submit(self, table: pa.Table, *, now: datetime) -> Outcomes:
        """Hand ``table`` to the child, if there is one, and return at once; the function
        returned waits for the child's outcomes (those of this process if it gives none)
        and raises ``QualityGateError`` if the suite cannot run. Call it once, before the
        next ``submit``; ``close`` abandons a check not collected."""
        if self._process is not None and self._hand_over(table, now):
            return functools.partial(self._collect, table, now)
        return functools.partial(self._check_here, table, now)

    def _check_here(self, table: pa.Table, now: datetime) -> tuple[ExpectationOutcome, ...]:
        self._local = self._local or QualityGate()
        return self._local.check_table(table, now=now)

    def close(self) -> None:
        """Kill the child, if there is one, and wait for it to end (idempotent)."""
        self._started = True  # a closed gate starts nothing
        process, conn, pending = self._process, self._conn, self._pending
        self._process = self._conn = self._pending = None
        if conn is not None:
            conn.close()
        if process is not None:
            process.kill()
            process.join(_JOIN_SECONDS)
            if process.exitcode is not None:
                process.close()
        if pending is not None:
            pending.folder.cleanup()

    def __enter__(self) -> GateProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _hand_over(self, table: pa.Table, now: datetime) -> bool:
        """Write ``table`` for the child and send it the job; False (the child killed,
        ``fallback`` set) if the rows could not be written or a check was abandoned."""
        assert self._conn is not None  # noqa: S101 - the caller checked
        if self._pending is not None:  # its answer would be read as this one's
            self.fallback = "a check handed to the quality check's process was not collected"
            self.close()
            return False
        timeout = _TIMEOUT_SECONDS + table.num_rows / _ROWS_PER_SECOND
        try:
            folder = tempfile.TemporaryDirectory(
                prefix="aigw-quality-", dir=self._folder, ignore_cleanup_errors=True
            )
        except OSError as err:  # no temporary folder
            return self._handed_nothing(err)
        pending = _Pending(folder, time.monotonic() + timeout, timeout)
        path = str(Path(folder.name) / "rows.arrow")
        try:
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
                out.write_table(table)
        except (OSError, pa.ArrowException) as err:  # a full disk
            folder.cleanup()
            return self._handed_nothing(err)
        self._pending = pending
        try:
            self._conn.send((path, now))
        except OSError:  # the child is gone: a broken pipe
            pending.sent = False
        return True

    def _handed_nothing(self, err: Exception) -> bool:
        self.fallback = (
            f"the rows could not be handed to the quality check's process ({type(err).__name__})"
        )
        self.close()
        return False

    def _collect(self, table: pa.Table, now: datetime) -> tuple[ExpectationOutcome, ...]:
        """The child's outcomes for the job ``_hand_over`` sent, else (the child killed,
        ``fallback`` set) this process's."""
        process, conn, pending = self._process, self._conn, self._pending
        if process is None or conn is None or pending is None:  # closed meanwhile
            return self._check_here(table, now)
        self._pending = None
        ready: list[Any] = [process.sentinel]
        reply: Reply | None = None
        try:
            if pending.sent:
                left = max(0.0, pending.deadline - time.monotonic())
                ready = wait([conn, process.sentinel], left)
                reply = conn.recv() if conn in ready else None
        except (OSError, EOFError):  # the child is gone: a broken pipe, an end of file
            ready, reply = [process.sentinel], None
        finally:
            pending.folder.cleanup()
        if reply is not None and reply[0] == "ok":
            self.fallback = None
            return tuple(reply[1])
        if reply is not None and reply[0] == "error":
            raise QualityGateError(reply[1], detail=reply[2])
        if reply is not None:
            self.fallback = f"the quality check's process failed ({reply[1]})"
        elif not ready:
            self.fallback = f"the quality check's process gave no answer in {pending.timeout:.0f} s"
        else:
            process.join(_JOIN_SECONDS)
            self.fallback = f"the quality check's process ended (exit code {process.exitcode})"
        self.close()
        return self._check_here(table, now)


@dataclass(slots=True)
class _Pending:
    """A job sent to the child and not yet answered: its folder, when to give up on it."""

    folder: tempfile.TemporaryDirectory[str]
    deadline: float  # time.monotonic()
    timeout: float  # seconds from the hand-over
    sent: bool = True


def _serve(conn: Connection) -> None:
    """The child: import GX and build the suite, then answer each job until the parent
    closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Locks that libraries make in this process (tqdm's, made by each GX validation) are
    # then unlinked at once rather than registered with the parent's resource tracker,
    # which would warn of a leak on stderr when this process is killed. It starts none.
    if "fork" in multiprocessing.get_all_start_methods():  # not on Windows
        multiprocessing.set_start_method("fork", force=True)
    threading.Thread(target=_exit_with_parent, name="aigw-parent", daemon=True).start()
    gate = QualityGate()
    failure: QualityGateError | None = None
    try:
        gate.prepare()
    except QualityGateError as err:
        failure = err
    while True:
        try:
            path, now = conn.recv()
        except EOFError:
            return
        conn.send(_answer(gate, failure, path, now))


def _answer(gate: QualityGate, failure: QualityGateError | None, path: str, now: datetime) -> Reply:
    if failure is not None:
        return ("error", str(failure), failure.detail)
    try:
        with pa.memory_map(path) as source:
            return ("ok", gate.check_table(pa.ipc.open_file(source).read_all(), now=now))
    except QualityGateError as err:
        return ("error", str(err), err.detail)
    except Exception as err:  # noqa: BLE001 - the parent checks in its own process instead
        return ("crash", f"{type(err).__name__}: {err}")


def _exit_with_parent() -> None:
    """End this process as soon as its parent has ended (its sentinel closes)."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()
        os._exit(1)
