"""FinOps models over the warehouse: pricing, cost, rollups, reports, cache, anomalies,
forecasts, FOCUS export, and the views dashboards draw (``explore``, ``trends``).

Pure Polars functions over frames read from DuckDB through Arrow; ``service``
holds the entry points that open the warehouse.
"""

from models.anomalies import detect_anomalies
from models.config import ModelsSettings, load_models_settings, models_settings_from
from models.cost import COST_COLUMNS, with_cost
from models.errors import ModelsError, PriceFileError
from models.explore import (
    DataHealth,
    RequestDetail,
    alert_history,
    data_health,
    find_requests,
    latency_p95,
    policy_categories,
    policy_counts,
    recent_policy_events,
    request_detail,
    rollup_span,
)
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
    "CacheReport",
    "DataHealth",
    "ModelsError",
    "ModelsSettings",
    "PriceFileError",
    "RefreshResult",
    "RequestDetail",
    "SpendReport",
    "alert_history",
    "anomaly_bands",
    "anomaly_report",
    "budget_spend",
    "burndown",
    "cache_report",
    "cost_report",
    "data_health",
    "detect_anomalies",
    "dimension_values",
    "export_focus",
    "filter_rollup",
    "find_requests",
    "forecast_month",
    "forecast_report",
    "hourly_rollup",
    "latency_p95",
    "load_models_settings",
    "load_price_file",
    "models_settings_from",
    "policy_categories",
    "policy_counts",
    "price_table",
    "read_rollup",
    "recent_policy_events",
    "reconcile_report",
    "reconciliation",
    "refresh",
    "refresh_rollups",
    "repeated_prompt_flags",
    "request_detail",
    "rollup_span",
    "spend_by",
    "totals",
    "trend",
    "with_cost",
]
