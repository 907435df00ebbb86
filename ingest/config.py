"""Ingest settings: built once at the edge (the CLI) and passed down."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from core.lake import DEFAULT_DB_PATH, WarehouseTarget
from core.settings import check_keys, read_toml, table
from ingest.errors import ConfigError
from ingest.loader import BATCH_ROWS

__all__ = [
    "DEFAULT_DB_PATH",
    "IngestFileOptions",
    "IngestSettings",
    "ingest_options_from",
    "load_ingest_options",
]

_INGEST_KEYS: Final = ("quality", "interval", "sqs_queue_url")


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """What one ``aigw ingest`` run needs.

    ``source`` is a folder path or ``s3://bucket/prefix``; ``endpoint_url``
    selects an S3-compatible store (R2, MinIO); ``batch_rows`` bounds memory
    per insert (rows held at once, not a transaction boundary); ``quality`` is the
    data-quality gate's mode: ``fail``, ``warn`` or ``off`` (``ingest.quality``).
    ``sql_engine`` normalises lines in DuckDB SQL (``ingest.engine``) with two parser
    threads instead of the typed path (msgspec); off by default: measured, it did not
    beat the Python path, which the typed path does (performance.md).
    """

    source: str
    db_path: WarehouseTarget = DEFAULT_DB_PATH  # the DuckDB file, or an Iceberg warehouse
    endpoint_url: str | None = None
    batch_rows: int = BATCH_ROWS
    private_key: Path | None = None  # PEM file that opens encrypted Logpush fields
    private_key_pem: bytes | None = None  # or the PEM itself (from an environment variable)
    quality: str = "fail"
    sql_engine: bool = False

    def __repr__(self) -> str:  # the PEM is a secret: never print it
        return (
            f"IngestSettings(source={self.source!r}, db_path={self.db_path!r}, "
            f"private_key={self.private_key!r}, quality={self.quality!r})"
        )


@dataclass(frozen=True, slots=True)
class IngestFileOptions:
    """The ``[ingest]`` table of ``aigw.toml``; None where it says nothing (options win)."""

    quality: str | None = None  # fail | warn | off
    interval: str | None = None  # watch mode poll interval: 30s, 1m…
    sqs_queue_url: str | None = None


def load_ingest_options(path: Path | None) -> IngestFileOptions:
    """``[ingest]`` of the TOML file at ``path``; empty options without a file or table."""
    if path is None:
        return IngestFileOptions()
    return ingest_options_from(path, table(path, read_toml(path), "ingest"))


def ingest_options_from(path: Path, section: Mapping[str, Any]) -> IngestFileOptions:
    """Options from an ``[ingest]`` table read from ``path``; unknown keys are an error."""
    check_keys(path, section, _INGEST_KEYS, where="[ingest]")
    values: dict[str, str | None] = {}
    for name in _INGEST_KEYS:
        value = section.get(name)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{path}: [ingest] {name} must be a string")
        values[name] = value
    return IngestFileOptions(**values)
