"""Provider prompt caching: requests that repeat a large prefix without reading it from
the provider's cache, priced as if they had.

aigw's gateway logs a hash of each request's stable prefix (system prompt, instructions,
tools) and its estimated tokens (``prompt_prefix_hash``, ``prompt_prefix_tokens``;
``proxy.prompt_prefix``). A request is *eligible* when it was answered (status below
400, not a response-cache hit, not rate-limited), priced from the catalogue or an
override (``REPRICED``), has a prefix of at least ``MIN_PREFIX_TOKENS``, read nothing from
the prompt cache (``cache_read_tokens`` null or 0), and its model's price row has a
cache-read rate. Records of other gateways (Cloudflare's) carry no prefix hash: they
cannot be estimated, and a note counts them.

The replay, per provider, model and prefix hash in time order: a cache entry lives
``PROMPT_CACHE_TTL`` (5 minutes) from its last use, refreshed on each read (Anthropic's
documented behaviour; OpenAI clears cached prefixes after 5 to 10 minutes of
inactivity). The first request of a chain writes the prefix (``cache_write_tokens``: the
model's write premium where it has one, Anthropic's 1.25x; its input rate otherwise);
a request within the TTL of the previous one reads it (``cache_read_tokens`` = the
prefix, at most the request's input). Both are priced by ``models.cost.with_cost``
(``reprice``), the rules of the current cost; ``tokens_in`` includes cache tokens.
Only eligible requests take part: a request that already read the cache is left as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Final

import polars as pl

from core.warehouse import PREFIXED_COLUMNS
from models.pricing import price_table
from models.trends import filter_rollup
from models.whatif.common import REPRICED, WhatIf, as_units, reprice, summed

__all__ = [
    "DEFAULT_PROMPT_CACHE_BY",
    "MIN_PREFIX_TOKENS",
    "PROMPT_CACHE_COLUMNS",
    "PROMPT_CACHE_TTL",
    "replay_prompt_cache",
]

# The smallest prompt Anthropic (Claude Sonnet 4.5, Opus 4 and 4.1) and OpenAI cache:
# 1,024 tokens (docs.anthropic.com and platform.openai.com "Prompt caching", checked
# 2026-12); some models need more (2,048 or 4,096 for Haiku and the newest Opus).
MIN_PREFIX_TOKENS: Final = 1024
PROMPT_CACHE_TTL: Final = timedelta(minutes=5)
# Rows by provider and model: the caching switch is per provider (Anthropic's
# cache_control, OpenAI's automatic caching) and the saving depends on the model's rates.
DEFAULT_PROMPT_CACHE_BY: Final = ("provider", "model")
# The request columns the replay reads (besides the ``by`` and filter dimensions): the
# columns the rollup refresh keeps of each prefixed request (one list, defined there).
PROMPT_CACHE_COLUMNS: Final = PREFIXED_COLUMNS
_GROUP: Final = ("provider", "model", "prompt_prefix_hash")
_COUNTS: Final = ("affected_requests", "cache_write_requests", "cache_read_requests")


def replay_prompt_cache(
    requests: pl.LazyFrame,
    *,
    overrides: pl.DataFrame | None = None,
    by: Sequence[str] = DEFAULT_PROMPT_CACHE_BY,
    filters: Mapping[str, str] | None = None,
    ttl: timedelta = PROMPT_CACHE_TTL,
    min_prefix_tokens: int = MIN_PREFIX_TOKENS,
    scope: pl.LazyFrame | None = None,
) -> WhatIf:
    """The requests in scope by ``by``, their eligible ones priced with the prefix cached.

    ``requests``: costed requests (``models.rollups.costed_requests``: one row a request)
    with ``PROMPT_CACHE_COLUMNS`` and the ``by`` and ``filters`` dimensions;
    ``overrides``: the user's price rows. The table adds ``cache_write_requests`` and
    ``cache_read_requests`` (their sum is ``affected_requests``).

    With ``scope`` (rollup rows with ``requests``, ``cost_usd`` and the same dimensions:
    every request of the window), ``requests`` need only hold those with a prefix hash:
    the totals come from ``scope``, and its other requests are counted as not estimated.
    """
    if ttl <= timedelta(0):
        raise ValueError("the TTL must be above 0")
    keys = list(by)
    totals = None if scope is None else filter_rollup(scope, filters).collect()
    if totals is not None:
        requests = requests.filter(pl.col("prompt_prefix_hash").is_not_null())
    in_scope = filter_rollup(as_units(requests), filters).collect()
    pairs = in_scope.select(pl.col("provider").fill_null(""), "model").unique().drop_nulls()
    prices = price_table(pairs.rows(), overrides)
    readable = (
        prices.group_by("provider", "model")
        .agg(pl.col("cache_read_mtok").is_not_null().any().alias("_readable"))
        .filter("_readable")
        .select("provider", "model", "_readable")
    )
    marked = in_scope.with_columns(pl.col("provider").fill_null("").alias("_provider")).join(
        readable.rename({"provider": "_provider"}), on=["_provider", "model"], how="left"
    )
    hashed = pl.col("prompt_prefix_hash").is_not_null()
    answered = (
        (pl.col("status_code").fill_null(200) < 400)
        & ~pl.col("cached").fill_null(False)
        & ~pl.col("rate_limited").fill_null(False)
        & pl.col("cost_source").is_in(REPRICED)
    )
    eligible = (
        answered
        & hashed
        & (pl.col("prompt_prefix_tokens").fill_null(0) >= min_prefix_tokens)
        & (pl.col("cache_read_tokens").fill_null(0) == 0)
        & pl.col("_readable").fill_null(False)
    )
    marked = marked.with_columns(eligible.alias("_eligible"))
    replayed = _replayed(marked.filter("_eligible"), ttl, prices)
    kept = marked.filter(~pl.col("_eligible")).select(
        *keys,
        "requests",
        pl.lit(0, pl.Int64).alias("affected_requests"),
        pl.lit(0, pl.Int64).alias("cache_write_requests"),
        pl.lit(0, pl.Int64).alias("cache_read_requests"),
        pl.col("cost_usd").fill_null(0.0).alias("current_cost_usd"),
        pl.col("cost_usd").fill_null(0.0).alias("projected_cost_usd"),
    )
    changed = replayed.select(
        *keys,
        "requests",
        pl.col("requests").alias("affected_requests"),
        (~pl.col("_read")).cast(pl.Int64).alias("cache_write_requests"),
        pl.col("_read").cast(pl.Int64).alias("cache_read_requests"),
        pl.col("cost_usd").fill_null(0.0).alias("current_cost_usd"),
        "projected_cost_usd",
    )
    parts = [kept, changed]
    unhashed = None
    if totals is not None:  # the window's totals, and the prefixed requests' changes
        parts = [
            totals.select(
                *keys,
                pl.col("requests").cast(pl.Int64),
                *(pl.lit(0, pl.Int64).alias(name) for name in _COUNTS),
                pl.col("cost_usd").fill_null(0.0).alias("current_cost_usd"),
                pl.col("cost_usd").fill_null(0.0).alias("projected_cost_usd"),
            ),
            changed.with_columns(
                pl.lit(0, pl.Int64).alias("requests"),
                pl.lit(0.0).alias("current_cost_usd"),
                (pl.col("projected_cost_usd") - pl.col("current_cost_usd")).alias(
                    "projected_cost_usd"
                ),
            ),
        ]
        unhashed = int(totals["requests"].sum()) - marked.height
    rows = pl.concat(parts, how="vertical_relaxed").lazy()
    table = summed(
        rows,
        keys,
        extra=[pl.col("cache_write_requests").sum(), pl.col("cache_read_requests").sum()],
    )
    notes = _notes(marked, answered, hashed, ttl, min_prefix_tokens, unhashed=unhashed)
    return WhatIf(f"provider prompt caching ({_minutes(ttl)} TTL)", table, notes)


def _replayed(eligible: pl.DataFrame, ttl: timedelta, prices: pl.DataFrame) -> pl.DataFrame:
    """The eligible requests with ``_read`` (within ``ttl`` of the previous request of
    their chain: a read; else a write) and ``projected_cost_usd`` at those tokens."""
    # in time order, each chain's rows are too: the gap to the previous one is a diff over
    # the chain (sorting by the group's strings as well took longer than the whole replay)
    ordered = eligible.sort("ts")
    gap = pl.col("ts").diff().over(_GROUP)
    prefix = pl.min_horizontal(
        pl.col("prompt_prefix_tokens"), pl.col("tokens_in").fill_null(0)
    ).cast(pl.Float64)
    with_tokens = ordered.with_columns(gap.lt(ttl).fill_null(False).alias("_read")).with_columns(
        pl.col("provider").alias("target_provider"),
        pl.col("model").alias("target_model"),
        pl.when("_read").then(prefix).otherwise(0.0).alias("cache_read_tokens"),
        pl.when("_read").then(0.0).otherwise(prefix).alias("cache_write_tokens"),
    )
    return reprice(with_tokens.lazy(), prices).collect()


def _notes(
    marked: pl.DataFrame,
    answered: pl.Expr,
    hashed: pl.Expr,
    ttl: timedelta,
    min_prefix_tokens: int,
    *,
    unhashed: int | None = None,
) -> tuple[str, ...]:
    """The replay's rule and what it left out; ``unhashed``: the requests without a prefix
    hash when ``marked`` holds only the others (counted from the rollups, so refused and
    cache-hit requests too)."""
    counts = marked.select(
        (answered & ~hashed).sum().alias("unhashed"),
        (answered & hashed & (pl.col("cache_read_tokens").fill_null(0) > 0)).sum().alias("read"),
        (answered & hashed & ~pl.col("_readable").fill_null(False)).sum().alias("rateless"),
    ).row(0, named=True)
    notes = [
        f"replayed per provider, model and prompt-prefix hash: a chain's first request writes "
        f"the prefix (the model's cache-write rate, its input rate where it has none), a "
        f"request within {_minutes(ttl)} of the previous one reads it (Anthropic's TTL, "
        "refreshed on each read; OpenAI keeps prefixes 5 to 10 minutes)",
        f"prefix sizes are the gateway's estimate (four characters a token); prefixes under "
        f"{min_prefix_tokens:,} tokens are not cached (some models need 2,048 or 4,096)",
    ]
    if unhashed is not None:
        counts["unhashed"] = unhashed
    if counts["unhashed"]:
        notes.append(
            f"{counts['unhashed']:,} requests carry no prefix hash (logged by another gateway, "
            "e.g. Cloudflare's, or without a system prompt or tools): not estimated"
        )
    if counts["read"]:
        notes.append(f"{counts['read']:,} requests already read the prompt cache: left as is")
    if counts["rateless"]:
        notes.append(
            f"{counts['rateless']:,} requests are on models without a cache-read price: "
            "not estimated"
        )
    return tuple(notes)


def _minutes(ttl: timedelta) -> str:
    seconds = int(ttl.total_seconds())
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"
