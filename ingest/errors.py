"""The ingest branch of aigw's error tree (drawn whole in ``core.errors``)."""

from core.errors import (
    AigwError,
    ConfigError,
    DecryptError,
    EngineError,
    InvalidRecord,
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

__all__ = [
    "AigwError",
    "ConfigError",
    "DecryptError",
    "EngineError",
    "InvalidRecord",
    "ObjectReadError",
    "QualityGateError",
    "SchemaTooNew",
    "SourceAuthError",
    "SourceError",
    "SourceNotFound",
    "SourceUnreachable",
    "WarehouseError",
    "WarehouseLocked",
]
