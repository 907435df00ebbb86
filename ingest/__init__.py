"""Logpush and REST log objects from a folder or S3/R2 into the DuckDB warehouse."""

from core.warehouse import SCHEMA_VERSION, Warehouse, open_warehouse
from ingest.config import (
    DEFAULT_DB_PATH,
    IngestFileOptions,
    IngestSettings,
    ingest_options_from,
    load_ingest_options,
)
from ingest.errors import (
    AigwError,
    ConfigError,
    ObjectReadError,
    QualityGateError,
    SchemaTooNew,
    SourceAuthError,
    SourceError,
    SourceNotFound,
    SourceUnreachable,
    WarehouseError,
    WarehouseLocked,
)
from ingest.quality import QUALITY_MODES, ExpectationOutcome, QualityReport, check_quality_mode
from ingest.query import QueryResult, run_query
from ingest.run import IngestSummary, ObjectResult, ingest
from ingest.service import run_ingest
from ingest.sources import LocalFolder, S3Bucket, Source, StoredObject, open_source
from ingest.watch import AfterBatch, PollReport, WatchSettings, WatchSummary, watch

__all__ = [
    "DEFAULT_DB_PATH",
    "QUALITY_MODES",
    "SCHEMA_VERSION",
    "AfterBatch",
    "AigwError",
    "ConfigError",
    "ExpectationOutcome",
    "IngestFileOptions",
    "IngestSettings",
    "IngestSummary",
    "LocalFolder",
    "ObjectReadError",
    "ObjectResult",
    "PollReport",
    "QualityGateError",
    "QualityReport",
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
    "WatchSettings",
    "WatchSummary",
    "check_quality_mode",
    "ingest",
    "ingest_options_from",
    "load_ingest_options",
    "open_source",
    "open_warehouse",
    "run_ingest",
    "run_query",
    "watch",
]
