"""FinOps FOCUS 1.2 cost and usage rows, one per priced meter, and their export.

Contract: ``focus_rows(priced)`` takes requests costed by ``focus_requests`` and returns
one row per UTC day x gateway x provider x model x API key x attribution dimensions x
meter x unit price (``FOCUS_SCHEMA``), sorted. ``EffectiveCost`` sums each request's
``cost_usd``, so the totals equal ``aigw report cost`` (which sums the same costs from
the rollups).

Choices, made once here so that every export agrees:

* **Meters** (``METERS``, one table): input (uncached), output, cache read, cache write
  (5-minute writes, and every write a source does not report by TTL) and cache write 1h
  tokens (1-hour writes, at their own rate). Each priced meter row has
  ``ConsumedQuantity`` in ``Tokens``, ``PricingQuantity`` in ``1000000 Tokens`` and its
  unit prices in USD per million tokens. ``ListUnitPrice``/``ListCost`` are the
  catalogue's (genai-prices) rate and cost; ``ContractedUnitPrice``/``ContractedCost``
  and ``EffectiveCost``/``BilledCost`` the rate that priced the request (the price
  file's where it applies, else the catalogue's). A price-file rate for a model the
  catalogue does not price has no list price: the list columns repeat the contracted
  ones (``x_ListPriceKnown`` false).
* **Logged cost**: requests whose cost comes from the gateway (``cost_source``
  ``logged`` or ``custom``) or is unknown have no unit price: one row per group with
  ``SkuMeter`` ``"logged cost"``, null unit prices, ``PricingQuantity`` the request
  count in ``Requests``, and the four costs equal (an unknown cost counts 0 and is
  counted in ``x_UnknownCostRequests``). Free requests (response-cache hits,
  rate-limited and failed attempts) are billed nothing and give no row.
* **Money** (USD, ``Float64``) is rounded to 10 decimals, so CSV shows ``0.0025``,
  not binary noise; sums stay exact to far below a cent.
* **Periods** (``Datetime("us", "UTC")``, end exclusive): the charge period is the UTC
  day, the billing period the UTC calendar month holding it.
* **Parties**: ``ProviderName`` is the provider slug as logged; ``InvoiceIssuerName``
  is ``Cloudflare`` for Workers AI and Unified Billing (``unified``) requests, else the
  provider (with your own keys each provider invoices its usage). ``InvoiceId`` is
  null (unknown). ``SubAccountId``/``SubAccountName`` are the gateway. ``Tags`` is a
  JSON object of the attribution dimensions: the request and model types
  (``KIND_DIMENSIONS``), then the metadata ones (``ModelsSettings.dimensions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import polars as pl

from core.warehouse import Warehouse, read_requests, request_days
from models.config import KIND_DIMENSIONS, ModelsSettings
from models.cost import cache_writes_by_ttl, with_cost
from models.errors import ModelsError
from models.pricing import catalog_prices, load_price_file, price_table

__all__ = [
    "DEFAULT_BILLING_ACCOUNT_ID",
    "DEFAULT_BILLING_ACCOUNT_NAME",
    "FOCUS_SCHEMA",
    "LOGGED_METER",
    "METERS",
    "PRICING_UNIT",
    "Meter",
    "focus_requests",
    "focus_rows",
    "focus_table",
    "write_focus",
]

DEFAULT_BILLING_ACCOUNT_ID: Final = "aigw"
DEFAULT_BILLING_ACCOUNT_NAME: Final = "AI Gateway"
PRICING_UNIT: Final = "1000000 Tokens"
LOGGED_METER: Final = "logged cost"
SERVICE_CATEGORY: Final = "AI and Machine Learning"
SERVICE_SUBCATEGORY: Final = "Generative AI"
_CLOUDFLARE_BILLED: Final = ("workers-ai", "unified")
_UNKNOWN: Final = "unknown"
_PER_MTOK: Final = 1_000_000.0
_DIGITS: Final = 10
_UTC: Final = pl.Datetime("us", "UTC")
_CSV_DATETIME: Final = "%Y-%m-%dT%H:%M:%SZ"
_PRICED: Final = ("catalog", "override")


@dataclass(frozen=True, slots=True)
class Meter:
    """A priced meter: its ``name`` (``SkuMeter``), and the ``part`` of ``with_cost``
    (``<part>_usd``, ``<part>_rate``) that prices it."""

    name: str
    part: str

    def tokens(self) -> pl.Expr:
        """Tokens of this meter in a request (the warehouse's ``tokens_in`` holds cache
        reads and writes; the input meter is the rest)."""
        if self.part == "input":
            rest = (
                pl.col("tokens_in").fill_null(0)
                - pl.col("cache_read_tokens").fill_null(0)
                - pl.col("cache_write_tokens").fill_null(0)
            )
            return rest.clip(lower_bound=0)
        if self.part in {"cache_write", "cache_write_1h"}:
            five_minutes, one_hour = cache_writes_by_ttl()
            return one_hour if self.part == "cache_write_1h" else five_minutes
        column = {"output": "tokens_out"}.get(self.part, f"{self.part}_tokens")
        return pl.col(column).fill_null(0)


METERS: Final = (
    Meter("input", "input"),
    Meter("output", "output"),
    Meter("cache read", "cache_read"),
    Meter("cache write", "cache_write"),
    Meter("cache write 1h", "cache_write_1h"),
)

_STRING = pl.String()
_FLOAT = pl.Float64()
FOCUS_SCHEMA: Final = pl.Schema(
    {
        "BilledCost": _FLOAT,
        "BillingAccountId": _STRING,
        "BillingAccountName": _STRING,
        "BillingCurrency": _STRING,
        "BillingPeriodStart": _UTC,
        "BillingPeriodEnd": _UTC,
        "ChargeCategory": _STRING,
        "ChargeClass": _STRING,
        "ChargeDescription": _STRING,
        "ChargeFrequency": _STRING,
        "ChargePeriodStart": _UTC,
        "ChargePeriodEnd": _UTC,
        "ConsumedQuantity": _FLOAT,
        "ConsumedUnit": _STRING,
        "ContractedCost": _FLOAT,
        "ContractedUnitPrice": _FLOAT,
        "EffectiveCost": _FLOAT,
        "InvoiceId": _STRING,
        "InvoiceIssuerName": _STRING,
        "ListCost": _FLOAT,
        "ListUnitPrice": _FLOAT,
        "PricingQuantity": _FLOAT,
        "PricingUnit": _STRING,
        "ProviderName": _STRING,
        "PublisherName": _STRING,
        "ServiceCategory": _STRING,
        "ServiceName": _STRING,
        "ServiceSubcategory": _STRING,
        "SkuId": _STRING,
        "SkuMeter": _STRING,
        "SkuPriceDetails": _STRING,
        "SkuPriceId": _STRING,
        "SubAccountId": _STRING,
        "SubAccountName": _STRING,
        "Tags": _STRING,
        "x_Model": _STRING,
        "x_Gateway": _STRING,
        "x_ApiKey": _STRING,
        "x_CostSource": _STRING,
        "x_Requests": pl.Int64(),
        "x_ListPriceKnown": pl.Boolean(),
        "x_UnknownCostRequests": pl.Int64(),
    }
)
"""Columns and types of ``focus_rows``: FOCUS 1.2 columns, then ``x_`` extensions."""

_KEYS: Final = ("gateway", "provider", "model", "api_key")


def focus_table(
    warehouse: Warehouse,
    settings: ModelsSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pl.DataFrame:
    """``focus_rows`` for the requests in ``[since, until)``, by attribution dimensions
    (``KIND_DIMENSIONS`` and ``settings.dimensions``), worked one UTC day at a time: rows
    are per day, so this is exact and bounds memory by the busiest day, not the range."""
    dimensions = (*KIND_DIMENSIONS, *settings.dimensions)
    parts = []
    for day in request_days(warehouse.con):
        start, end = day, day + timedelta(days=1)
        if (until is not None and start >= until) or (since is not None and end <= since):
            continue
        start = start if since is None else max(start, since)
        end = end if until is None else min(end, until)
        requests = focus_requests(warehouse, settings, since=start, until=end)
        parts.append(focus_rows(requests, dimensions=dimensions))
    if not parts:
        return focus_rows(focus_requests(warehouse, settings), dimensions=dimensions)
    return pl.concat(parts, how="vertical")


def focus_requests(
    warehouse: Warehouse,
    settings: ModelsSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pl.LazyFrame:
    """Requests in ``[since, until)`` costed twice: ``with_cost`` at the effective prices
    (price file, then catalogue) and ``list_<part>_usd``/``list_<part>_rate`` at the
    catalogue's alone: the input of ``focus_rows``."""
    requests = read_requests(warehouse.con, settings, since=since, until=until)
    pairs = (
        requests.select(pl.col("provider").fill_null(""), "model")
        .unique()
        .drop_nulls()
        .collect()
        .rows()
    )
    overrides = load_price_file(settings.prices) if settings.prices is not None else None
    return priced_requests(requests, price_table(pairs, overrides), catalog_prices(pairs))


