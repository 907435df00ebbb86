"""Logpush and REST log objects from a folder or S3/R2 into the DuckDB warehouse."""

from ingest.config import DEFAULT_DB_PATH, IngestSettings
from ingest.errors import (
    AigwError,
    ConfigError,
    ObjectReadError,
    SchemaTooNew,
    SourceAuthError,
    SourceError,
    SourceNotFound,
    SourceUnreachable,
    WarehouseError,
    WarehouseLocked,
)
from ingest.query import QueryResult, run_query
from ingest.run import IngestSummary, ObjectResult, ingest
from ingest.service import run_ingest
from ingest.sources import LocalFolder, S3Bucket, Source, StoredObject, open_source
from ingest.warehouse import SCHEMA_VERSION, Warehouse, open_warehouse

__all__ = [
    "DEFAULT_DB_PATH",
    "SCHEMA_VERSION",
    "AigwError",
    "ConfigError",
    "IngestSettings",
    "IngestSummary",
    "LocalFolder",
    "ObjectReadError",
    "ObjectResult",
    "QueryResult",
    "S3Bucket",
    "SchemaTooNew",
    "Source",
    "SourceAuthError",
    "SourceError",
    "SourceNotFound",
    "SourceUnreachable",
    "StoredObject",
    "Warehouse",
    "WarehouseError",
    "WarehouseLocked",
    "ingest",
    "open_source",
    "open_warehouse",
    "run_ingest",
    "run_query",
]
