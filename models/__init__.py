"""FinOps models: pricing, cost, rollups, reports, cache, anomalies, forecasts, FOCUS
export, and the trends the dashboards draw.

Pure Polars functions, frames in and frames out, over frames that ``core.warehouse``
reads; ``rollups`` and ``reports`` also keep and read the derived rollup tables. The
entry points that open the warehouse are the service layer's (``app.service``).
"""

from models.anomalies import detect_anomalies
from models.config import ModelsSettings, load_models_settings, models_settings_from
from models.cost import COST_COLUMNS, with_cost
from models.errors import ModelsError, PriceFileError
from models.forecast import forecast_month
from models.loops import repeated_prompt_flags
from models.pricing import CATALOG_PROVIDERS, load_price_file, price_table
from models.reports import GRAINS, read_rollup, reconciliation, spend_by
from models.rollups import RefreshResult, hourly_rollup, refresh_rollups, rollups_stale
from models.trends import (
    anomaly_bands,
    budget_spend,
    burndown,
    dimension_values,
    filter_rollup,
    totals,
    trend,
)

__all__ = [
    "CATALOG_PROVIDERS",
    "COST_COLUMNS",
    "GRAINS",
    "ModelsError",
    "ModelsSettings",
    "PriceFileError",
    "RefreshResult",
    "anomaly_bands",
    "budget_spend",
    "burndown",
    "detect_anomalies",
    "dimension_values",
    "filter_rollup",
    "forecast_month",
    "hourly_rollup",
    "load_models_settings",
    "load_price_file",
    "models_settings_from",
    "price_table",
    "read_rollup",
    "reconciliation",
    "refresh_rollups",
    "repeated_prompt_flags",
    "rollups_stale",
    "spend_by",
    "totals",
    "trend",
    "with_cost",
]
