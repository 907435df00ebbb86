"""``refresh_rollups`` for either warehouse kind: the DuckDB file (``models.rollups``) or
an Iceberg warehouse (``models.rollups_lake``)."""

from __future__ import annotations

from core.warehouse import Warehouse
from models import rollups
from models.config import ModelsSettings
from models.rollups import RefreshResult

__all__ = ["refresh_rollups"]


def refresh_rollups(
    warehouse: Warehouse, settings: ModelsSettings, *, full: bool = False
) -> RefreshResult:
    """Bring the rollups of ``warehouse`` up to date (only the hours that received rows,
    unless ``full`` or the settings changed)."""
    if warehouse.lake is not None:
        from models.rollups_lake import refresh_lake_rollups  # noqa: PLC0415 - lake extra

        return refresh_lake_rollups(warehouse, settings, full=full)
    return rollups.refresh_rollups(warehouse, settings, full=full)