def priced_requests(
    requests: pl.LazyFrame, prices: pl.DataFrame, catalog: pl.DataFrame
) -> pl.LazyFrame:
    """``requests`` with ``with_cost``'s columns and rates at ``prices``, plus each meter's
    ``list_<part>_usd``/``list_<part>_rate`` at the ``catalog`` rows alone."""
    if "cache_write_1h_tokens" not in requests.collect_schema():  # all 5-minute writes
        requests = requests.with_columns(pl.lit(None, pl.Int64).alias("cache_write_1h_tokens"))
    effective = with_cost(requests, prices, with_rates=True)
    listed = with_cost(requests, catalog, with_rates=True).select(
        *(
            pl.col(f"{meter.part}{suffix}").alias(f"list_{meter.part}{suffix}")
            for meter in METERS
            for suffix in ("_usd", "_rate")
        )
    )
    return pl.concat([effective, listed], how="horizontal")


def focus_rows(
    priced: pl.LazyFrame,
    *,
    dimensions: tuple[str, ...] = (),
    billing_account_id: str = DEFAULT_BILLING_ACCOUNT_ID,
    billing_account_name: str = DEFAULT_BILLING_ACCOUNT_NAME,
) -> pl.DataFrame:
    """FOCUS 1.2 rows (schema ``FOCUS_SCHEMA``) for requests from ``focus_requests``.

    ``dimensions`` (columns of ``priced``: ``ModelsSettings.dimensions``) go to ``Tags``
    and split rows. Raises ``ModelsError`` when a billing account value is empty or a
    column is missing.
    """
    if not billing_account_id or not billing_account_name:
        raise ModelsError("FOCUS export needs a non-empty billing account id and name")
    missing = [name for name in (*_KEYS, *dimensions) if name not in priced.collect_schema()]
    if missing:
        raise ModelsError(f"requests lack the column(s) {', '.join(missing)} for FOCUS rows")
    base = priced.filter(pl.col("cost_source") != "free").with_columns(
        pl.col("ts").dt.convert_time_zone("UTC").dt.truncate("1d").cast(_UTC).alias("_day"),
        _tags(dimensions).alias("_tags"),
    )
    keys = ["_day", *_KEYS, *dimensions, "_tags"]
    is_priced = pl.col("cost_source").is_in(_PRICED)
    frames = [_meter_frame(base.filter(is_priced), keys, meter) for meter in METERS]
    frames.append(_logged_frame(base.filter(~is_priced), keys))
    grouped = pl.concat(frames, how="vertical").filter(
        (pl.col("_meter") == LOGGED_METER) | (pl.col("_tokens") > 0)
    )
    rows = grouped.group_by(
        *keys, "_meter", "_part", "cost_source", "price_ref", "_rate", "_list_rate"
    ).agg(
        pl.col("_tokens").sum(),
        pl.col("_cost").sum(),
        pl.col("_list_cost").sum(),
        pl.len().cast(pl.Int64).alias("_requests"),
        pl.col("_list_known").all(),
        pl.col("_unknown").sum().cast(pl.Int64),
    )
    result = _columns(rows, billing_account_id, billing_account_name)
    return result.sort(
        "ChargePeriodStart",
        "x_Gateway",
        "ProviderName",
        "x_Model",
        "x_ApiKey",
        "Tags",
        "SkuMeter",
        "SkuPriceId",
        nulls_last=True,
    ).collect()


