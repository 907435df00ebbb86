"""FinOps models: pricing, cost, rollups, reports, cache, anomalies, forecasts, FOCUS
export, and the trends the dashboards draw.

Pure Polars functions, frames in and frames out, over frames that ``core.warehouse``
reads; ``rollups`` and ``reports`` also keep and read the derived rollup tables. The
entry points that open the warehouse are the service layer's (``app.service``).
"""

from models.anomalies import detect_anomalies
from models.cache import cache_candidates, cache_summary
from models.config import ModelsSettings, load_models_settings, models_settings_from
from models.cost import COST_COLUMNS, with_cost
from models.errors import ModelsError, PriceFileError
from models.focus import focus_rows, write_focus
from models.forecast import forecast_month
from models.loops import MIN_REPEATS, repeated_prompt_flags
from models.pricing import CATALOG_PROVIDERS, load_price_file, price_table
from models.refresh import refresh_rollups
from models.reports import (
    GRAINS,
    daily_bounds,
    newest_rollup_hour,
    read_rollup,
    reconciliation,
    spend_by,
)
from models.rollups import (
    MEASURES,
    RefreshResult,
    costed_requests,
    hourly_rollup,
    repeated_requests,
    rollups_stale,
)
from models.root_cause import RootCauses, explain_flags
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
    "MEASURES",
    "MIN_REPEATS",
    "ModelsError",
    "ModelsSettings",
    "PriceFileError",
    "RefreshResult",
    "RootCauses",
    "anomaly_bands",
    "budget_spend",
    "burndown",
    "cache_candidates",
    "cache_summary",
    "costed_requests",
    "daily_bounds",
    "detect_anomalies",
    "dimension_values",
    "explain_flags",
    "filter_rollup",
    "focus_rows",
    "forecast_month",
    "hourly_rollup",
    "load_models_settings",
    "load_price_file",
    "models_settings_from",
    "newest_rollup_hour",
    "price_table",
    "read_rollup",
    "reconciliation",
    "refresh_rollups",
    "repeated_prompt_flags",
    "repeated_requests",
    "rollups_stale",
    "spend_by",
    "totals",
    "trend",
    "with_cost",
    "write_focus",
]
