"""Savings opportunities: the what-ifs that would have saved the most, as one list.

Each opportunity is one change with its saving per month, its evidence and its scope:

* ``model``: each model that cost something, switched to the cheapest model of its
  family that would have served the same tokens for less. Candidates: the family's
  models the data shows in use on the same endpoint (a chat model is never proposed
  for embeddings), and the catalogue's smaller siblings of the model
  (``<model>-mini``, ``-nano``, ``-lite``). A smaller model may answer worse: the
  change is a trade the team must test, the saving says what it is worth.
* ``cache``: each route (gateway and endpoint) replayed under the TTLs tried, the one
  that saves most (``models.whatif.cache_ttl``).
* ``batch``: each value of the batch dimension whose traffic a batch API would have
  priced lower (``models.whatif.batch``).
* ``prompt-cache``: each provider and model whose requests repeat a large prompt prefix
  without cache reads, priced with the provider's prompt cache
  (``models.whatif.prompt_cache``).

Per month is the saving over the window scaled to 30 days. Opportunities that save
nothing are left out; the biggest come first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from core.errors import ModelsError
from models.pricing import price_table
from models.whatif.cache_ttl import parse_ttl
from models.whatif.common import WhatIf
from models.whatif.switch import ModelSwitch, RequestsOfModels, family, switch_models

__all__ = [
    "SAVINGS_COLUMNS",
    "SIBLING_SUFFIXES",
    "opportunities",
    "scope_filters",
    "switch_candidates",
]

SIBLING_SUFFIXES: Final = ("-mini", "-nano", "-lite")
SAVINGS_COLUMNS: Final = (
    "kind",
    "scope",
    "saving_per_month_usd",
    "saving_usd",
    "requests",
    "current_cost_usd",
    "projected_cost_usd",
    "change",
    "evidence",
)
_MONTH_DAYS: Final = 30.0
_NOTHING: Final = 1e-9  # USD: below it a saving is rounding, not an opportunity


@dataclass(frozen=True, slots=True)
class _Found:
    """One opportunity before scaling: ``totals`` has the what-if's measures."""

    kind: str
    scope: str
    totals: Mapping[str, Any]
    change: str
    evidence: str


def switch_candidates(usage: pl.DataFrame) -> list[tuple[str, str, list[str]]]:
    """(provider, model, candidate models) for each priced model of ``usage`` (rows with
    ``provider``, ``model``, ``endpoint``, ``cost_source``): the family's other models in
    use on one of its endpoints, and its catalogue siblings on its provider."""
    priced = usage.filter(pl.col("cost_source").is_in(["catalog", "override"]))
    pairs = priced.select("provider", "model", "endpoint").unique().drop_nulls()
    found = []
    for provider, model in sorted(set(pairs.select("provider", "model").rows())):
        served = pairs.filter((pl.col("provider") == provider) & (pl.col("model") == model))
        endpoints = set(served["endpoint"].to_list())
        in_use = {
            other
            for other_provider, other, endpoint in pairs.rows()
            if family(other_provider) == family(provider) and endpoint in endpoints
        }
        catalogue = price_table(
            [(provider, name) for name in (model, *(model + s for s in SIBLING_SUFFIXES))]
        ).select("model", "price_ref")
        own = set(catalogue.filter(pl.col("model") == model)["price_ref"].to_list())
        # a name the catalogue matches to the model's own entry is not a sibling
        siblings = catalogue.filter(~pl.col("price_ref").is_in(list(own)))["model"].to_list()
        candidates = sorted((in_use | set(siblings)) - {model})
        if candidates:
            found.append((provider, model, candidates))
    return found