def _tags(dimensions: tuple[str, ...]) -> pl.Expr:
    if not dimensions:
        return pl.lit("{}", pl.String)
    return pl.struct(*(pl.col(name).cast(pl.String) for name in dimensions)).struct.json_encode()


def _meter_frame(frame: pl.LazyFrame, keys: list[str], meter: Meter) -> pl.LazyFrame:
    """One row per request for ``meter``: its tokens, effective and list cost and rate."""
    rate, list_rate = pl.col(f"{meter.part}_rate"), pl.col(f"list_{meter.part}_rate")
    cost, list_cost = pl.col(f"{meter.part}_usd"), pl.col(f"list_{meter.part}_usd")
    return frame.select(
        *keys,
        pl.lit(meter.name).alias("_meter"),
        pl.lit(meter.part).alias("_part"),
        "cost_source",
        "price_ref",
        rate.alias("_rate"),
        pl.coalesce(list_rate, rate).alias("_list_rate"),
        meter.tokens().cast(pl.Int64).alias("_tokens"),
        cost.fill_null(0.0).alias("_cost"),
        pl.coalesce(list_cost, cost).fill_null(0.0).alias("_list_cost"),
        list_rate.is_not_null().alias("_list_known"),
        pl.lit(0, pl.Int64).alias("_unknown"),
    )


