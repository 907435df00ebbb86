"""Provider bills read into one frame (the three export formats, one-line errors) and
compared with the gateway per day, provider and model, with hand-computed numbers."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from models.errors import InvoiceFileError
from models.invoices import (
    INVOICE_SCHEMA,
    compare_invoices,
    gateway_daily,
    invoice_months,
    invoice_summary,
    parse_invoice,
    read_invoices,
)

FIXTURES = Path(__file__).parent / "invoices"
D1, D2, D3 = date(2026, 4, 18), date(2026, 4, 19), date(2026, 4, 20)


def rows(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    """(day, provider, model, amount rounded to a billionth) per row."""
    return [
        (day, provider, model, round(amount, 9))
        for day, provider, model, amount, _ in frame.iter_rows()
    ]


def test_openai_costs_page_sums_line_items_per_day_and_model() -> None:
    """Line items ``"<model>, <part>"`` add up per UTC day of ``start_time``; the model
    is lower-cased."""
    path = FIXTURES / "openai_costs.json"
    frame = read_invoices([path])
    assert frame.schema == pl.Schema(INVOICE_SCHEMA)
    assert rows(frame) == [
        (D1, "openai", "gpt-4.1", 1.25),
        (D1, "openai", "gpt-4o-mini", 0.014),
        (D2, "openai", "gpt-4o-mini", 0.004),
    ]
    assert set(frame["source_file"]) == {str(path)}


def test_anthropic_cost_report_amounts_are_cents() -> None:
    """``amount`` is a decimal string in cents; a cost without a model keeps a null model."""
    frame = read_invoices([FIXTURES / "anthropic_cost_report.json"])
    assert rows(frame) == [
        (D1, "anthropic", "claude-sonnet-4", 0.0045),
        (D1, "anthropic", None, 0.125),
    ]


def test_csv_rows_add_up_per_day_provider_and_model() -> None:
    frame = read_invoices([FIXTURES / "other_bill.csv"])
    assert rows(frame) == [(D1, "workers-ai", "@cf/acme/house-model-v2", 0.0025)]


def test_a_list_of_pages_reads_every_page() -> None:
    page = (FIXTURES / "openai_costs.json").read_text()
    frame = parse_invoice(f"[{page}, {page}]", "two.json")
    assert round(frame["amount_usd"].sum(), 9) == round(2 * 1.268, 9)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "bad.json: invalid JSON at line 1: Expecting property name"),
        ('{"object": "page"}', "bad.json: not an OpenAI costs page or an Anthropic cost report"),
        (
            '{"data": [{"start_time": 1776470400, "end_time": 1776474000, "results": []}]}',
            "bad.json: bucket 2026-04-18T00:00:00+00:00 is not one UTC day (use bucket_width=1d)",
        ),
        (
            '{"data": [{"start_time": 1776470400, "end_time": 1776556800, "results": '
            '[{"amount": {"value": 1, "currency": "eur"}}]}]}',
            "bad.json: 2026-04-18: amount in eur; only USD is supported",
        ),
        (
            '{"data": [{"starting_at": "2026-04-18T00:00:00Z", "ending_at": '
            '"2026-04-19T00:00:00Z", "results": [{"amount": "x1", "currency": "USD"}]}]}',
            "bad.json: 2026-04-18: amount 'x1' is not a number",
        ),
        ("day,cost\n", "bad.json: not a cost CSV: the header must be date,provider,model"),
        (
            "date,provider,model,amount_usd\n2026-04-18,openai,gpt-4o,1\n18/04/2026,openai,x,1\n",
            "bad.json: line 3: date '18/04/2026' is not YYYY-MM-DD",
        ),
        (
            "date,provider,model,amount_usd\n2026-04-18,openai,gpt-4o,one\n",
            "bad.json: line 2: amount_usd 'one' is not a number",
        ),
    ],
)
def test_a_bad_file_is_one_line_naming_it(text: str, problem: str) -> None:
    with pytest.raises(InvoiceFileError) as caught:
        parse_invoice(text, "bad.json")
    assert str(caught.value).startswith(problem)
    assert "\n" not in str(caught.value)


def test_a_bad_file_among_good_ones_returns_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("date,provider,model,amount_usd\n2026-04-18,openai\n")
    with pytest.raises(InvoiceFileError, match=f"^{bad}: line 2: 2 fields, expected 4$"):
        read_invoices([FIXTURES / "openai_costs.json", bad])
    with pytest.raises(InvoiceFileError, match="cannot read"):
        read_invoices([tmp_path / "missing.json"])


def invoice(*cells: tuple[date, str, str | None, float]) -> pl.DataFrame:
    return pl.DataFrame([(*cell, "bill") for cell in cells], schema=INVOICE_SCHEMA, orient="row")


def gateway(*cells: tuple[date, str, str, int, float, float, int]) -> pl.DataFrame:
    """(day, provider, model, requests, cost_usd, cost_logged, unpriced_requests) rows."""
    names = ["day", "provider", "model", "requests", "cost_usd", "cost_logged"]
    return pl.DataFrame(cells, schema=[*names, "unpriced_requests"], orient="row").with_columns(
        pl.col("requests", "unpriced_requests").cast(pl.Int64)
    )


def causes(cells: pl.DataFrame) -> list[tuple[object, ...]]:
    return [
        (row["day"], row["provider"], row["model"], round(row["difference_usd"], 9), row["cause"])
        for row in cells.iter_rows(named=True)
    ]


def test_each_cell_gets_its_likely_cause() -> None:
    """Matched, bypass, not billed, unpriced and a time-zone shift; another provider's and
    other days' gateway rows are left out."""
    bill = invoice(
        (D1, "openai", "gpt-4o-mini", 1.00),  # matched (0.004 apart < 0.01)
        (D1, "openai", "gpt-4.1", 2.50),  # bypass: no gateway request
        (D1, "openai", "o3", 0.75),  # unpriced: the gateway's cost is logged only
        (D1, "openai", "gpt-4o", 3.00),  # gateway 2.00 on D1 ...
        (D2, "openai", "gpt-4o", 1.00),  # ... and 2.00 on D2: 1.00 moved a day
    )
    logged = gateway(
        (D1, "openai", "gpt-4o-mini", 10, 0.996, 0.9, 0),
        (D1, "openai", "o3", 4, 0.5, 0.5, 4),
        (D1, "openai", "gpt-4o", 5, 2.0, 2.0, 0),
        (D2, "openai", "gpt-4o", 5, 2.0, 2.0, 0),
        (D2, "openai", "gpt-4o-mini", 3, 0.3, 0.3, 0),  # not billed
        (D3, "openai", "gpt-4o-mini", 3, 9.0, 9.0, 0),  # after the bill: left out
        (D1, "anthropic", "claude-sonnet-4", 1, 5.0, 5.0, 0),  # provider not billed: left out
    )
    cells = compare_invoices(bill, logged)
    assert causes(cells) == [
        (D1, "openai", "gpt-4.1", 2.5, "bypass"),
        (D1, "openai", "gpt-4o", 1.0, "time-zone shift"),
        (D2, "openai", "gpt-4o", -1.0, "time-zone shift"),
        (D1, "openai", "gpt-4o-mini", 0.004, "matched"),
        (D2, "openai", "gpt-4o-mini", -0.3, "not billed"),
        (D1, "openai", "o3", 0.25, "unpriced"),
    ]
    months = invoice_months(cells).with_columns(pl.col(pl.Float64).round(9))
    assert months.rows() == [(date(2026, 4, 1), "openai", 8.25, 5.796, 2.454, 1.0)]
    summary = invoice_summary(cells)
    assert round(summary["invoice_usd"], 9) == 8.25
    assert round(summary["cost_usd"], 9) == 5.796
    assert round(summary["matched_usd"], 9) == 1.0
    assert round(summary["difference_usd"], 9) == 2.454
    assert {k: round(v, 9) for k, v in summary["difference_by_cause"].items()} == {
        "bypass": 2.5,
        "matched": 0.004,
        "not billed": -0.3,
        "time-zone shift": 0.0,
        "unpriced": 0.25,
    }


