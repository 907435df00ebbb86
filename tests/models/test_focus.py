"""FOCUS 1.2 rows per priced meter: FOCUS's rules for the columns we emit (presence,
types, allowed values, ListCost = ListUnitPrice x PricingQuantity), hand-computed rows
for a small set of requests with catalogue and price-file prices, logged costs, and
Parquet/CSV files that read back unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ingest import IngestSettings, open_warehouse, run_ingest
from models.config import ModelsSettings
from models.cost import with_cost
from models.errors import ModelsError
from models.focus import FOCUS_SCHEMA, focus_rows, focus_table, priced_requests, write_focus
from models.pricing import OVERRIDE_RANK, PRICE_SCHEMA
from models.reports import read_rollup
from models.rollups import refresh_rollups
from tests.conftest import logpush_record, write_ndjson

UTC_US = pl.Datetime("us", "UTC")
LLAMA = "@cf/meta/llama-3.1-8b-instruct"
# FOCUS 1.2 columns we emit (Decimal as Float64, Date/Time as UTC datetimes); the
# x_ extension columns follow them.
FOCUS_COLUMNS = {
    "BilledCost": pl.Float64,
    "BillingAccountId": pl.String,
    "BillingAccountName": pl.String,
    "BillingCurrency": pl.String,
    "BillingPeriodStart": UTC_US,
    "BillingPeriodEnd": UTC_US,
    "ChargeCategory": pl.String,
    "ChargeClass": pl.String,
    "ChargeDescription": pl.String,
    "ChargeFrequency": pl.String,
    "ChargePeriodStart": UTC_US,
    "ChargePeriodEnd": UTC_US,
    "ConsumedQuantity": pl.Float64,
    "ConsumedUnit": pl.String,
    "ContractedCost": pl.Float64,
    "ContractedUnitPrice": pl.Float64,
    "EffectiveCost": pl.Float64,
    "InvoiceId": pl.String,
    "InvoiceIssuerName": pl.String,
    "ListCost": pl.Float64,
    "ListUnitPrice": pl.Float64,
    "PricingQuantity": pl.Float64,
    "PricingUnit": pl.String,
    "ProviderName": pl.String,
    "PublisherName": pl.String,
    "ServiceCategory": pl.String,
    "ServiceName": pl.String,
    "ServiceSubcategory": pl.String,
    "SkuId": pl.String,
    "SkuMeter": pl.String,
    "SkuPriceDetails": pl.String,
    "SkuPriceId": pl.String,
    "SubAccountId": pl.String,
    "SubAccountName": pl.String,
    "Tags": pl.String,
}
# FOCUS 1.2 columns that must not be null on a Usage row that is not a correction.
NOT_NULL = [
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
    "BillingPeriodStart", "BillingPeriodEnd", "ChargeCategory", "ChargeDescription",
    "ChargeFrequency", "ChargePeriodStart", "ChargePeriodEnd", "ConsumedQuantity",
    "ConsumedUnit", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost",
    "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory",
    "ServiceName", "ServiceSubcategory", "SkuId", "SkuMeter", "SubAccountId",
]  # fmt: skip
REQUESTS: dict[str, Any] = {
    "ts": UTC_US,
    "gateway": pl.String,
    "provider": pl.String,
    "model": pl.String,
    "endpoint": pl.String,
    "api_key": pl.String,
    "team": pl.String,
    "status_code": pl.Int32,
    "cached": pl.Boolean,
    "rate_limited": pl.Boolean,
    "tokens_in": pl.Int64,
    "tokens_out": pl.Int64,
    "cache_read_tokens": pl.Int64,
    "cache_write_tokens": pl.Int64,
    "cost": pl.Float64,
}


def _at(day: int, hour: int = 0, month: int = 4) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def _price(
    provider: str, model: str, source: str, rates: tuple[float, float, float | None]
) -> tuple[Any, ...]:
    rank = OVERRIDE_RANK if source == "override" else 0
    ref = "prices.toml:1" if source == "override" else model
    return (provider, model, rank, source, ref, None, None, None, None, *rates, None, None)


# USD per 1M tokens: input, output, cache read (cache writes at the input rate).
CATALOG = pl.DataFrame(
    [
        _price("openai", "gpt-x", "catalog", (2.50, 10.0, 1.25)),
        _price("openai", "gpt-c", "catalog", (1.0, 4.0, None)),
    ],
    schema=PRICE_SCHEMA,
    orient="row",
)
PRICES = pl.concat(
    [
        CATALOG,
        pl.DataFrame(
            [
                _price("openai", "gpt-x", "override", (2.00, 8.00, 1.00)),
                _price("acme", "private", "override", (3.0, 6.0, None)),
            ],
            schema=PRICE_SCHEMA,
            orient="row",
        ),
    ]
)


def _requests() -> pl.LazyFrame:
    """Seven requests on 30 April: two gpt-x (price file), one gpt-c (catalogue), one
    acme/private (price file only), a response-cache hit, a logged Workers AI cost, and
    an unpriced model with nothing logged."""
    rows = [
        # ts, gateway, provider, model, endpoint, key, team, status, cached, limited,
        # tokens in/out, cache read/write, logged cost
        (_at(30, 9), "prod", "openai", "gpt-x", "chat", "key-a", "search", 200, False, False,
         1000, 0, 0, 0, 0.009),
        (_at(30, 10), "prod", "openai", "gpt-x", "chat", "key-a", "search", 200, False, False,
         3000, 200, 1000, 500, 0.009),
        (_at(30, 11), "prod", "openai", "gpt-c", "chat", "key-a", "search", 200, False, False,
         2000, 500, 0, 0, None),
        (_at(30, 12), "prod", "acme", "private", "chat", "key-a", "search", 200, False, False,
         1000, 0, 0, 0, None),
        (_at(30, 13), "prod", "openai", "gpt-x", "chat", "key-a", "search", 200, True, False,
         1000, 100, 0, 0, None),
        (_at(30, 14), "prod", "workers-ai", LLAMA, "run", "key-b", "ops", 200, False, False,
         400, 100, 0, 0, 0.0004),
        (_at(30, 15), "prod", "other", "m", "chat", "key-b", "ops", 200, False, False,
         10, 10, 0, 0, None),
    ]  # fmt: skip
    return pl.LazyFrame(rows, schema=REQUESTS, orient="row")


def _rows() -> pl.DataFrame:
    return focus_rows(priced_requests(_requests(), PRICES, CATALOG), dimensions=("team",))


def _meter(rows: pl.DataFrame, model: str, meter: str) -> dict[str, Any]:
    matches = rows.filter((pl.col("x_Model") == model) & (pl.col("SkuMeter") == meter))
    assert matches.height == 1
    return matches.row(0, named=True)


def test_columns_are_focus_columns_with_their_types_then_x_extensions() -> None:
    """Every FOCUS column we emit has its type; the rest are ``x_`` extension columns."""
    rows = _rows()
    assert rows.schema == FOCUS_SCHEMA
    assert {name: rows.schema[name] for name in FOCUS_COLUMNS} == FOCUS_COLUMNS
    assert all(name.startswith("x_") for name in rows.columns if name not in FOCUS_COLUMNS)


def test_columns_hold_focus_allowed_values() -> None:
    """No nulls where FOCUS forbids them; fixed values as FOCUS 1.2 allows them."""
    rows = _rows()
    assert rows.select(pl.col(NOT_NULL).null_count()).row(0) == (0,) * len(NOT_NULL)
    assert set(rows["ChargeCategory"]) == {"Usage"}
    assert set(rows["ChargeFrequency"]) == {"Usage-Based"}
    assert set(rows["BillingCurrency"]) == {"USD"}
    assert rows["ChargeClass"].null_count() == rows["InvoiceId"].null_count() == rows.height
    assert set(rows["PricingUnit"]) == {"1000000 Tokens", "Requests"}
    assert (rows["BilledCost"] == rows["EffectiveCost"]).all()
    assert (rows["ChargePeriodEnd"] > rows["ChargePeriodStart"]).all()


def test_list_cost_is_list_unit_price_times_pricing_quantity_on_every_row() -> None:
    """ListCost = ListUnitPrice x PricingQuantity and ContractedCost = ContractedUnitPrice x
    PricingQuantity within rounding, on every row that has unit prices."""
    priced = _rows().filter(pl.col("ListUnitPrice").is_not_null())
    assert priced.height == 7
    for unit, cost in (("ListUnitPrice", "ListCost"), ("ContractedUnitPrice", "ContractedCost")):
        gap = (pl.col(unit) * pl.col("PricingQuantity") - pl.col(cost)).abs().max()
        assert priced.select(gap).item() < 1e-9


def test_a_price_file_rate_shows_beside_the_list_rate() -> None:
    """gpt-x input: 1,000 + 1,500 uncached tokens at $2.50/M list and $2.00/M in the price
    file: ListCost $0.00625, EffectiveCost $0.005."""
    row = _meter(_rows(), "gpt-x", "input")
    assert (row["ConsumedQuantity"], row["ConsumedUnit"]) == (2500.0, "Tokens")
    assert (row["PricingQuantity"], row["PricingUnit"]) == (0.0025, "1000000 Tokens")
    assert (row["ListUnitPrice"], row["ListCost"]) == (2.5, 0.00625)
    assert (row["ContractedUnitPrice"], row["ContractedCost"]) == (2.0, 0.005)
    assert (row["EffectiveCost"], row["BilledCost"]) == (0.005, 0.005)
    assert row["SkuId"] == "openai/gpt-x"
    assert row["SkuPriceId"] == "prices.toml:1#input"
    assert row["SubAccountId"] == row["SubAccountName"] == "prod"
    assert row["Tags"] == '{"team":"search"}'
    assert (row["x_Requests"], row["x_CostSource"], row["x_ListPriceKnown"]) == (
        2,
        "override",
        True,
    )


def test_each_meter_has_its_own_rate() -> None:
    """gpt-x's cache read (1,000 at $1.25/M list, $1.00/M), cache write (500 at the input
    rates) and output (200 at $10/M list, $8/M) rows."""
    rows = _rows()
    got = {
        meter: (
            _meter(rows, "gpt-x", meter)["ListUnitPrice"],
            _meter(rows, "gpt-x", meter)["ListCost"],
            _meter(rows, "gpt-x", meter)["EffectiveCost"],
        )
        for meter in ("cache read", "cache write", "output")
    }
    assert got == {
        "cache read": (1.25, 0.00125, 0.001),
        "cache write": (2.5, 0.00125, 0.001),
        "output": (10.0, 0.002, 0.0016),
    }


def test_catalogue_prices_are_list_and_contracted_prices() -> None:
    """gpt-c, priced by the catalogue: 2,000 input tokens at $1/M in every price column."""
    row = _meter(_rows(), "gpt-c", "input")
    assert (row["ListUnitPrice"], row["ContractedUnitPrice"]) == (1.0, 1.0)
    assert (row["ListCost"], row["EffectiveCost"]) == (0.002, 0.002)
    assert row["SkuPriceId"] == "gpt-c#input"


def test_a_model_only_the_price_file_prices_repeats_its_rate_as_list_price() -> None:
    """acme/private has no catalogue price: list columns = contracted ($3/M), flagged."""
    row = _meter(_rows(), "private", "input")
    assert (row["ListUnitPrice"], row["ListCost"], row["EffectiveCost"]) == (3.0, 0.003, 0.003)
    assert row["x_ListPriceKnown"] is False


def test_logged_and_unknown_costs_have_no_unit_price() -> None:
    """A logged Workers AI cost ($0.0004, invoiced by Cloudflare) and an unknown cost (0,
    counted) are one "logged cost" row each, priced per request without unit prices."""
    rows = _rows()
    llama = _meter(rows, LLAMA, "logged cost")
    assert (llama["EffectiveCost"], llama["ListCost"], llama["ListUnitPrice"]) == (
        0.0004,
        0.0004,
        None,
    )
    assert (llama["PricingQuantity"], llama["PricingUnit"], llama["ConsumedQuantity"]) == (
        1.0,
        "Requests",
        500.0,
    )
    assert (llama["InvoiceIssuerName"], llama["PublisherName"], llama["SkuPriceId"]) == (
        "Cloudflare",
        "meta",
        None,
    )
    unknown = _meter(rows, "m", "logged cost")
    assert (unknown["EffectiveCost"], unknown["x_UnknownCostRequests"]) == (0.0, 1)


def test_effective_cost_totals_equal_the_requests_costs() -> None:
    """The rows add up to the sum of ``cost_usd`` (what the rollups and ``aigw report
    cost`` sum); the cache hit is free and gives no row."""
    rows = _rows()
    total = with_cost(_requests(), PRICES).select(pl.col("cost_usd").sum()).collect().item()
    # gpt-x 0.002 + 0.0066, gpt-c 0.004, private 0.003, llama 0.0004
    assert round(total, 12) == round(rows["EffectiveCost"].sum(), 12) == 0.016
    assert rows.height == 9
    assert "free" not in rows["x_CostSource"].to_list()
    assert _meter(rows, "gpt-x", "output")["ConsumedQuantity"] == 200.0  # not the hit's 100


def test_an_empty_billing_account_is_a_models_error() -> None:
    """FOCUS forbids a null billing account, so an empty one is refused."""
    with pytest.raises(ModelsError, match="billing account"):
        focus_rows(priced_requests(_requests(), PRICES, CATALOG), billing_account_id="")


def test_a_missing_dimension_is_a_models_error() -> None:
    """A dimension that is not a column of the requests is named in a ModelsError."""
    with pytest.raises(ModelsError, match="customer"):
        focus_rows(priced_requests(_requests(), PRICES, CATALOG), dimensions=("customer",))


@pytest.mark.parametrize("name", ["focus.parquet", "focus.csv", "FOCUS.CSV"])
def test_files_read_back_unchanged(tmp_path: Path, name: str) -> None:
    """Parquet and CSV files (suffix in any case) read back equal to the rows written."""
    rows = _rows()
    path = tmp_path / name
    write_focus(rows, path)
    if path.suffix.lower() == ".parquet":
        back = pl.read_parquet(path)
    else:
        back = pl.read_csv(path, schema=FOCUS_SCHEMA)
    assert_frame_equal(back, rows, check_exact=True)


def test_csv_money_has_no_binary_noise_and_datetimes_end_in_z(tmp_path: Path) -> None:
    """CSV money reads 0.00625 (not 0.006250000000000001), periods ``...T00:00:00Z``."""
    path = tmp_path / "focus.csv"
    write_focus(_rows(), path)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    text = pl.read_csv(path, infer_schema=False)
    row = text.filter((pl.col("x_Model") == "gpt-x") & (pl.col("SkuMeter") == "input")).row(
        0, named=True
    )
    assert (row["ListCost"], row["EffectiveCost"], row["ListUnitPrice"]) == (
        "0.00625",
        "0.005",
        "2.5",
    )
    assert row["ChargePeriodStart"] == "2026-04-30T00:00:00Z"
    assert "ChargeClass" in header and row["ChargeClass"] is None
    assert all(len(value.split(".")[-1]) <= 10 for value in text["EffectiveCost"])


def test_another_suffix_is_a_models_error(tmp_path: Path) -> None:
    """A name ending in neither .parquet nor .csv gets a ModelsError naming both, and no file."""
    path = tmp_path / "focus.json"
    with pytest.raises(ModelsError, match=r"\.parquet or \.csv"):
        write_focus(_rows(), path)
    assert not path.exists()


def test_a_missing_folder_is_a_models_error(tmp_path: Path) -> None:
    """Writing into a folder that does not exist is a ModelsError, not an OSError."""
    with pytest.raises(ModelsError, match="cannot write FOCUS rows"):
        write_focus(_rows(), tmp_path / "nope" / "focus.csv")


def test_ingested_logs_export_per_meter_and_add_up_to_the_rollups(
    tmp_path: Path, db_path: Path
) -> None:
    """Three logged gpt-4o-mini calls on 18 April and one on 19 April: per day an input
    and an output row priced from the catalogue ($0.15 / $0.60 per 1M tokens) whose costs
    add up to the rollup's; ``since`` keeps the 19th only."""
    logs = tmp_path / "logs"
    write_ndjson(
        logs / "a.log.gz",
        [logpush_record(Timestamp=1_776_470_400 + second) for second in (0, 1, 2, 86_400)],
    )
    run_ingest(IngestSettings(source=str(logs), db_path=db_path))
    settings = ModelsSettings()
    with open_warehouse(db_path) as warehouse:
        refresh_rollups(warehouse, settings)
        rows = focus_table(warehouse, settings)
        later = focus_table(warehouse, settings, since=_at(19), until=_at(20))
        rollup_total = read_rollup(warehouse.con).select(pl.col("cost_usd").sum()).collect().item()
    got = rows.select(
        "ChargePeriodStart", "SkuMeter", "ConsumedQuantity", "ListUnitPrice", "EffectiveCost"
    )
    assert got.rows() == [
        (_at(18), "input", 3000.0, 0.15, 0.00045),
        (_at(18), "output", 600.0, 0.6, 0.00036),
        (_at(19), "input", 1000.0, 0.15, 0.00015),
        (_at(19), "output", 200.0, 0.6, 0.00012),
    ]
    assert round(rows["EffectiveCost"].sum(), 12) == round(rollup_total, 12) == 0.00108
    assert_frame_equal(later, rows.tail(2))
    # the kinds of a chat/completions call lead the Tags, then the metadata dimensions
    assert rows["Tags"][0] == (
        '{"request_type":"chat","model_type":"chat","team":"search","user":"ana",'
        '"agent":null,"feature":null}'
    )


def test_with_rates_keeps_each_parts_rate_and_nulls_where_unpriced() -> None:
    """``with_cost(with_rates=True)``: rates in USD per 1M tokens as applied (gpt-x's cache
    writes at the input rate, having none of their own); the cache hit (free) and the
    logged Workers AI cost have none, and without ``with_rates`` there are no rate columns."""
    rates = ("input_rate", "cache_read_rate", "cache_write_rate", "output_rate")
    got = with_cost(_requests(), PRICES, with_rates=True).select(*rates, "cost_source")
    assert got.collect().rows()[1::3] == [
        (2.0, 1.0, 2.0, 8.0, "override"),
        (None, None, None, None, "free"),
    ]
    assert got.collect().row(5) == (None, None, None, None, "logged")
    assert not set(rates) & set(with_cost(_requests(), PRICES).collect_schema().names())