def _logged_frame(frame: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    """One row per request whose cost has no unit price (logged, custom or unknown)."""
    cost = pl.col("cost_usd").fill_null(0.0)
    return frame.select(
        *keys,
        pl.lit(LOGGED_METER).alias("_meter"),
        pl.lit(None, pl.String).alias("_part"),
        "cost_source",
        pl.lit(None, pl.String).alias("price_ref"),
        pl.lit(None, pl.Float64).alias("_rate"),
        pl.lit(None, pl.Float64).alias("_list_rate"),
        (pl.col("tokens_in").fill_null(0) + pl.col("tokens_out").fill_null(0))
        .cast(pl.Int64)
        .alias("_tokens"),
        cost.alias("_cost"),
        cost.alias("_list_cost"),
        pl.lit(False).alias("_list_known"),
        (pl.col("cost_source") == "unknown").cast(pl.Int64).alias("_unknown"),
    )


def _money(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Float64).round(_DIGITS)


def _columns(rows: pl.LazyFrame, account_id: str, account_name: str) -> pl.LazyFrame:
    provider = pl.col("provider").fill_null(_UNKNOWN)
    model = pl.col("model").fill_null(_UNKNOWN)
    logged = pl.col("_meter") == LOGGED_METER
    month = pl.col("_day").dt.truncate("1mo")
    cost = _money(pl.col("_cost"))
    tokens = pl.col("_tokens").cast(pl.Float64)
    sku_price_id = pl.when(logged).then(None).otherwise(pl.format("{}#{}", "price_ref", "_part"))
    details = (
        pl.when(logged)
        .then(pl.format('{{"CostSource": "{}"}}', "cost_source"))
        .otherwise(
            pl.format(
                '{{"TokenType": "{}", "PriceSource": "{}", "PriceRef": "{}"}}',
                "_part",
                "cost_source",
                "price_ref",
            )
        )
    )
    return rows.select(
        cost.alias("BilledCost"),
        pl.lit(account_id, pl.String).alias("BillingAccountId"),
        pl.lit(account_name, pl.String).alias("BillingAccountName"),
        pl.lit("USD", pl.String).alias("BillingCurrency"),
        month.alias("BillingPeriodStart"),
        month.dt.offset_by("1mo").alias("BillingPeriodEnd"),
        pl.lit("Usage", pl.String).alias("ChargeCategory"),
        pl.lit(None, pl.String).alias("ChargeClass"),
        pl.format("{} for {} via {}", "_meter", model, provider).alias("ChargeDescription"),
        pl.lit("Usage-Based", pl.String).alias("ChargeFrequency"),
        pl.col("_day").alias("ChargePeriodStart"),
        pl.col("_day").dt.offset_by("1d").alias("ChargePeriodEnd"),
        tokens.alias("ConsumedQuantity"),
        pl.lit("Tokens", pl.String).alias("ConsumedUnit"),
        cost.alias("ContractedCost"),
        _money(pl.col("_rate")).alias("ContractedUnitPrice"),
        cost.alias("EffectiveCost"),
        pl.lit(None, pl.String).alias("InvoiceId"),
        pl.when(pl.col("provider").is_in(_CLOUDFLARE_BILLED))
        .then(pl.lit("Cloudflare"))
        .otherwise(provider)
        .alias("InvoiceIssuerName"),
        _money(pl.col("_list_cost")).alias("ListCost"),
        _money(pl.col("_list_rate")).alias("ListUnitPrice"),
        pl.when(logged)
        .then(pl.col("_requests").cast(pl.Float64))
        .otherwise(tokens / _PER_MTOK)
        .alias("PricingQuantity"),
        pl.when(logged)
        .then(pl.lit("Requests"))
        .otherwise(pl.lit(PRICING_UNIT))
        .alias("PricingUnit"),
        provider.alias("ProviderName"),
        _publisher(provider, model).alias("PublisherName"),
        pl.lit(SERVICE_CATEGORY, pl.String).alias("ServiceCategory"),
        pl.format("{} API", provider).alias("ServiceName"),
        pl.lit(SERVICE_SUBCATEGORY, pl.String).alias("ServiceSubcategory"),
        pl.format("{}/{}", provider, model).alias("SkuId"),
        pl.col("_meter").alias("SkuMeter"),
        details.alias("SkuPriceDetails"),
        sku_price_id.alias("SkuPriceId"),
        pl.col("gateway").alias("SubAccountId"),
        pl.col("gateway").alias("SubAccountName"),
        pl.col("_tags").alias("Tags"),
        pl.col("model").alias("x_Model"),
        pl.col("gateway").alias("x_Gateway"),
        pl.col("api_key").cast(pl.String).alias("x_ApiKey"),
        pl.col("cost_source").alias("x_CostSource"),
        pl.col("_requests").alias("x_Requests"),
        pl.col("_list_known").alias("x_ListPriceKnown"),
        pl.col("_unknown").alias("x_UnknownCostRequests"),
    )


def write_focus(frame: pl.DataFrame, path: Path) -> None:
    """Write FOCUS rows to ``path``: Parquet for ``.parquet``, CSV for ``.csv``.

    CSV datetimes are ISO 8601 UTC with a ``Z`` (``2026-04-18T00:00:00Z``), nulls
    empty fields. The file is replaced if it exists; the folder must exist.
    Raises ``ModelsError`` for another suffix or when the file cannot be written.
    """
    suffix = path.suffix.lower()
    if suffix not in {".parquet", ".csv"}:
        raise ModelsError(
            f"cannot write FOCUS rows to {path}: the name must end in .parquet or .csv"
        )
    try:
        if suffix == ".parquet":
            frame.write_parquet(path)
        else:
            frame.write_csv(path, datetime_format=_CSV_DATETIME)
    except OSError as err:
        raise ModelsError(f"cannot write FOCUS rows to {path}: {err.strerror or err}") from err


def _publisher(provider: pl.Expr, model: pl.Expr) -> pl.Expr:
    """The publisher named by a model id (``@cf/meta/x`` or ``meta/x``), else the provider."""
    return pl.coalesce(model.str.extract(r"^(?:@[^/]+/)?([^/@]+)/", 1), provider)