def test_a_uniform_ratio_below_one_is_a_discount() -> None:
    """Two cells billed at half the gateway's cost: batch or credits; a lone odd ratio is
    unexplained."""
    bill = invoice(
        (D1, "anthropic", "claude-sonnet-4", 1.0),
        (D1, "anthropic", "claude-haiku-4", 0.25),
        (D2, "anthropic", "claude-opus-4", 7.0),
    )
    logged = gateway(
        (D1, "anthropic", "claude-sonnet-4", 2, 2.0, 2.0, 0),
        (D1, "anthropic", "claude-haiku-4", 2, 0.5, 0.5, 0),
        (D2, "anthropic", "claude-opus-4", 2, 10.0, 10.0, 0),
    )
    cells = compare_invoices(bill, logged)
    assert causes(cells) == [
        (D1, "anthropic", "claude-haiku-4", -0.25, "discount"),
        (D2, "anthropic", "claude-opus-4", -3.0, "unexplained"),
        (D1, "anthropic", "claude-sonnet-4", -1.0, "discount"),
    ]
    assert cells["invoice_ratio"].to_list() == [0.5, 0.7, 0.5]


def test_gateway_daily_sums_the_rollup_by_day() -> None:
    """Hours fold into UTC days; logged-only and unknown costs count as unpriced requests."""
    rollup = pl.DataFrame(
        {
            "hour": ["2026-04-18T01:00:00Z", "2026-04-18T23:00:00Z", "2026-04-18T05:00:00Z"],
            "provider": ["openai", "openai", "openai"],
            "model": ["GPT-4o", "gpt-4o", "gpt-4o"],
            "cost_source": ["catalog", "logged", "unknown"],
            "requests": [3, 2, 1],
            "cost_usd": [0.5, 0.25, None],
            "cost_logged": [0.0, 0.25, None],
        }
    ).with_columns(pl.col("hour").str.to_datetime(time_zone="UTC"))
    daily = gateway_daily(rollup.lazy())
    assert daily.rows() == [(D1, "openai", "gpt-4o", 6, 0.75, 0.25, 3)]
