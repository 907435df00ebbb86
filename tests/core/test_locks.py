"""Who holds the warehouse lock, as the lock messages say it: aigw (and its command) or
another program, read from the process table; DuckDB's own words when that fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.warehouse import lock_holder
from tests.conftest import REPO


def _message(pid: int) -> str:
    return (
        'IO Error: Could not set lock on file "x.duckdb": Conflicting lock is held in '
        f"/usr/bin/duckdb (PID {pid}) by user ana."
    )


def test_an_aigw_process_is_named_with_its_command() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "mock-provider", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline()  # it is running
        assert lock_holder(_message(process.pid)) == f"aigw mock-provider (pid {process.pid})"
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def test_another_program_is_named_by_its_executable() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "up\n"
        expected = f"another program ({Path(sys.executable).name}, pid {process.pid})"
        assert lock_holder(_message(process.pid)) == expected
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_a_process_that_is_gone_is_named_as_duckdb_said() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert lock_holder(_message(process.pid)) == f"another program (duckdb, pid {process.pid})"
    assert lock_holder("IO Error: Could not set lock on file") == "another process"
