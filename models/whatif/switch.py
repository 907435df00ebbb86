"""Model switch: the requests a model served, their token counts priced at another model.

``ModelSwitch.parse("gpt-4o=gpt-4o-mini")``: every request in scope that ``gpt-4o``
served, on any provider, priced as ``gpt-4o-mini`` on the same provider, from the same
token counts (input, output, prompt-cache reads and writes) at the same times. Either
side may name its provider (``openai/gpt-4o=azure-openai/gpt-4o``); a target without one
is on the provider of each source request.

Families are the pricing catalogue's providers (``models.pricing.CATALOG_PROVIDERS``:
``openai``, ``anthropic``, ``google``…). Within a family the token counts carry over.
Across families tokenizers differ (the same text is another number of tokens), so the
switch is refused unless a ``cross_family_ratio`` is given: target tokens per source
token, by which every token count is multiplied. aigw does not guess that ratio; measure
it on your own prompts (count a sample with both tokenizers).

Only requests whose current cost was recomputed from tokens (``cost_source`` catalog or
override) are repriced; response-cache hits and refused attempts stay free, and requests
of a model without a price keep their logged cost (a note says how many).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from core.errors import ConfigError, ModelsError
from models.pricing import CATALOG_PROVIDERS, price_table
from models.trends import filter_rollup
from models.whatif.common import (
    RAW_NOTE,
    REPRICED,
    WhatIf,
    as_units,
    needs_raw,
    reprice,
    summed,
)

__all__ = [
    "DEFAULT_SWITCH_BY",
    "ModelSwitch",
    "RequestsOfModels",
    "check_ratio",
    "family",
    "family_of",
    "switch_models",
]

DEFAULT_SWITCH_BY: Final = ("provider", "model")

RequestsOfModels = Callable[[list[str]], pl.LazyFrame]
"""The costed requests of the what-if's window served by these models (raw rows)."""


@dataclass(frozen=True, slots=True)
class ModelSwitch:
    """``source_model`` (on ``source_provider``, any when None) priced as ``target_model``
    (on ``target_provider``, the source request's when None)."""

    source_model: str
    target_model: str
    source_provider: str | None = None
    target_provider: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSwitch:
        """``[provider/]model=[provider/]model``; ``ConfigError`` otherwise."""
        source, sep, target = text.partition("=")
        sides = [_side(part) for part in (source, target)]
        if not sep or not all(model for _, model in sides):
            raise ConfigError(
                f"--model {text!r} must be FROM=TO, e.g. gpt-4o=gpt-4o-mini "
                "(either side may be provider/model)"
            )
        (source_provider, source_model), (target_provider, target_model) = sides
        if (source_provider, source_model) == (target_provider, target_model) or (
            source_model == target_model and target_provider is None
        ):
            raise ConfigError(f"--model {text!r} switches a model to itself")
        return cls(source_model, target_model, source_provider, target_provider)

    def __str__(self) -> str:
        source = "/".join(filter(None, (self.source_provider, self.source_model)))
        target = "/".join(filter(None, (self.target_provider, self.target_model)))
        return f"{source} -> {target}"


def _side(text: str) -> tuple[str | None, str]:
    provider, sep, model = text.strip().partition("/")
    if not sep:
        return None, provider
    return provider.strip() or None, model.strip()


def family(provider: str) -> str:
    """A gateway provider slug's family: the catalogue provider it maps to, else itself."""
    return CATALOG_PROVIDERS.get(provider, provider)


def family_of(providers: pl.Expr) -> pl.Expr:
    """``family`` of each provider slug in ``providers``."""
    return providers.replace(CATALOG_PROVIDERS)


def check_ratio(cross_family_ratio: float | None) -> None:
    """``ConfigError`` unless ``cross_family_ratio`` is None or above 0."""
    if cross_family_ratio is not None and cross_family_ratio <= 0:
        raise ConfigError(f"--cross-family-ratio {cross_family_ratio:g} must be above 0")