def _model_opportunities(
    usage: pl.LazyFrame, overrides: pl.DataFrame | None, requests_of: RequestsOfModels | None
) -> list[_Found]:
    """The best switch of each model (the lowest projected cost among its candidates)."""
    frame = usage.collect()
    rows = []
    for provider, model, candidates in switch_candidates(frame):
        best: tuple[float, str, WhatIf] | None = None
        for candidate in candidates:
            switch = ModelSwitch(model, candidate, source_provider=provider)
            try:
                answer = switch_models(
                    frame.lazy(), [switch], overrides=overrides, by=(), requests_of=requests_of
                )
            except ModelsError:
                continue  # no price on this provider: not a candidate
            saving = float(answer.totals()["saving_usd"])
            if saving > _NOTHING and (best is None or saving > best[0]):
                best = (saving, candidate, answer)
        if best is None:
            continue
        _, candidate, answer = best
        totals = answer.totals()
        rows.append(
            _Found(
                kind="model",
                scope=f"provider={provider}, model={model}",
                totals=totals,
                change=f"model name: request {candidate} instead of {model}",
                evidence=(
                    f"{int(totals['affected_requests']):,} priced requests of {model}: "
                    f"${totals['current_cost_usd']:,.2f}; the same tokens at {candidate}'s "
                    f"prices: ${totals['projected_cost_usd']:,.2f}"
                ),
            )
        )
    return rows


def _cache_opportunities(replays: Mapping[str, WhatIf]) -> list[_Found]:
    """Per route, the TTL whose replay saves most; of TTLs that save the same (to a
    millionth of a dollar, as the list ranks them: sums in another order differ in their
    last bits), the shortest (``replays`` come shortest first): answers stay fresher for
    the same saving."""
    best: dict[tuple[str, str], tuple[float, str, dict[str, Any]]] = {}
    for label, answer in replays.items():
        for row in answer.table.iter_rows(named=True):
            key = (str(row["gateway"]), str(row["endpoint"]))
            saving = float(row["saving_usd"] or 0.0)
            if saving > _NOTHING and (key not in best or round(saving - best[key][0], 6) > 0):
                best[key] = (saving, label, row)
    rows = []
    for (gateway, endpoint), (_, label, row) in best.items():
        seconds = int(parse_ttl(label).total_seconds())
        rows.append(
            _Found(
                kind="cache",
                scope=f"gateway={gateway}, endpoint={endpoint}",
                totals=row,
                change=(
                    f"gateway.toml: cache = true, cache_ttl_s = {seconds} on the route of "
                    f"{endpoint} (Cloudflare: header cf-aig-cache-ttl: {seconds})"
                ),
                evidence=(
                    f"{row['extra_hit_requests']:,} identical requests paid within {label} "
                    f"of the same answer, replayed with a {label} TTL "
                    f"({row['cached_requests']:,} hits now, {row['replay_cached_requests']:,} "
                    f"replayed; {row['lost_hit_requests']:,} lost)"
                ),
            )
        )
    return rows


def _batch_opportunities(answer: WhatIf | None, dimension: str) -> list[_Found]:
    if answer is None:
        return []
    rows = []
    for row in answer.table.iter_rows(named=True):
        if not (row["saving_usd"] or 0) > _NOTHING:
            continue
        value = row[dimension]
        rows.append(
            _Found(
                kind="batch",
                scope=f"{dimension}={value}",
                totals=row,
                change=(
                    f"send {dimension}={value}'s requests through the provider's batch API "
                    "(answers within 24 hours)"
                ),
                evidence=(
                    f"{row['affected_requests']:,} non-interactive requests: "
                    f"${row['current_cost_usd']:,.2f} now, "
                    f"${row['projected_cost_usd']:,.2f} at batch prices"
                ),
            )
        )
    return rows


