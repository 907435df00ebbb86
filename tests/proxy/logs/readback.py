"""Reading back what the Logpush writer wrote, for its tests: the files under a folder, the
records of one gzip NDJSON object and the record numbers they hold."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson


def _files(root: Path) -> list[Path]:
    """Every file under ``root`` (hidden temporaries included), sorted."""
    return sorted(path for path in root.rglob("*") if path.is_file())


def _lines(data: bytes) -> list[dict[str, Any]]:
    """The records of one gzip NDJSON object."""
    return [orjson.loads(line) for line in gzip.decompress(data).splitlines()]


def _user_numbers(records: list[dict[str, Any]]) -> list[int]:
    return [int(record["Metadata"]["user"].removeprefix("user-")) for record in records]


def _written(root: Path) -> list[list[int]]:
    """Per file under ``root`` in key order, the numbers of the records it holds."""
    return [_user_numbers(_lines(path.read_bytes())) for path in _files(root)]
