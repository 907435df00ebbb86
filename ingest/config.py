"""Ingest settings: built once at the edge (the CLI) and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ingest.loader import BATCH_ROWS

__all__ = ["DEFAULT_DB_PATH", "IngestSettings"]

DEFAULT_DB_PATH: Final = Path("data/aigw.duckdb")


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """What one ``aigw ingest`` run needs.

    ``source`` is a folder path or ``s3://bucket/prefix``; ``endpoint_url``
    selects an S3-compatible store (R2, MinIO); ``batch_rows`` bounds memory
    per insert (rows held at once, not a transaction boundary).
    """

    source: str
    db_path: Path = DEFAULT_DB_PATH
    endpoint_url: str | None = None
    batch_rows: int = BATCH_ROWS
    private_key: Path | None = None  # PEM file that opens encrypted Logpush fields
    private_key_pem: bytes | None = None  # or the PEM itself (from an environment variable)

    def __repr__(self) -> str:  # the PEM is a secret: never print it
        return (
            f"IngestSettings(source={self.source!r}, db_path={self.db_path!r}, "
            f"private_key={self.private_key!r})"
        )
