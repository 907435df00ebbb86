"""FinOps FOCUS 1.2 cost and usage rows from the hourly rollups, and their export.

Contract: ``focus_rows(rollup)`` returns one row per UTC day x gateway x provider
x model x API key (or x tenant, when a tenant dimension is given), with every
FOCUS 1.2 Mandatory column, ``ServiceSubcategory`` and ``x_`` extension columns
(``FOCUS_SCHEMA`` lists them all with their types). Rows are sorted by day,
gateway, provider, model and key, nulls last. Gateway is part of the grain so
that ``x_Gateway`` holds one value per row.

Choices, made once here so that every export agrees:

* **Costs** (USD, ``Float64``: FOCUS asks for Decimal; Float64 keeps Parquet and
  CSV readers simple and its 15 significant digits leave rounding far below a
  cent at any realistic daily spend). ``EffectiveCost`` is the sum of our ``cost_usd``
  (logged, catalogue or user price; response-cache hits, rate-limited and failed
  attempts cost 0). Gateway traffic is pay-as-you-go without commitments or
  amortisation, so ``BilledCost`` equals ``EffectiveCost``. ``ContractedCost``
  is the cost at negotiated prices: where a user price file applies it is the
  effective cost, elsewhere nothing was negotiated and it equals the list cost.
  ``ListCost`` should be the catalogue price; the rollup only holds cost sums,
  so for rows priced by a user override the catalogue price is not known and
  ``ListCost`` falls back to the effective (negotiated) cost. The four costs are
  therefore equal; ``x_OverrideCost`` is the part priced by user prices, so
  ``ListCost - x_OverrideCost`` is the part that is a true list cost. Requests
  whose cost is unknown (no price, nothing logged) count as 0 and are counted
  in ``x_UnknownCostRequests``, never hidden.
* **Pricing**: ``PricingUnit`` is ``"1000000 Tokens"`` (FOCUS UnitFormat writes
  the block size as a number, as in ``"1000 Requests"``; it reads "1M tokens",
  the unit providers publish prices in). ``PricingQuantity`` is input plus
  output tokens in millions. Input and output tokens have different prices, so
  no single unit price applies and the optional unit price columns are left
  out; the split is in ``x_InputTokens`` / ``x_OutputTokens``. Input tokens
  include cache reads and writes (the warehouse convention).
* **Periods** (``Datetime("us", "UTC")``, end exclusive): the charge period is
  the UTC day, the billing period the UTC calendar month holding it.
* **Parties**: ``ProviderName`` and ``InvoiceIssuerName`` are the provider slug
  as the gateway logs it (with your own provider keys, each provider invoices
  its usage). ``PublisherName`` is the model's publisher when the model id
  names one (``@cf/meta/...`` -> ``meta``, ``anthropic/claude...`` ->
  ``anthropic``), else the provider. ``ServiceName`` is ``"<provider> API"``.
  A missing provider or model reads ``"unknown"`` in these columns (FOCUS
  forbids nulls there); the ``x_`` columns keep the null.
* ``ChargeCategory`` is ``"Usage"``, ``ChargeClass`` null (a regular charge, not
  a correction), ``BillingCurrency`` ``"USD"``.
* **Extensions**: ``x_Requests`` and the token sums (tokens) per row;
  ``x_SavedCost`` (USD) is what response-cache hits would have cost, for hits
  on priced models only (they are not part of any cost column).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from models.errors import ModelsError

__all__ = [
    "DEFAULT_BILLING_ACCOUNT_ID",
    "DEFAULT_BILLING_ACCOUNT_NAME",
    "FOCUS_SCHEMA",
    "PRICING_UNIT",
    "focus_rows",
    "write_focus",
]

DEFAULT_BILLING_ACCOUNT_ID: Final = "aigw"
DEFAULT_BILLING_ACCOUNT_NAME: Final = "AI Gateway"
PRICING_UNIT: Final = "1000000 Tokens"
SERVICE_CATEGORY: Final = "AI and Machine Learning"
SERVICE_SUBCATEGORY: Final = "Generative AI"
_UNKNOWN: Final = "unknown"
_PER_MTOK: Final = 1_000_000.0
_UTC: Final = pl.Datetime("us", "UTC")
_CSV_DATETIME: Final = "%Y-%m-%dT%H:%M:%SZ"

_MANDATORY: Final = {
    "BilledCost": pl.Float64(),
    "BillingAccountId": pl.String(),
    "BillingAccountName": pl.String(),
    "BillingCurrency": pl.String(),
    "BillingPeriodStart": _UTC,
    "BillingPeriodEnd": _UTC,
    "ChargeCategory": pl.String(),
    "ChargeClass": pl.String(),
    "ChargeDescription": pl.String(),
    "ChargePeriodStart": _UTC,
    "ChargePeriodEnd": _UTC,
    "ContractedCost": pl.Float64(),
    "EffectiveCost": pl.Float64(),
    "InvoiceIssuerName": pl.String(),
    "ListCost": pl.Float64(),
    "PricingQuantity": pl.Float64(),
    "PricingUnit": pl.String(),
    "ProviderName": pl.String(),
    "PublisherName": pl.String(),
    "ServiceCategory": pl.String(),
    "ServiceName": pl.String(),
    "ServiceSubcategory": pl.String(),
}
_EXTENSIONS_HEAD: Final = {"x_Model": pl.String(), "x_Gateway": pl.String()}
_EXTENSIONS_TAIL: Final = {
    "x_Requests": pl.Int64(),
    "x_InputTokens": pl.Int64(),
    "x_OutputTokens": pl.Int64(),
    "x_CacheReadTokens": pl.Int64(),
    "x_CacheWriteTokens": pl.Int64(),
    "x_SavedCost": pl.Float64(),
    "x_OverrideCost": pl.Float64(),
    "x_UnknownCostRequests": pl.Int64(),
}
FOCUS_SCHEMA: Final = pl.Schema(
    {**_MANDATORY, **_EXTENSIONS_HEAD, "x_ApiKey": pl.String(), **_EXTENSIONS_TAIL}
)
"""Columns and types of ``focus_rows`` by API key; by tenant, ``x_Tenant`` replaces ``x_ApiKey``."""

_ROLLUP_INPUT: Final = {
    "hour": _UTC,
    "gateway": pl.String(),
    "provider": pl.String(),
    "model": pl.String(),
    "cost_source": pl.String(),
    "requests": pl.Int64(),
    "tokens_in": pl.Int64(),
    "tokens_out": pl.Int64(),
    "cache_read_tokens": pl.Int64(),
    "cache_write_tokens": pl.Int64(),
    "cost_usd": pl.Float64(),
    "saved_usd": pl.Float64(),
    "unknown_cost_requests": pl.Int64(),
}


def focus_rows(
    rollup: pl.LazyFrame,
    *,
    tenant: str | None = None,
    billing_account_id: str = DEFAULT_BILLING_ACCOUNT_ID,
    billing_account_name: str = DEFAULT_BILLING_ACCOUNT_NAME,
) -> pl.DataFrame:
    """FOCUS 1.2 rows (schema ``FOCUS_SCHEMA``) for the rollup rows given.

    ``rollup`` is ``rollup_hourly`` as ``models.reports.read_rollup`` returns it
    (``hour`` in UTC; a frame without columns, as for a warehouse never rolled
    up, gives an empty result). With ``tenant`` (a dimension column of the
    rollup, e.g. ``ModelsSettings.tenant``) rows are per tenant and carry
    ``x_Tenant`` instead of ``x_ApiKey``. Raises ``ModelsError`` when a column
    is missing or a billing account value is empty.
    """
    if not billing_account_id or not billing_account_name:
        raise ModelsError("FOCUS export needs a non-empty billing account id and name")
    key, key_column = (tenant, "x_Tenant") if tenant is not None else ("api_key", "x_ApiKey")
    frame = _with_columns_checked(rollup, [*_ROLLUP_INPUT, key])
    day = pl.col("hour").dt.truncate("1d")
    grouped = frame.group_by(
        day.alias("_day"), "gateway", "provider", "model", pl.col(key).alias("_key")
    ).agg(
        pl.col("requests").sum(),
        *(
            pl.col(name).sum()
            for name in ("tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens")
        ),
        pl.col("cost_usd").sum(),
        pl.col("cost_usd").filter(pl.col("cost_source") == "override").sum().alias("_override"),
        pl.col("saved_usd").sum(),
        pl.col("unknown_cost_requests").sum(),
    )
    provider = pl.col("provider").fill_null(_UNKNOWN)
    model = pl.col("model").fill_null(_UNKNOWN)
    cost = pl.col("cost_usd").cast(pl.Float64)
    requests = pl.col("requests").cast(pl.Int64)
    month = pl.col("_day").dt.truncate("1mo")
    result = grouped.select(
        cost.alias("BilledCost"),
        pl.lit(billing_account_id, pl.String).alias("BillingAccountId"),
        pl.lit(billing_account_name, pl.String).alias("BillingAccountName"),
        pl.lit("USD", pl.String).alias("BillingCurrency"),
        month.alias("BillingPeriodStart"),
        month.dt.offset_by("1mo").alias("BillingPeriodEnd"),
        pl.lit("Usage", pl.String).alias("ChargeCategory"),
        pl.lit(None, pl.String).alias("ChargeClass"),
        pl.format(
            "{} via {}: {} {}",
            model,
            provider,
            requests,
            pl.when(requests == 1).then(pl.lit("request")).otherwise(pl.lit("requests")),
        ).alias("ChargeDescription"),
        pl.col("_day").alias("ChargePeriodStart"),
        pl.col("_day").dt.offset_by("1d").alias("ChargePeriodEnd"),
        cost.alias("ContractedCost"),
        cost.alias("EffectiveCost"),
        provider.alias("InvoiceIssuerName"),
        cost.alias("ListCost"),
        (
            (pl.col("tokens_in").fill_null(0) + pl.col("tokens_out").fill_null(0)).cast(pl.Float64)
            / _PER_MTOK
        ).alias("PricingQuantity"),
        pl.lit(PRICING_UNIT, pl.String).alias("PricingUnit"),
        provider.alias("ProviderName"),
        _publisher(provider, model).alias("PublisherName"),
        pl.lit(SERVICE_CATEGORY, pl.String).alias("ServiceCategory"),
        pl.format("{} API", provider).alias("ServiceName"),
        pl.lit(SERVICE_SUBCATEGORY, pl.String).alias("ServiceSubcategory"),
        pl.col("model").alias("x_Model"),
        pl.col("gateway").alias("x_Gateway"),
        pl.col("_key").cast(pl.String).alias(key_column),
        requests.alias("x_Requests"),
        pl.col("tokens_in").cast(pl.Int64).alias("x_InputTokens"),
        pl.col("tokens_out").cast(pl.Int64).alias("x_OutputTokens"),
        pl.col("cache_read_tokens").cast(pl.Int64).alias("x_CacheReadTokens"),
        pl.col("cache_write_tokens").cast(pl.Int64).alias("x_CacheWriteTokens"),
        pl.col("saved_usd").cast(pl.Float64).alias("x_SavedCost"),
        pl.col("_override").cast(pl.Float64).alias("x_OverrideCost"),
        pl.col("unknown_cost_requests").cast(pl.Int64).alias("x_UnknownCostRequests"),
    )
    return result.sort(
        "ChargePeriodStart", "x_Gateway", "ProviderName", "x_Model", key_column, nulls_last=True
    ).collect()


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


def _with_columns_checked(rollup: pl.LazyFrame, needed: list[str]) -> pl.LazyFrame:
    """``rollup`` with ``hour`` in UTC microseconds (a naive ``hour`` is taken as UTC),
    or an empty frame of the needed columns when it has no columns at all."""
    schema = rollup.collect_schema()
    if not schema.names():
        return pl.LazyFrame(schema={name: _ROLLUP_INPUT.get(name, pl.String()) for name in needed})
    missing = [name for name in needed if name not in schema]
    if missing:
        raise ModelsError(f"rollup rows lack the column(s) {', '.join(missing)} for FOCUS rows")
    hour = schema["hour"]
    if not isinstance(hour, pl.Datetime):
        raise ModelsError(f"rollup column hour must be a datetime, not {hour}")
    utc = (
        pl.col("hour").dt.replace_time_zone("UTC")
        if hour.time_zone is None
        else pl.col("hour").dt.convert_time_zone("UTC")
    )
    return rollup.with_columns(utc.cast(_UTC))
