"""The service layer: library functions that compose the stages (ingest, models, alerts)
over the warehouse. The CLI and the dashboards call these and only print or draw."""

from app.service.explore import RequestDetail, request_detail
from app.service.pipeline import (
    BatchOutcome,
    IngestOutcome,
    ingest_and_refresh,
    refresh_and_alert,
    watch_and_alert,
)
from app.service.reports import (
    CacheReport,
    SpendReport,
    anomaly_report,
    cache_report,
    cost_report,
    data_span,
    explain_anomalies,
    export_focus,
    forecast_report,
    reconcile_report,
    refresh,
)
from app.service.statements import (
    StatementsReport,
    UnitCostReport,
    statements_report,
    team_budgets,
    unit_cost_report,
)
from app.service.whatif import (
    DEFAULT_DAYS,
    Savings,
    batch_dimension,
    savings_in,
    savings_report,
    whatif_batch,
    whatif_cache,
    whatif_prompt_cache,
    whatif_switch,
)
from app.service.whatif_budgets import whatif_budgets
from app.service.whatif_limits import AnyEnvironment, whatif_limits

__all__ = [
    "DEFAULT_DAYS",
    "AnyEnvironment",
    "BatchOutcome",
    "CacheReport",
    "IngestOutcome",
    "RequestDetail",
    "Savings",
    "SpendReport",
    "StatementsReport",
    "UnitCostReport",
    "anomaly_report",
    "batch_dimension",
    "cache_report",
    "cost_report",
    "data_span",
    "explain_anomalies",
    "export_focus",
    "forecast_report",
    "ingest_and_refresh",
    "reconcile_report",
    "refresh",
    "refresh_and_alert",
    "request_detail",
    "savings_in",
    "savings_report",
    "statements_report",
    "team_budgets",
    "unit_cost_report",
    "watch_and_alert",
    "whatif_batch",
    "whatif_budgets",
    "whatif_cache",
    "whatif_limits",
    "whatif_prompt_cache",
    "whatif_switch",
]
