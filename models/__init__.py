"""FinOps models over the warehouse: pricing, cost, rollups, reports, cache, anomalies,
forecasts and FOCUS export.

Pure Polars functions over frames read from DuckDB through Arrow; ``service``
holds the entry points that open the warehouse.
"""

from models.anomalies import detect_anomalies
from models.config import ModelsSettings, load_models_settings
from models.cost import COST_COLUMNS, with_cost
from models.errors import ModelsError, PriceFileError
from models.forecast import forecast_month
from models.loops import repeated_prompt_flags
from models.pricing import CATALOG_PROVIDERS, load_price_file, price_table
from models.reports import GRAINS, read_rollup, reconciliation, spend_by
from models.rollups import RefreshResult, hourly_rollup, refresh_rollups
from models.service import (
    CacheReport,
    SpendReport,
    anomaly_report,
    cache_report,
    cost_report,
    export_focus,
    forecast_report,
    reconcile_report,
    refresh,
)

__all__ = [
    "CATALOG_PROVIDERS",
    "COST_COLUMNS",
    "GRAINS",
    "CacheReport",
    "ModelsError",
    "ModelsSettings",
    "PriceFileError",
    "RefreshResult",
    "SpendReport",
    "anomaly_report",
    "cache_report",
    "cost_report",
    "detect_anomalies",
    "export_focus",
    "forecast_month",
    "forecast_report",
    "hourly_rollup",
    "load_models_settings",
    "load_price_file",
    "price_table",
    "read_rollup",
    "reconcile_report",
    "reconciliation",
    "refresh",
    "refresh_rollups",
    "repeated_prompt_flags",
    "spend_by",
    "with_cost",
]
