"""The data-quality gate in a second process: importing Great Expectations (3-5 s of
Python bytecode) and building the suite run on the machine's other core while the load
parses, instead of after the load or in a thread that takes the parser's GIL.

``GateProcess.start`` spawns the child with multiprocessing's ``spawn`` context (never a
fork of a process that holds a DuckDB connection); ``ingest.service`` calls it once the
first object with new rows is stored, so a run with nothing new starts nothing. The
child imports GX, builds the suite, then waits. ``check_table`` writes the new rows (the
suite's columns only) to an Arrow IPC file in a temporary folder, the child runs
``QualityGate.check_table`` over them (the same code as the check in this process) and
sends the outcomes back, and the folder is removed.

Fallback: if the child cannot start, dies, or has not answered within 60 s plus 1 s per
10,000 rows, it is killed and the rows are checked in this process (the same outcomes;
``fallback`` says why). A ``QualityGateError`` the child reports (GX missing, the suite
could not run) is raised here, as the check in this process would raise it.

Lifetime: ``close`` (the ``with`` block's exit, on every path) kills the child. A child
whose parent dies without closing it (SIGKILL) exits on its own: a thread in it waits on
the parent's sentinel. It ignores SIGINT: Ctrl-C reaches the whole process group, and
the parent's exit kills it.

Thread-safety: a ``GateProcess`` is used by one thread at a time.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import tempfile
import threading
from datetime import datetime
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import pyarrow as pa

from ingest.errors import QualityGateError
from ingest.quality import ExpectationOutcome, QualityGate

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
        if self._process is not None:
            outcomes = self._ask(table, now)
            if outcomes is not None:
                self.fallback = None
                return outcomes
        self._local = self._local or QualityGate()
        return self._local.check_table(table, now=now)

    def close(self) -> None:
        """Kill the child, if there is one, and wait for it to end (idempotent)."""
        self._started = True  # a closed gate starts nothing
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is not None:
            process.kill()
            process.join(_JOIN_SECONDS)
            if process.exitcode is not None:
                process.close()

    def __enter__(self) -> GateProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _ask(self, table: pa.Table, now: datetime) -> tuple[ExpectationOutcome, ...] | None:
        """The child's outcomes, None (the child killed, ``fallback`` set) if it gave none."""
        process, conn = self._process, self._conn
        assert process is not None and conn is not None  # noqa: S101 - the caller checked
        timeout = _TIMEOUT_SECONDS + table.num_rows / _ROWS_PER_SECOND
        try:
            with tempfile.TemporaryDirectory(prefix="aigw-quality-", dir=self._folder) as folder:
                path = str(Path(folder) / "rows.arrow")
                with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
                    out.write_table(table)
                try:
                    conn.send((path, now))
                    ready = wait([conn, process.sentinel], timeout)
                    reply: Reply | None = conn.recv() if conn in ready else None
                except (OSError, EOFError):  # the child is gone: a broken pipe, an end of file
                    ready, reply = [process.sentinel], None
        except (OSError, pa.ArrowException) as err:  # no temporary folder, a full disk
            self.fallback = (
                f"the rows could not be handed to the quality check's process "
                f"({type(err).__name__})"
            )
            self.close()
            return None
        if reply is not None and reply[0] == "ok":
            return tuple(reply[1])
        if reply is not None and reply[0] == "error":
            raise QualityGateError(reply[1], detail=reply[2])
        if reply is not None:
            self.fallback = f"the quality check's process failed ({reply[1]})"
        elif not ready:
            self.fallback = f"the quality check's process gave no answer in {timeout:.0f} s"
        else:
            process.join(_JOIN_SECONDS)
            self.fallback = f"the quality check's process ended (exit code {process.exitcode})"
        self.close()
        return None


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