def switch_models(
    frame: pl.LazyFrame,
    switches: Sequence[ModelSwitch],
    *,
    overrides: pl.DataFrame | None = None,
    by: Sequence[str] = DEFAULT_SWITCH_BY,
    filters: Mapping[str, str] | None = None,
    cross_family_ratio: float | None = None,
    requests_of: RequestsOfModels | None = None,
) -> WhatIf:
    """What the requests of the switched models in scope would have cost at the targets.

    ``frame``: rollup rows or costed requests (``models.whatif.common.as_units``) with
    ``provider``, ``model``, ``cost_source``, the token columns, ``cost_usd`` and the
    ``by`` and ``filters`` dimensions. Rollup rows are priced by the hour when that is
    exact for the targets' prices (``exact_by_hour``); otherwise, with ``requests_of``,
    the raw requests of the source models are read and priced one by one. ``overrides``:
    the user's price rows. ``ConfigError`` for a switch across families without
    ``cross_family_ratio``; ``ModelsError`` when a target has no price.
    """
    if not switches:
        raise ConfigError("name a model switch: --model FROM=TO")
    check_ratio(cross_family_ratio)
    units = _targeted(filter_rollup(as_units(frame), filters), switches).collect().lazy()
    crossings = _crossings(units)
    if crossings and cross_family_ratio is None:
        provider, target = crossings[0]
        raise ConfigError(
            f"{provider} -> {target} crosses provider families: their tokenizers differ, "
            "so the same prompts are other token counts; pass --cross-family-ratio R "
            "(target tokens per source token, measured on your prompts) to price it anyway"
        )
    targets = units.select("target_provider", "target_model").unique().collect().rows()
    prices = price_table(targets, overrides)
    notes = []
    target_models = [model for _, model in targets]
    if requests_of is not None and needs_raw(frame, prices, target_models):
        answer = switch_models(
            requests_of(sorted({switch.source_model for switch in switches})),
            switches,
            overrides=overrides,
            by=by,
            filters=filters,
            cross_family_ratio=cross_family_ratio,
        )
        return WhatIf(answer.change, answer.table, (*answer.notes, RAW_NOTE))
    ratio = pl.lit(1.0)
    if crossings and cross_family_ratio is not None:
        crossing = pl.col("_family") != pl.col("_target_family")
        ratio = pl.when(crossing).then(cross_family_ratio).otherwise(1.0)
        notes.append(
            f"across provider families every token count is multiplied by {cross_family_ratio:g}"
        )
    repriced = reprice(
        units.filter(pl.col("cost_source").is_in(REPRICED)).with_columns(
            ratio.alias("token_ratio")
        ),
        prices,
    ).collect()
    missing = repriced.filter(pl.col("projected_cost_usd").is_null())
    if not missing.is_empty():
        first = missing.row(0, named=True)
        provider, model = first["target_provider"], first["target_model"]
        raise ModelsError(
            f"no price for {provider}/{model}: add it to the price file ([models] prices), "
            "or name the target's provider (FROM=provider/model)"
        )
    kept = units.filter(~pl.col("cost_source").is_in(REPRICED))
    unpriced = kept.filter(pl.col("cost_source").is_in(["logged", "unknown"]))
    unpriced_requests = unpriced.select(pl.col("requests").sum()).collect().item() or 0
    if unpriced_requests:
        notes.append(
            f"not repriced, their model has no price (logged cost kept): {unpriced_requests:,} "
            "requests"
        )
    rows = pl.concat(
        [
            repriced.lazy().with_columns(pl.col("requests").alias("affected_requests")),
            kept.with_columns(
                pl.col("cost_usd").alias("projected_cost_usd"),
                pl.lit(0, pl.Int64).alias("affected_requests"),
            ),
        ],
        how="diagonal_relaxed",
    ).rename({"cost_usd": "current_cost_usd"})
    change = "model " + ", ".join(str(switch) for switch in switches)
    table = summed(rows, by)
    if table.is_empty():
        notes.append("no request in scope was served by the model(s) switched")
    return WhatIf(change, table, tuple(notes))


def _targeted(units: pl.LazyFrame, switches: Sequence[ModelSwitch]) -> pl.LazyFrame:
    """The rows of a switch's source, with ``target_provider`` and ``target_model`` (the
    first switch that matches a row applies) and both sides' families."""
    provider: pl.Expr = pl.lit(None, pl.String)
    model: pl.Expr = pl.lit(None, pl.String)
    for switch in reversed(switches):
        matches = pl.col("model") == switch.source_model
        if switch.source_provider is not None:
            matches &= pl.col("provider") == switch.source_provider
        target = pl.lit(switch.target_provider) if switch.target_provider else pl.col("provider")
        provider = pl.when(matches).then(target).otherwise(provider)
        model = pl.when(matches).then(pl.lit(switch.target_model)).otherwise(model)
    return (
        units.with_columns(provider.alias("target_provider"), model.alias("target_model"))
        .filter(pl.col("target_model").is_not_null())
        .with_columns(
            family_of(pl.col("provider")).alias("_family"),
            family_of(pl.col("target_provider")).alias("_target_family"),
        )
    )


def _crossings(units: pl.LazyFrame) -> list[tuple[str, str]]:
    """(source, target) as ``provider/model`` of the switches that cross families."""
    crossing = units.filter(pl.col("_family") != pl.col("_target_family"))
    pairs = (
        crossing.select(
            pl.concat_str("provider", "model", separator="/"),
            pl.concat_str("target_provider", "target_model", separator="/"),
        )
        .unique()
        .sort(pl.all())
        .collect()
    )
    return [(str(source), str(target)) for source, target in pairs.rows()]
