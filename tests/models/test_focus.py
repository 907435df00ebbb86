"""FOCUS 1.2 rows from rollups: the mandatory columns and types, hand-computed
values for a tiny rollup, per-tenant rows, and Parquet/CSV files that read back
unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ingest import IngestSettings, open_warehouse, run_ingest
from models.config import ModelsSettings
from models.errors import ModelsError
from models.focus import FOCUS_SCHEMA, focus_rows, write_focus
from models.reports import read_rollup
from models.rollups import refresh_rollups
from tests.conftest import logpush_record, write_ndjson

UTC_US = pl.Datetime("us", "UTC")

# FOCUS 1.2 Mandatory columns, as the brief lists them, with the types we emit
# (Decimal as Float64, Date/Time as UTC datetimes).
MANDATORY = {
    "BilledCost": pl.Float64,
    "BillingAccountId": pl.String,
    "BillingAccountName": pl.String,
    "BillingCurrency": pl.String,
    "BillingPeriodStart": UTC_US,
    "BillingPeriodEnd": UTC_US,
    "ChargeCategory": pl.String,
    "ChargeClass": pl.String,
    "ChargeDescription": pl.String,
    "ChargePeriodStart": UTC_US,
    "ChargePeriodEnd": UTC_US,
    "ContractedCost": pl.Float64,
    "EffectiveCost": pl.Float64,
    "InvoiceIssuerName": pl.String,
    "ListCost": pl.Float64,
    "PricingQuantity": pl.Float64,
    "PricingUnit": pl.String,
    "ProviderName": pl.String,
    "PublisherName": pl.String,
    "ServiceCategory": pl.String,
    "ServiceName": pl.String,
}
EXTENSIONS = {
    "x_Model": pl.String,
    "x_Gateway": pl.String,
    "x_ApiKey": pl.String,
    "x_Requests": pl.Int64,
    "x_InputTokens": pl.Int64,
    "x_OutputTokens": pl.Int64,
    "x_CacheReadTokens": pl.Int64,
    "x_CacheWriteTokens": pl.Int64,
    "x_SavedCost": pl.Float64,
    "x_OverrideCost": pl.Float64,
    "x_UnknownCostRequests": pl.Int64,
}
ROLLUP_SCHEMA: dict[str, Any] = {
    "hour": UTC_US,
    "gateway": pl.String,
    "provider": pl.String,
    "model": pl.String,
    "endpoint": pl.String,
    "api_key": pl.String,
    "team": pl.String,
    "cost_source": pl.String,
    "requests": pl.Int64,
    "errors": pl.Int64,
    "cached_requests": pl.Int64,
    "rate_limited_requests": pl.Int64,
    "unknown_cost_requests": pl.Int64,
    "tokens_in": pl.Int64,
    "tokens_out": pl.Int64,
    "cache_read_tokens": pl.Int64,
    "cache_write_tokens": pl.Int64,
    "cost_usd": pl.Float64,
    "cost_logged": pl.Float64,
    "saved_usd": pl.Float64,
    "duration_ms_sum": pl.Int64,
}
LLAMA = "@cf/meta/llama-3.1-8b-instruct"


def _at(day: int, hour: int, month: int = 4) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def _rollup() -> pl.LazyFrame:
    """Four rollup rows: three openai rows on 30 April (catalogue, user price, a
    response-cache hit), one unpriced Workers AI row on 1 May."""
    rows = [
        # hour, gateway, provider, model, endpoint, api_key, team, source,
        # requests, errors, cached, rate limited, unknown, tokens in/out,
        # cache read/write, cost, logged, saved, duration
        (_at(30, 9), "prod", "openai", "gpt-4o-mini", "chat/completions", "key-a", "search",
         "catalog", 2, 0, 0, 0, 0, 3000, 500, 1000, 0, 0.0012, 0.0013, None, 900),
        (_at(30, 17), "prod", "openai", "gpt-4o-mini", "chat/completions", "key-a", "support",
         "override", 1, 0, 0, 0, 0, 1000, 500, 0, 0, 0.0005, 0.0007, None, 400),
        (_at(30, 17), "prod", "openai", "gpt-4o-mini", "chat/completions", "key-a", "search",
         "free", 1, 0, 1, 0, 0, 1000, 200, 0, 0, 0.0, None, 0.00027, 5),
        (_at(1, 0, month=5), "prod", "workers-ai", LLAMA, "run", "key-b", "search",
         "unknown", 1, 0, 0, 0, 1, 400, 100, 0, 0, None, None, None, 300),
    ]  # fmt: skip
    return pl.LazyFrame(rows, schema=ROLLUP_SCHEMA, orient="row")


def _expected_rows() -> pl.DataFrame:
    """The two FOCUS rows of ``_rollup()``, computed by hand."""
    columns: dict[str, list[Any]] = {
        # 0.0012 + 0.0005 + 0.0 on 30 April; the unpriced request counts 0.
        "BilledCost": [0.0017, 0.0],
        "BillingAccountId": ["acme-ai", "acme-ai"],
        "BillingAccountName": ["Acme AI", "Acme AI"],
        "BillingCurrency": ["USD", "USD"],
        "BillingPeriodStart": [_at(1, 0), _at(1, 0, month=5)],
        "BillingPeriodEnd": [_at(1, 0, month=5), _at(1, 0, month=6)],
        "ChargeCategory": ["Usage", "Usage"],
        "ChargeClass": [None, None],
        "ChargeDescription": [
            "gpt-4o-mini via openai: 4 requests",
            f"{LLAMA} via workers-ai: 1 request",
        ],
        "ChargePeriodStart": [_at(30, 0), _at(1, 0, month=5)],
        "ChargePeriodEnd": [_at(1, 0, month=5), _at(2, 0, month=5)],
        "ContractedCost": [0.0017, 0.0],
        "EffectiveCost": [0.0017, 0.0],
        "InvoiceIssuerName": ["openai", "workers-ai"],
        "ListCost": [0.0017, 0.0],
        # (3000 + 1000 + 1000 in + 500 + 500 + 200 out) / 1M; (400 + 100) / 1M
        "PricingQuantity": [0.0062, 0.0005],
        "PricingUnit": ["1000000 Tokens", "1000000 Tokens"],
        "ProviderName": ["openai", "workers-ai"],
        "PublisherName": ["openai", "meta"],
        "ServiceCategory": ["AI and Machine Learning", "AI and Machine Learning"],
        "ServiceName": ["openai API", "workers-ai API"],
        "ServiceSubcategory": ["Generative AI", "Generative AI"],
        "x_Model": ["gpt-4o-mini", LLAMA],
        "x_Gateway": ["prod", "prod"],
        "x_ApiKey": ["key-a", "key-b"],
        "x_Requests": [4, 1],
        "x_InputTokens": [5000, 400],
        "x_OutputTokens": [1200, 100],
        "x_CacheReadTokens": [1000, 0],
        "x_CacheWriteTokens": [0, 0],
        "x_SavedCost": [0.00027, 0.0],
        "x_OverrideCost": [0.0005, 0.0],
        "x_UnknownCostRequests": [0, 1],
    }
    return pl.DataFrame(columns, schema=FOCUS_SCHEMA)


def test_columns_are_the_focus_mandatory_ones_then_subcategory_and_extensions() -> None:
    """The FOCUS 1.2 Mandatory columns come first with their types, then the others."""
    schema = focus_rows(_rollup()).schema
    assert dict(schema) == {**MANDATORY, "ServiceSubcategory": pl.String, **EXTENSIONS}
    assert schema == FOCUS_SCHEMA


def test_a_tiny_rollup_gives_hand_computed_rows() -> None:
    """Rows per day x gateway x provider x model x key carry the hand-computed sums and periods."""
    rows = focus_rows(_rollup(), billing_account_id="acme-ai", billing_account_name="Acme AI")
    assert_frame_equal(rows, _expected_rows())


def test_rows_are_per_tenant_when_a_tenant_dimension_is_given() -> None:
    """With ``tenant``, rows split by that dimension and carry ``x_Tenant``, not ``x_ApiKey``."""
    rows = focus_rows(_rollup(), tenant="team")
    assert "x_ApiKey" not in rows.columns
    assert_frame_equal(
        rows.select("ChargePeriodStart", "x_Tenant", "x_Requests", "EffectiveCost"),
        pl.DataFrame(
            {
                "ChargePeriodStart": [_at(30, 0), _at(30, 0), _at(1, 0, month=5)],
                "x_Tenant": ["search", "support", "search"],
                "x_Requests": [3, 1, 1],
                "EffectiveCost": [0.0012, 0.0005, 0.0],
            },
            schema_overrides={"ChargePeriodStart": UTC_US},
        ),
    )


def test_a_rollup_without_columns_gives_no_rows_with_the_focus_schema() -> None:
    """A warehouse never rolled up (no rollup columns) exports an empty, typed frame."""
    rows = focus_rows(pl.LazyFrame())
    assert rows.is_empty()
    assert rows.schema == FOCUS_SCHEMA


def test_a_naive_hour_is_taken_as_utc() -> None:
    """Rollup hours without a time zone give the same UTC periods as UTC ones."""
    naive = _rollup().with_columns(pl.col("hour").dt.replace_time_zone(None))
    assert_frame_equal(focus_rows(naive), focus_rows(_rollup()))


def test_a_missing_tenant_column_is_a_models_error() -> None:
    """A tenant that is not a rollup column is named in a ModelsError."""
    with pytest.raises(ModelsError, match="customer"):
        focus_rows(_rollup(), tenant="customer")


def test_an_empty_billing_account_is_a_models_error() -> None:
    """FOCUS forbids a null billing account, so an empty one is refused."""
    with pytest.raises(ModelsError, match="billing account"):
        focus_rows(_rollup(), billing_account_id="")


@pytest.mark.parametrize("name", ["focus.parquet", "focus.csv", "FOCUS.CSV"])
def test_files_read_back_unchanged(tmp_path: Path, name: str) -> None:
    """Parquet and CSV files (suffix in any case) read back equal to the rows written."""
    rows = focus_rows(_rollup())
    path = tmp_path / name
    write_focus(rows, path)
    if path.suffix.lower() == ".parquet":
        back = pl.read_parquet(path)
    else:
        back = pl.read_csv(path, schema=FOCUS_SCHEMA)
    assert_frame_equal(back, rows, check_exact=True)


def test_csv_datetimes_are_iso_utc_with_a_z(tmp_path: Path) -> None:
    """CSV periods read ``2026-04-30T00:00:00Z`` and the null ChargeClass is an empty field."""
    path = tmp_path / "focus.csv"
    write_focus(focus_rows(_rollup()), path)
    header, first = path.read_text().splitlines()[:2]
    values = dict(zip(header.split(","), first.split(","), strict=True))
    assert values["ChargePeriodStart"] == "2026-04-30T00:00:00Z"
    assert values["BillingPeriodEnd"] == "2026-05-01T00:00:00Z"
    assert values["ChargeClass"] == ""


def test_another_suffix_is_a_models_error(tmp_path: Path) -> None:
    """A name ending in neither .parquet nor .csv gets a ModelsError naming both, and no file."""
    path = tmp_path / "focus.json"
    with pytest.raises(ModelsError, match=r"\.parquet or \.csv"):
        write_focus(focus_rows(_rollup()), path)
    assert not path.exists()


def test_a_missing_folder_is_a_models_error(tmp_path: Path) -> None:
    """Writing into a folder that does not exist is a ModelsError, not an OSError."""
    with pytest.raises(ModelsError, match="cannot write FOCUS rows"):
        write_focus(focus_rows(_rollup()), tmp_path / "nope" / "focus.csv")


def test_ingested_logs_export_as_focus_rows(tmp_path: Path, db_path: Path) -> None:
    """Logs ingested and rolled up give one FOCUS row priced from the catalogue."""
    logs = tmp_path / "logs"
    write_ndjson(
        logs / "a.log.gz",
        [logpush_record(Timestamp=1_776_470_400 + second) for second in range(3)],
    )
    run_ingest(IngestSettings(source=str(logs), db_path=db_path))
    with open_warehouse(db_path) as warehouse:
        refresh_rollups(warehouse, ModelsSettings())
        rows = focus_rows(read_rollup(warehouse.con))
    # gpt-4o-mini at $0.15 / $0.60 per 1M tokens: 3 x (1000 x 0.15 + 200 x 0.60) / 1M
    assert_frame_equal(
        rows.select("ChargePeriodStart", "ProviderName", "x_Model", "x_Requests", "EffectiveCost"),
        pl.DataFrame(
            {
                "ChargePeriodStart": [_at(18, 0)],
                "ProviderName": ["openai"],
                "x_Model": ["gpt-4o-mini"],
                "x_Requests": [3],
                "EffectiveCost": [0.00081],
            },
            schema_overrides={"ChargePeriodStart": UTC_US},
        ),
    )