def _prompt_cache_opportunities(answer: WhatIf | None) -> list[_Found]:
    """Per provider and model, the saving of caching its repeated prompt prefixes."""
    if answer is None or answer.table.is_empty():
        return []
    rows = []
    for row in answer.table.iter_rows(named=True):
        if not (row["saving_usd"] or 0) > _NOTHING:
            continue
        provider, model = row["provider"], row["model"]
        rows.append(
            _Found(
                kind="prompt-cache",
                scope=f"provider={provider}, model={model}",
                totals=row,
                change=_prompt_cache_change(provider, model),
                evidence=(
                    f"{row['affected_requests']:,} requests repeat a prompt prefix of "
                    f"1,024+ tokens without cache reads: ${row['current_cost_usd']:,.2f} now; "
                    f"{row['cache_write_requests']:,} cache writes and "
                    f"{row['cache_read_requests']:,} reads (5-minute TTL): "
                    f"${row['projected_cost_usd']:,.2f}"
                ),
            )
        )
    return rows


def _prompt_cache_change(provider: str, model: str) -> str:
    if family(provider) == "anthropic":
        return (
            f"mark the system prompt and tools of {model}'s requests cacheable (Anthropic "
            'cache_control: {"type": "ephemeral"} on the last system block)'
        )
    return (
        f"send {model}'s system prompt and tools first and byte-identical, with a "
        "prompt_cache_key per prompt (the provider caches such prefixes automatically)"
    )


def opportunities(
    usage: pl.LazyFrame,
    *,
    days: float,
    overrides: pl.DataFrame | None = None,
    cache_replays: Mapping[str, WhatIf] | None = None,
    batch: WhatIf | None = None,
    batch_dimension: str = "",
    top: int | None = 10,
    requests_of: RequestsOfModels | None = None,
    prompt_cache: WhatIf | None = None,
) -> pl.DataFrame:
    """The ``top`` opportunities (``SAVINGS_COLUMNS``), biggest saving per month first.

    ``usage``: hourly rollup rows by ``provider``, ``model``, ``endpoint`` and
    ``cost_source`` with the token columns and ``cost_usd`` (the window's); ``days``: the
    window's length; ``cache_replays``: ``replay_cache_ttl`` answers by route, keyed by
    TTL label (``5m``, ``1h``, ``24h``); ``batch``: ``batch_savings`` by
    ``batch_dimension``; ``requests_of``: the raw requests of some models, for switches
    that cannot be priced by the hour (as in ``switch_models``); ``prompt_cache``:
    ``replay_prompt_cache`` by provider and model.
    """
    if days <= 0:
        raise ModelsError(f"the window must be longer than 0 days, not {days:g}")
    found = [
        *_model_opportunities(usage, overrides, requests_of),
        *_cache_opportunities(cache_replays or {}),
        *_batch_opportunities(batch, batch_dimension),
        *_prompt_cache_opportunities(prompt_cache),
    ]
    scale = _MONTH_DAYS / days
    rows = [
        {
            "kind": item.kind,
            "scope": item.scope,
            "saving_per_month_usd": float(item.totals["saving_usd"]) * scale,
            "saving_usd": float(item.totals["saving_usd"]),
            "requests": int(item.totals["requests"]),
            "current_cost_usd": float(item.totals["current_cost_usd"]),
            "projected_cost_usd": float(item.totals["projected_cost_usd"]),
            "change": item.change,
            "evidence": item.evidence,
        }
        for item in found
    ]
    schema = dict.fromkeys(SAVINGS_COLUMNS, pl.String()) | {
        "saving_per_month_usd": pl.Float64(),
        "saving_usd": pl.Float64(),
        "requests": pl.Int64(),
        "current_cost_usd": pl.Float64(),
        "projected_cost_usd": pl.Float64(),
    }
    # savings equal to a millionth of a dollar are ties (sums in another order differ
    # in the last bits), ordered by kind and scope
    table = pl.DataFrame(rows, schema=schema).sort(
        [pl.col("saving_per_month_usd").round(6), "kind", "scope"],
        descending=[True, False, False],
    )
    return table.head(top) if top is not None else table


def scope_filters(scope: str) -> dict[str, str]:
    """An opportunity's ``scope`` (``a=1, b=2``) as dimension filters (for links)."""
    return dict(part.split("=", 1) for part in scope.split(", ") if "=" in part)
