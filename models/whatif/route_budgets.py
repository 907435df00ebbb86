"""The gateway's route budgets (``gateway.toml`` routes' ``budget``) replayed in the same
time-ordered pass as the routes' rate limits (``models.whatif.limits``): which requests a
spent budget would have refused (``action = "reject"``) or sent to a cheaper model
(``"reroute"``), and what that saves.

The rule is the gateway's (``proxy.pipeline``: ``_limits`` then ``_account``; a parity
test holds the replay to them, decision by decision):

1. the route's rate limits come first: a request they refuse never reaches the budget;
2. then the budget: a request is over budget when its subject's spend (``per``: the
   gateway key, the route or a metadata value) in the UTC day or month of its time is at
   least ``usd``; the spend is the cost of the answered requests before it (the effective
   cost; cache hits and refusals cost nothing);
3. over budget, ``reject`` refuses it (429); it has charged the rate limits its estimate
   of input tokens, and that charge stays (the gateway refunds nothing); ``reroute``
   sends it to the reroute model alone, priced there from the same token counts;
4. spend only grows, so from the first request over budget to the period's end, every
   request of the subject is refused or rerouted (what a reroute costs cannot change a
   decision).

What the logs cannot say, and the replay assumes: spend is counted at the request's
time (the gateway adds it once the answer ends, so requests in flight together all see
the spend before them); a period that began before the window counts the spend recorded
in it since its start. Money is USD, times UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl

from core.errors import ConfigError, ModelsError
from models.pricing import price_table
from models.whatif.common import REPRICED, TOKENS, reprice
from models.whatif.switch import check_ratio, family_of

__all__ = [
    "BUDGET_NOTES",
    "BudgetGate",
    "RouteBudget",
    "budget_gate",
    "period_start",
    "priced_reroutes",
    "spent_before",
]

_TRUNCATE: Final = {"day": "1d", "month": "1mo"}
BUDGET_NOTES: Final = (
    "budgets count the effective cost per UTC day or month, added at each request's time "
    "(the gateway adds it when the answer ends: requests in flight together are not modelled)",
    "rerouted requests are priced at the reroute model from the same token counts; a "
    "response-cache hit rerouted stays free (the gateway would look up the reroute model's "
    "entry, which the logs cannot show)",
    "spend is the warehouse's effective cost (aigw's prices): if the gateway's price_file "
    "differs, it crosses the budget at another request",
)


@dataclass(frozen=True, slots=True)
class RouteBudget:
    """Route ``route``'s budget: ``usd`` per UTC ``period`` (``day`` or ``month``) per
    subject ``per`` (``key``, ``route`` or ``metadata:<name>``); over it, ``reject``, or
    ``reroute`` to ``reroute`` (``provider/model`` as the gateway names it), priced as
    provider ``price_as`` (its ``catalog_name``; default: the reroute's provider)."""

    route: str
    usd: float
    period: str = "day"
    per: str = "key"
    action: str = "reject"
    reroute: str | None = None
    price_as: str | None = None

    def __str__(self) -> str:
        then = f", then reroute to {self.reroute}" if self.action == "reroute" else ""
        return f"{self.route} (${self.usd:,g} a {self.period} per {self.per}{then})"

    @property
    def target(self) -> tuple[str, str]:
        """The reroute's (pricing provider, model)."""
        provider, _, model = str(self.reroute).partition("/")
        return self.price_as or provider, model


def period_start(period: str) -> pl.Expr:
    """The start (UTC) of the budget period holding each request's ``ts``."""
    return pl.col("ts").dt.convert_time_zone("UTC").dt.truncate(_TRUNCATE[period])


@dataclass(frozen=True, slots=True)
class BudgetGate:
    """One route's budget over its requests in time order: per request the code of its
    (subject, period) and its cost; per code the spend before the first request (USD),
    the subject and the period start (unix seconds). The replay's loop
    (``models.whatif.limits_kernel``) decides and spends."""

    budget: RouteBudget
    code: np.ndarray
    cost: np.ndarray
    spent: np.ndarray
    subjects: list[str]
    starts: np.ndarray


def budget_gate(
    frame: pl.DataFrame, who: pl.Series, budget: RouteBudget, spent: pl.DataFrame | None
) -> BudgetGate:
    """The gate of ``budget`` over ``frame`` (one route's requests in time order: ``ts``,
    ``cost_usd`` without nulls) whose subjects are ``who``; ``spent``: the spend before
    (``route``, ``subject``, ``period``, ``spent_usd``), or None."""
    period = frame.select(period_start(budget.period)).to_series()
    keys = pl.DataFrame({"subject": who, "period": period})
    distinct = keys.unique(maintain_order=True).with_row_index("code")
    if spent is not None:
        before = spent.filter(pl.col("route") == budget.route).select(
            "subject", "period", "spent_usd"
        )
        distinct = distinct.join(before, on=["subject", "period"], how="left", coalesce=True)
    else:
        distinct = distinct.with_columns(pl.lit(None, pl.Float64).alias("spent_usd"))
    codes = keys.join(distinct, on=["subject", "period"], how="left", maintain_order="left")
    distinct = distinct.sort("code")
    return BudgetGate(
        budget=budget,
        code=codes["code"].cast(pl.Int64).to_numpy(),
        cost=frame["cost_usd"].cast(pl.Float64).to_numpy(),
        spent=distinct["spent_usd"].fill_null(0.0).to_numpy(),
        subjects=distinct["subject"].to_list(),
        starts=(distinct["period"].dt.epoch("us").cast(pl.Float64) / 1e6).to_numpy(),
    )


def spent_before(
    earlier: pl.LazyFrame, budgets: Sequence[RouteBudget], subject_of: dict[str, str]
) -> pl.DataFrame:
    """The spend recorded in ``earlier`` (costed requests with ``route``, ``ts``,
    ``cost_usd`` and each budget's subject column, named by ``subject_of[per]``) per
    route, ``subject`` and ``period`` start, for the routes of ``budgets``."""
    parts = [
        earlier.filter(pl.col("route") == budget.route).select(
            pl.col("route"),
            pl.col(subject_of[budget.per]).cast(pl.String).fill_null("-").alias("subject"),
            period_start(budget.period).alias("period"),
            pl.col("cost_usd").fill_null(0.0),
        )
        for budget in budgets
    ]
    if not parts:
        return pl.DataFrame(
            schema={"route": pl.String, "subject": pl.String, "period": pl.Datetime("us", "UTC")}
        ).with_columns(pl.lit(None, pl.Float64).alias("spent_usd"))
    return (
        pl.concat(parts)
        .group_by("route", "subject", "period")
        .agg(pl.col("cost_usd").sum().alias("spent_usd"))
        .collect()
    )


def priced_reroutes(
    rerouted: pl.DataFrame,
    budgets: Sequence[RouteBudget],
    *,
    overrides: pl.DataFrame | None = None,
    cross_family_ratio: float | None = None,
    priced_as: Mapping[str, str] | None = None,
) -> tuple[pl.DataFrame, int]:
    """``rerouted`` (requests: ``ts``, ``route``, ``provider``, ``cost_source``, the token
    columns, ``cost_usd``) with ``projected_cost_usd``: priced at their route's reroute
    model as the model switch prices (``models.whatif.switch``: the same token counts,
    refused across provider families without ``cross_family_ratio``; only ``REPRICED``
    requests: the others keep their cost), and how many kept their cost.
    ``priced_as``: the gateway's provider names -> the catalogue provider each is priced
    as (its ``catalog_name``), so that a logged ``backup`` priced as ``openai`` is in
    OpenAI's family. ``ConfigError`` for a crossing without a ratio; ``ModelsError`` for a
    reroute model without a price."""
    check_ratio(cross_family_ratio)
    routes = pl.DataFrame(
        {
            "route": [budget.route for budget in budgets],
            "target_provider": [budget.target[0] for budget in budgets],
            "target_model": [budget.target[1] for budget in budgets],
            "reroute": [str(budget.reroute) for budget in budgets],
        },
        schema={
            "route": pl.String,
            "target_provider": pl.String,
            "target_model": pl.String,
            "reroute": pl.String,
        },
    )
    frame = (
        rerouted.with_columns(pl.col("route").cast(pl.String))  # (a reader may give an enum)
        .with_row_index("_at")
        .join(routes, on="route", how="left", maintain_order="left")
    )
    source = pl.col("provider").replace(dict(priced_as or {}))
    other = family_of(source) != family_of(pl.col("target_provider"))
    frame = frame.with_columns(other.fill_null(True).alias("_crossing"))
    priced = frame.filter(pl.col("cost_source").is_in(REPRICED))
    crossings = priced.filter(pl.col("_crossing"))
    if not crossings.is_empty() and cross_family_ratio is None:
        first = crossings.row(0, named=True)
        raise ConfigError(
            f"route {first['route']}'s budget reroutes {first['provider']}/{first['model']} "
            f"to {first['reroute']}, across provider "
            "families: their tokenizers differ, so the same prompts are other token counts; "
            "pass --cross-family-ratio R (target tokens per source token, measured on your "
            "prompts) to price it anyway"
        )
    if priced.is_empty():
        return rerouted.with_columns(pl.col("cost_usd").alias("projected_cost_usd")), len(frame)
    ratio = pl.when(pl.col("_crossing")).then(cross_family_ratio or 1.0).otherwise(1.0)
    targets = priced.select("target_provider", "target_model").unique().rows()
    columns = ["_at", "ts", "target_provider", "target_model"]
    columns += [name for name in TOKENS if name in priced.columns]
    repriced = (
        reprice(
            priced.select(*columns, ratio.alias("token_ratio")).lazy(),
            price_table(targets, overrides),
        )
        .select("_at", "projected_cost_usd")
        .collect()
    )
    missing = repriced.filter(pl.col("projected_cost_usd").is_null())
    if not missing.is_empty():
        first = priced.filter(pl.col("_at") == missing["_at"][0]).row(0, named=True)
        target = f"{first['target_provider']}/{first['target_model']}"
        raise ModelsError(
            f"no price for {target} (route {first['route']}'s reroute to {first['reroute']}): "
            "add it to the price file ([models] prices)"
        )
    answer = frame.join(repriced, on="_at", how="left", maintain_order="left").with_columns(
        pl.coalesce("projected_cost_usd", "cost_usd").alias("projected_cost_usd")
    )
    kept = rerouted.height - repriced.height
    return answer.drop("_at", "target_provider", "target_model", "reroute", "_crossing"), kept
