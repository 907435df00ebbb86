"""Batch API: non-interactive traffic priced at the providers' batch prices.

Which traffic: requests whose metadata marks them non-interactive (``[whatif]
batch_key`` and ``batch_values``, read through the rollup dimension that carries the
key). At what price, for each request, the first that applies:

1. the user's negotiated price (price file), less the provider's ``batch_discount``;
2. the price catalogue's batch price for the model (genai-prices price variants
   ``processing = batch``; from the date the catalogue starts them, 2026-10-14 for
   OpenAI and Anthropic);
3. the catalogue's standard price less the provider's ``batch_discount`` (default 50%
   for ``openai`` and ``anthropic``, whose batch APIs bill half the standard rates);

and none for a provider without a batch discount and a model without a catalogue batch
price: those requests keep their cost (a note names them). Batch APIs answer within
24 hours, so only traffic that can wait belongs here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import polars as pl

from models.pricing import PRICE_SCHEMA, PRICE_UNITS, price_table, variant_prices
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
from models.whatif.switch import RequestsOfModels

__all__ = ["BATCH", "batch_price_table", "batch_savings"]

BATCH = {"processing": "batch"}  # the catalogue's price-variant context of batch APIs
_UNITS = PRICE_UNITS


def batch_price_table(
    pairs: Iterable[tuple[str, str]],
    discounts: Mapping[str, float],
    overrides: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The batch prices of ``pairs`` (provider slug, model) in the ``models.pricing``
    table shape, ranked as listed in the module: discounted overrides, catalogue batch
    variants, discounted catalogue prices (only for providers in ``discounts``)."""
    pairs = sorted(set(pairs))
    standard = price_table(pairs, overrides)
    discount = pl.col("provider").replace_strict(discounts, default=None, return_dtype=pl.Float64)
    discounted = (
        standard.with_columns(discount.alias("_discount"))
        .filter(pl.col("_discount").is_not_null() & (pl.col("_discount") > 0))
        .with_columns(
            *(pl.col(unit) * (1 - pl.col("_discount")) for unit in _UNITS),
            pl.format("{} less {}%", "price_ref", (pl.col("_discount") * 100).round(1)).alias(
                "price_ref"
            ),
        )
        .drop("_discount")
    )
    return pl.concat(
        [variant_prices(pairs, BATCH), discounted.select(PRICE_SCHEMA.keys())], how="vertical"
    )


def batch_savings(
    frame: pl.LazyFrame,
    dimension: str,
    values: Sequence[str],
    discounts: Mapping[str, float],
    *,
    overrides: pl.DataFrame | None = None,
    by: Sequence[str] | None = None,
    filters: Mapping[str, str] | None = None,
    requests_of: RequestsOfModels | None = None,
) -> WhatIf:
    """What the requests whose ``dimension`` is one of ``values`` would have cost through
    the batch APIs, by ``by`` (default: ``dimension``).

    ``frame``: rollup rows or costed requests with ``provider``, ``model``,
    ``cost_source``, the token columns, ``cost_usd``, ``dimension`` and the ``by`` and
    ``filters`` dimensions. As in ``switch_models``, rollup rows are priced by the hour
    when that is exact, else the raw requests of the models in scope (``requests_of``).
    """
    keys = list(by) if by is not None else [dimension]
    units = (
        filter_rollup(as_units(frame), filters)
        .filter(pl.col(dimension).is_in(list(values)))
        .with_columns(
            pl.col("provider").alias("target_provider"), pl.col("model").alias("target_model")
        )
        .collect()
    )
    pairs = units.select("provider", "model").unique().drop_nulls().rows()
    prices = batch_price_table(pairs, discounts, overrides)
    change = f"batch API for {dimension} in {', '.join(values)}"
    models = sorted({model for _, model in pairs})
    if requests_of is not None and needs_raw(frame, prices, models):
        answer = batch_savings(
            requests_of(models),
            dimension,
            values,
            discounts,
            overrides=overrides,
            by=keys,
            filters=filters,
        )
        return WhatIf(answer.change, answer.table, (*answer.notes, RAW_NOTE))
    repriceable = units.filter(pl.col("cost_source").is_in(REPRICED))
    priced = reprice(repriceable.lazy(), prices).collect()
    batched = priced.filter(pl.col("projected_cost_usd").is_not_null())
    unbatched = priced.filter(pl.col("projected_cost_usd").is_null())
    notes = []
    if not unbatched.is_empty():
        pairs_left = unbatched.select("provider", "model").unique().sort(pl.all()).rows()
        names = ", ".join(f"{provider}/{model}" for provider, model in pairs_left)
        notes.append(f"no batch price known for {names}: add a [whatif.batch_discount] entry")
    rows = pl.concat(
        [
            batched.with_columns(pl.col("requests").alias("affected_requests")),
            unbatched.with_columns(pl.col("cost_usd").alias("projected_cost_usd")),
            units.filter(~pl.col("cost_source").is_in(REPRICED)).with_columns(
                pl.col("cost_usd").alias("projected_cost_usd")
            ),
        ],
        how="diagonal_relaxed",
    ).with_columns(pl.col("affected_requests").fill_null(0))
    table = summed(rows.lazy().rename({"cost_usd": "current_cost_usd"}), keys)
    if table.is_empty():
        notes.append(f"no request in scope has {dimension} in {', '.join(values)}")
    return WhatIf(change, table, tuple(notes))
