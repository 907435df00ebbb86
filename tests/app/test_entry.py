"""The ``aigw`` console script as pip writes it: it runs the command line, and the
quality gate's process it starts (multiprocessing imports the main script again in each
child) does not import the command line a second time (``app.entry``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO, logpush_record, write_ndjson


def console_script(folder: Path) -> Path:
    """The ``aigw`` script pip's template makes from ``[project.scripts]``."""
    entry = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["aigw"]
    module, function = entry.split(":")
    script = folder / "aigw"
    script.write_text(
        f"import sys\nfrom {module} import {function}\n"
        f"if __name__ == '__main__':\n    sys.exit({function}())\n"
    )
    return script


def imported(stderr: str, module: str) -> int:
    """How many of ``-X importtime``'s lines report ``module`` (a module a process imports
    once, outside any package's own imports, has one line per process)."""
    lines = (line for line in stderr.splitlines() if line.startswith("import time:"))
    return sum(1 for line in lines if line.rpartition("|")[2].strip() == module)


def test_the_gate_process_of_the_aigw_script_imports_no_command_line(tmp_path: Path) -> None:
    records = [logpush_record(ID=f"entry-{n}") for n in range(3)]
    write_ndjson(
        tmp_path / "logs" / "20260418" / "20260418T000000Z_20260418T000100Z_a.log.gz", records
    )
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("AIGW_DB", None)
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",  # inherited by multiprocessing's children: both processes report
            str(console_script(tmp_path)),
            "ingest",
            str(tmp_path / "logs"),
            "--db",
            str(tmp_path / "aigw.duckdb"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rows: 3 loaded, 0 duplicates, 0 rejected of 3 records" in done.stdout
    assert "quality: 3 rows checked, 0 critical failures, 0 warnings" in done.stdout
    assert "great_expectations.data_context" in done.stderr  # the check's child imported GX
    assert imported(done.stderr, "app.entry") == 2  # the script, in the parent and the child
    assert imported(done.stderr, "app.cli") == 1  # the parent only
