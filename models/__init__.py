"""FinOps models: pricing, cost, rollups, reports, cache, anomalies, forecasts, FOCUS
export, the trends the dashboards draw, showback statements, cost per outcome, and
what-ifs with the savings they find.

Pure Polars functions, frames in and frames out, over frames that ``core.warehouse``
reads; ``rollups`` and ``reports`` also keep and read the derived rollup tables. The
entry points that open the warehouse are the service layer's (``app.service``).
"""

from models.anomalies import detect_anomalies
from models.cache import cache_candidates, cache_summary
from models.config import (
    COST_RULES_VERSION,
    ModelsSettings,
    load_models_settings,
    models_settings_from,
)
from models.cost import COST_COLUMNS, with_cost
from models.errors import ModelsError, PriceFileError
from models.focus import focus_requests, focus_rows, focus_table, write_focus
from models.forecast import forecast_month
from models.invoices import (
    INVOICE_SCHEMA,
    compare_invoices,
    gateway_daily,
    invoice_months,
    invoice_summary,
    read_invoices,
    read_provider_costs,
)
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
from models.statements import (
    AllocationRule,
    Statements,
    StatementSettings,
    TeamBudget,
    allocation_rule,
    build_statements,
    month_window,
    statement_settings_from,
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
from models.unit_cost import (
    OutcomeSettings,
    UnitCosts,
    outcome_settings_from,
    read_outcomes,
    unit_costs,
    unit_requests,
)
from models.whatif import (
    DEFAULT_CACHE_BY,
    DEFAULT_PROMPT_CACHE_BY,
    DEFAULT_SWITCH_BY,
    PROMPT_CACHE_COLUMNS,
    SAVINGS_COLUMNS,
    TTL_CHOICES,
    CapsReplay,
    LimitsReplay,
    ModelSwitch,
    RateLimitRule,
    SpendCap,
    WhatIf,
    WhatIfSettings,
    batch_savings,
    opportunities,
    parse_ttl,
    replay_cache_ttl,
    replay_cache_ttls,
    replay_caps,
    replay_prompt_cache,
    replay_rate_limits,
    scope_filters,
    switch_models,
    whatif_settings_from,
)

__all__ = [
    "CATALOG_PROVIDERS",
    "COST_COLUMNS",
    "COST_RULES_VERSION",
    "DEFAULT_CACHE_BY",
    "DEFAULT_PROMPT_CACHE_BY",
    "DEFAULT_SWITCH_BY",
    "GRAINS",
    "INVOICE_SCHEMA",
    "MEASURES",
    "MIN_REPEATS",
    "PROMPT_CACHE_COLUMNS",
    "SAVINGS_COLUMNS",
    "TTL_CHOICES",
    "AllocationRule",
    "CapsReplay",
    "LimitsReplay",
    "ModelSwitch",
    "ModelsError",
    "ModelsSettings",
    "OutcomeSettings",
    "PriceFileError",
    "RateLimitRule",
    "RefreshResult",
    "RootCauses",
    "SpendCap",
    "StatementSettings",
    "Statements",
    "TeamBudget",
    "UnitCosts",
    "WhatIf",
    "WhatIfSettings",
    "allocation_rule",
    "anomaly_bands",
    "batch_savings",
    "budget_spend",
    "build_statements",
    "burndown",
    "cache_candidates",
    "cache_summary",
    "compare_invoices",
    "costed_requests",
    "daily_bounds",
    "detect_anomalies",
    "dimension_values",
    "explain_flags",
    "filter_rollup",
    "focus_requests",
    "focus_rows",
    "focus_table",
    "forecast_month",
    "gateway_daily",
    "hourly_rollup",
    "invoice_months",
    "invoice_summary",
    "load_models_settings",
    "load_price_file",
    "models_settings_from",
    "month_window",
    "newest_rollup_hour",
    "opportunities",
    "outcome_settings_from",
    "parse_ttl",
    "price_table",
    "read_invoices",
    "read_outcomes",
    "read_provider_costs",
    "read_rollup",
    "reconciliation",
    "refresh_rollups",
    "repeated_prompt_flags",
    "repeated_requests",
    "replay_cache_ttl",
    "replay_cache_ttls",
    "replay_caps",
    "replay_prompt_cache",
    "replay_rate_limits",
    "rollups_stale",
    "scope_filters",
    "spend_by",
    "statement_settings_from",
    "switch_models",
    "totals",
    "trend",
    "unit_costs",
    "unit_requests",
    "whatif_settings_from",
    "with_cost",
    "write_focus",
]
