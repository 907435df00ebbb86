"""The lakehouse warehouse kind: Apache Iceberg tables for facts, a SQL database for state.

``spec`` (what ``aigw.toml`` says) and ``extra`` import nothing optional; ``lake``,
``tables`` and ``state`` need the ``lake`` extra (PyIceberg, SQLAlchemy) and are imported
only when an Iceberg warehouse is opened. See docs/lakehouse.md.
"""

from core.lake.extra import MissingExtra, require, require_lake
from core.lake.spec import (
    DEFAULT_DB_PATH,
    EngineSpec,
    LakeSpec,
    WarehouseTarget,
    engine_spec_from,
    warehouse_target_from,
)

__all__ = [
    "DEFAULT_DB_PATH",
    "EngineSpec",
    "LakeSpec",
    "MissingExtra",
    "WarehouseTarget",
    "engine_spec_from",
    "require",
    "require_lake",
    "warehouse_target_from",
]
