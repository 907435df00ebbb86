"""core.files.write_atomic: a file appears whole or not at all, and nothing is left beside it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.files import write_atomic


def test_writes_the_bytes_creating_the_folder(tmp_path: Path) -> None:
    """A missing folder is created; the file holds exactly the bytes and nothing else is left."""
    path = tmp_path / "a" / "b" / "object.log.gz"
    write_atomic(path, b"\x1f\x8b payload")
    assert path.read_bytes() == b"\x1f\x8b payload"
    assert list(path.parent.iterdir()) == [path]


def test_replaces_an_existing_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "alert.json"
    path.write_bytes(b"old and longer than the new one")
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    """Writing over a folder fails at the rename: OSError, the temporary file is removed."""
    path = tmp_path / "taken"
    (path / "inside").mkdir(parents=True)
    with pytest.raises(OSError):
        write_atomic(path, b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_concurrent_writers_of_one_path_leave_one_whole_file(tmp_path: Path) -> None:
    """Each write has its own temporary file, so the last rename wins and no bytes mix."""
    path = tmp_path / "shared.json"
    bodies = [bytes([65 + n]) * 100_000 for n in range(8)]
    threads = [threading.Thread(target=write_atomic, args=(path, body)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert path.read_bytes() in bodies
    assert list(tmp_path.iterdir()) == [path]
