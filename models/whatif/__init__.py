"""What-ifs on the recorded traffic, and the savings they point to.

Pure functions over rollup frames and costed requests (``models.whatif.common``): a
model switch (``switch``), a response-cache TTL replay (``cache_ttl``), batch API prices
(``batch``), provider prompt caching (``prompt_cache``), budgets replayed as spend caps
(``caps``), the gateway's rate limits and route budgets replayed (``limits``,
``route_budgets``), and the opportunities they find together (``savings``). The service
layer (``app.service``) opens the warehouse and reads what each needs: rollups where they
suffice, raw requests only where needed.
"""

from models.whatif.batch import batch_price_table, batch_savings
from models.whatif.cache_ttl import (
    DEFAULT_CACHE_BY,
    TTL_CHOICES,
    parse_ttl,
    replay_cache_ttl,
    replay_cache_ttls,
    replay_identified,
)
from models.whatif.caps import CAP_PERIODS, CapsReplay, SpendCap, replay_caps
from models.whatif.common import TOKENS, WhatIf
from models.whatif.config import (
    DEFAULT_BATCH_DISCOUNT,
    DEFAULT_BATCH_VALUES,
    WhatIfSettings,
    whatif_settings_from,
)
from models.whatif.limits import (
    BUDGET_LIMIT,
    TIE_ORDER,
    LimitsReplay,
    RateLimitRule,
    limit_decisions,
    replay_rate_limits,
    unique_keys,
)
from models.whatif.prompt_cache import (
    DEFAULT_PROMPT_CACHE_BY,
    MIN_PREFIX_TOKENS,
    PROMPT_CACHE_COLUMNS,
    PROMPT_CACHE_TTL,
    replay_prompt_cache,
)
from models.whatif.route_budgets import RouteBudget
from models.whatif.savings import SAVINGS_COLUMNS, opportunities, scope_filters
from models.whatif.switch import DEFAULT_SWITCH_BY, ModelSwitch, family, switch_models

__all__ = [
    "BUDGET_LIMIT",
    "CAP_PERIODS",
    "DEFAULT_BATCH_DISCOUNT",
    "DEFAULT_BATCH_VALUES",
    "DEFAULT_CACHE_BY",
    "DEFAULT_PROMPT_CACHE_BY",
    "DEFAULT_SWITCH_BY",
    "MIN_PREFIX_TOKENS",
    "PROMPT_CACHE_COLUMNS",
    "PROMPT_CACHE_TTL",
    "SAVINGS_COLUMNS",
    "TIE_ORDER",
    "TOKENS",
    "TTL_CHOICES",
    "CapsReplay",
    "LimitsReplay",
    "ModelSwitch",
    "RateLimitRule",
    "RouteBudget",
    "SpendCap",
    "WhatIf",
    "WhatIfSettings",
    "batch_price_table",
    "batch_savings",
    "family",
    "limit_decisions",
    "opportunities",
    "parse_ttl",
    "replay_cache_ttl",
    "replay_cache_ttls",
    "replay_caps",
    "replay_identified",
    "replay_prompt_cache",
    "replay_rate_limits",
    "scope_filters",
    "switch_models",
    "unique_keys",
    "whatif_settings_from",
]
