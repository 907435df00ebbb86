"""The warehouse: one DuckDB file today (``connection``), its numbered migrations
(``migrations``; the ``requests`` columns come from ``core.schema``), and the reads of
``requests`` (``reads`` for the models, ``explore`` for the dashboard's raw-request
views; ``sql`` for SQL typed by a person). ``connection`` is the one place where
``duckdb.Error`` becomes an aigw error.
"""

from core.warehouse.cacheable import (
    CACHEABLE_TABLE,
    GROUP_CHECK,
    GROUP_HASH,
    STORED_COLUMNS,
    read_cacheable,
    store_cacheable,
)
from core.warehouse.connection import Warehouse, lock_holder, open_warehouse, warehouse_errors
from core.warehouse.explore import (
    EXPLORER_STATUSES,
    PERIOD_GRAINS,
    POLICY_KINDS,
    DataHealth,
    RequestRow,
    alert_history,
    data_health,
    find_requests,
    latency_p95,
    policy_categories,
    policy_counts,
    recent_policy_events,
    request_row,
    rollup_span,
    unattributed_requests,
    unit_cost_rows,
)
from core.warehouse.lake import attach_snapshot
from core.warehouse.migrations import MIGRATIONS, SCHEMA_VERSION, table_exists
from core.warehouse.prompt_prefixed import (
    PREFIXED_COLUMNS,
    PREFIXED_DIMENSIONS,
    PREFIXED_TABLE,
    read_prompt_prefixed,
    store_prompt_prefixed,
)
from core.warehouse.reads import (
    Dimensions,
    cache_miss_costs,
    clear_hours,
    newest_ingest,
    read_requests,
    request_days,
    request_hashes,
    time_range,
    touched_hours,
)
from core.warehouse.replay_inputs import (
    PROFILE_COLUMNS,
    PROFILES_TABLE,
    REPLAY_TABLE,
    in_time_order,
    read_replay_requests,
    replay_inputs_kept,
    store_replay_inputs,
)
from core.warehouse.replay_read import (
    KEPT_COLUMNS,
    KEY_HASH,
    asked_pairs,
    read_kept_routed,
    read_routed,
)
from core.warehouse.sql import StatementResult, run_sql

__all__ = [
    "CACHEABLE_TABLE",
    "EXPLORER_STATUSES",
    "GROUP_CHECK",
    "GROUP_HASH",
    "KEPT_COLUMNS",
    "KEY_HASH",
    "MIGRATIONS",
    "PERIOD_GRAINS",
    "POLICY_KINDS",
    "PREFIXED_COLUMNS",
    "PREFIXED_DIMENSIONS",
    "PREFIXED_TABLE",
    "PROFILES_TABLE",
    "PROFILE_COLUMNS",
    "REPLAY_TABLE",
    "SCHEMA_VERSION",
    "STORED_COLUMNS",
    "DataHealth",
    "Dimensions",
    "RequestRow",
    "StatementResult",
    "Warehouse",
    "alert_history",
    "asked_pairs",
    "attach_snapshot",
    "cache_miss_costs",
    "clear_hours",
    "data_health",
    "find_requests",
    "in_time_order",
    "latency_p95",
    "lock_holder",
    "newest_ingest",
    "open_warehouse",
    "policy_categories",
    "policy_counts",
    "read_cacheable",
    "read_kept_routed",
    "read_prompt_prefixed",
    "read_replay_requests",
    "read_requests",
    "read_routed",
    "recent_policy_events",
    "replay_inputs_kept",
    "request_days",
    "request_hashes",
    "request_row",
    "rollup_span",
    "run_sql",
    "store_cacheable",
    "store_prompt_prefixed",
    "store_replay_inputs",
    "table_exists",
    "time_range",
    "touched_hours",
    "unattributed_requests",
    "unit_cost_rows",
    "warehouse_errors",
]
