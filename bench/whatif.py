"""What-if benchmark: each what-if and the savings report over a large warehouse.

    python bench/whatif.py [--requests 10000000] [--out bench/out]

1. Builds a warehouse of N synthetic requests in SQL (30 days; the models benchmark's
   6 models, 4 teams, 200 users, 5 agents, of which 2 are non-interactive; a quarter of
   the requests repeat one of 200,000 identical requests, about 12 times each; 2% send
   one of 50 large prompt prefixes without reading the prompt cache), and its
   rollups, once (reused later).
2. Times each what-if as ``aigw whatif`` runs it (``app.service``: open the warehouse,
   read, compute) and the savings report, best of 3, beside ``aigw report cost`` as a
   yardstick of how busy the machine is; the rate-limit replay, which goes request by
   request, over the first day and over the 30 days (best of 3 too).

Prints seconds per step and the peak RSS. Not a test; docs/performance.md records the
numbers.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

# Run as `python bench/whatif.py`, this folder comes first on sys.path; the packages live
# one level up.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).parent]

from app.service import (  # noqa: E402 - after the sys.path fix above
    cost_report,
    refresh,
    savings_report,
    whatif_batch,
    whatif_budgets,
    whatif_cache,
    whatif_limits,
    whatif_prompt_cache,
    whatif_switch,
)
from ingest import open_warehouse  # noqa: E402
from models import ModelsSettings, ModelSwitch, WhatIfSettings, parse_ttl  # noqa: E402

sys.path.append(str(Path(__file__).parent))  # this folder's helpers, for one import
from synthetic_requests import START, build_requests, fill_sql, fresh  # noqa: E402

sys.path.pop()  # names here (ingest.py, models.py, proxy.py) shadow the packages

REPO = Path(__file__).resolve().parent.parent
DIMENSIONS = {"team": "team", "user": "user", "agent": "agent", "interactive": "interactive"}
BUDGETS = """\
[channels.outbox]
type = "outbox"
folder = "outbox"

[[budget]]
name = "daily-per-agent"
amount_usd = 150.0
period = "daily"
split_by = "agent"
channels = ["outbox"]

[[budget]]
name = "monthly-total"
amount_usd = 2500.0
period = "monthly"
channels = ["outbox"]
"""

# The sample gateway's chat limits: per user 120 requests a minute (sliding), per agent
# 40,000 tokens a minute; the bench's agents send far more, so most windows refuse some.
GATEWAY = """\
[auth]
required = false

[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:9"
api_key_env = "OPENAI_API_KEY"

[routes.chat]
match = ["*"]
provider = "openai"

[[routes.chat.rate_limits]]
name = "per-user"
per = "metadata:user"
limit = 120
window_s = 60
sliding = true

[[routes.chat.rate_limits]]
name = "per-agent-tokens"
per = "metadata:agent"
unit = "tokens"
limit = 40000
window_s = 60
"""

# The same route with the sample gateway's budget: $50 a day per agent, then gpt-4o-mini
# (every agent crosses it most days; other families at 1 token per token).
GATEWAY_BUDGET = GATEWAY.replace(
    'provider = "openai"\n',
    'provider = "openai"\nbudget = { usd = 50.0, period = "day", per = "metadata:agent", '
    'action = "reroute", reroute = "openai/gpt-4o-mini" }\n',
    1,
)

_FILL = fill_sql(
    "whatif",
    extra={
        # a quarter of the requests repeat one of 200,000 requests
        "cache_key_hash": (
            "CASE WHEN i % 4 = 0 THEN md5((((i + $offset) // 4) % 200000)::VARCHAR) END"
        ),
        # 2% of the requests (on claude-sonnet-4) send one of 50 large prompt prefixes and
        # read nothing from the prompt cache
        "prompt_prefix_hash": (
            "CASE WHEN i % 50 = 2 THEN md5('prefix-' || (((i + $offset) // 50) % 50)) END"
        ),
        "prompt_prefix_tokens": "CASE WHEN i % 50 = 2 THEN 1500 + (i % 7) * 300 END",
        "cache_read_tokens": (
            "CASE WHEN i % 50 = 2 THEN 0 "
            "WHEN models.provider = 'anthropic' THEN (i * 31) % 2000 END"
        ),
    },
    metadata=("'interactive', CASE WHEN i % 5 >= 3 THEN 'false' ELSE 'true' END",),
)


def main() -> None:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args()
    settings = ModelsSettings(dimensions=DIMENSIONS)
    db = args.out / f"whatif-{args.requests}.duckdb"
    if not db.exists():
        seconds = timed(lambda: build(db, args.requests, settings))
        print(f"built a warehouse of {args.requests:,} requests and its rollups in {seconds:.0f} s")
    # a warehouse built by an older aigw: migrated and its rollups (and the cache
    # replay's inputs) brought up to date, so the what-ifs read what users' would
    seconds = timed(lambda: refresh(db, settings))
    print(f"rollups brought up to date in {seconds:.1f} s")
    budgets = args.out / "whatif-budgets.toml"
    budgets.write_text(BUDGETS)
    gateway = args.out / "whatif-gateway.toml"
    gateway.write_text(GATEWAY)
    budgeted = args.out / "whatif-gateway-budget.toml"
    budgeted.write_text(GATEWAY_BUDGET)
    first_day = (START, START + timedelta(days=1))
    whatif = WhatIfSettings(batch_key="interactive", batch_values=("false",))
    runs: dict[str, Callable[[], Any]] = {
        # the yardstick: what the models benchmark measures at 15-17 ms on a quiet machine
        "reference: aigw report cost --by provider,model": lambda: cost_report(
            db, settings, by=["provider", "model"]
        ),
        "model switch gpt-4o -> gpt-4o-mini": lambda: whatif_switch(
            db, settings, [ModelSwitch.parse("gpt-4o=gpt-4o-mini")]
        ),
        "model switch, by agent, where team=team-1": lambda: whatif_switch(
            db,
            settings,
            [ModelSwitch.parse("gpt-4o=gpt-4o-mini")],
            by=["agent"],
            filters={"team": "team-1"},
        ),
        "cache TTL 5m": lambda: whatif_cache(db, settings, parse_ttl("5m")),
        "cache TTL 24h": lambda: whatif_cache(db, settings, parse_ttl("24h")),
        "batch API (2 non-interactive agents)": lambda: whatif_batch(db, settings, whatif),
        "provider prompt caching (200,000 prefixed requests)": lambda: whatif_prompt_cache(
            db, settings
        ),
        "budgets as caps (daily per agent, monthly)": lambda: whatif_budgets(db, settings, budgets),
        "savings report (30 days)": lambda: savings_report(db, settings, whatif),
        "rate limits (1 day, request by request)": lambda: whatif_limits(
            db, settings, gateway, since=first_day[0], until=first_day[1]
        ),
        "rate limits and a reroute budget (1 day)": lambda: whatif_limits(
            db,
            settings,
            budgeted,
            since=first_day[0],
            until=first_day[1],
            cross_family_ratio=1.0,
        ),
    }
    # the whole 30 days request by request (a few seconds since schema v13)
    runs["rate limits (30 days, request by request)"] = lambda: whatif_limits(db, settings, gateway)
    for name, run in runs.items():
        best = min(timed(run) for _ in range(3))
        print(f"{name}: {best:.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:,.0f} MB")


def build(path: Path, count: int, settings: ModelsSettings) -> None:
    """A warehouse of ``count`` synthetic requests over 30 days, with its rollups."""
    fresh(path)
    with open_warehouse(path) as warehouse:
        build_requests(warehouse.con, _FILL, count)
    refresh(path, settings, full=True)


def timed(step: Callable[[], Any]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
