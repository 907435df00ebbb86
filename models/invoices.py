"""Provider bills (cost exports) read into one frame, and compared with the gateway.

Three formats, recognised by content:

* OpenAI's organization Costs API (``GET /v1/organization/costs``, ``bucket_width=1d``,
  best with ``group_by=line_item``): a page ``{"object": "page", "data": [buckets]}``
  (or a JSON list of pages), each bucket ``start_time``/``end_time`` (Unix seconds)
  with ``results`` of ``amount: {value, currency}`` and ``line_item`` (``"<model>,
  <part>"``: the model is the text before the first comma);
* Anthropic's Admin API cost report (``GET /v1/organizations/cost_report``,
  ``group_by[]=description``): a page ``{"data": [buckets], "has_more", "next_page"}``
  (or a list of pages), each bucket ``starting_at``/``ending_at`` (RFC 3339) with
  ``results`` of ``amount`` (a decimal string in cents: ``"123.45"`` is 1.2345 USD),
  ``currency`` and ``model``;
* a CSV with the header ``date,provider,model,amount_usd`` (ISO dates, UTC days), for
  every other bill turned into that shape.

Every frame has ``INVOICE_SCHEMA``: ``day`` (UTC), ``provider``, ``model`` (lower
case; null when the export was not grouped by model), ``amount_usd`` (USD, summed per
day, provider, model and file) and ``source_file``. A bad file raises one
``InvoiceFileError`` naming it; nothing of it is returned.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

import duckdb
import polars as pl

from core.warehouse import table_exists
from models.errors import InvoiceFileError

__all__ = [
    "INVOICE_SCHEMA",
    "compare_invoices",
    "gateway_daily",
    "invoice_months",
    "invoice_summary",
    "parse_invoice",
    "read_invoices",
    "read_provider_costs",
]

INVOICE_SCHEMA: Final = {
    "day": pl.Date,
    "provider": pl.String,
    "model": pl.String,
    "amount_usd": pl.Float64,
    "source_file": pl.String,
}
CSV_HEADER: Final = ("date", "provider", "model", "amount_usd")
_DAY: Final = timedelta(days=1)
_UNPRICED: Final = ("logged", "unknown")  # cost_source values without a price of aigw's
_GATEWAY_SCHEMA: Final = pl.Schema(
    {
        "day": pl.Date(),
        "provider": pl.String(),
        "model": pl.String(),
        "requests": pl.Int64(),
        "cost_usd": pl.Float64(),
        "cost_logged": pl.Float64(),
        "unpriced_requests": pl.Int64(),
    }
)


def read_invoices(paths: Sequence[Path]) -> pl.DataFrame:
    """All files' rows in one frame; the first bad file raises (no partial result)."""
    frames = [parse_invoice(_read_text(path), str(path)) for path in paths]
    if not frames:
        return pl.DataFrame(schema=INVOICE_SCHEMA)
    return pl.concat(frames)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InvoiceFileError(f"{path}: cannot read: {error.strerror}", path=str(path)) from error
    except UnicodeDecodeError as error:
        raise InvoiceFileError(f"{path}: not UTF-8 text", path=str(path)) from error


def parse_invoice(text: str, source: str) -> pl.DataFrame:
    """One file's rows (``INVOICE_SCHEMA``), its format recognised from ``text``;
    ``source`` names the file in the rows and in errors."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            document = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as error:
            raise _bad(source, f"invalid JSON at line {error.lineno}: {error.msg}") from error
        rows = list(_json_rows(document, source))
    else:
        rows = list(_csv_rows(text, source))
    frame = pl.DataFrame(
        [(day, provider, model, float(amount)) for day, provider, model, amount in rows],
        schema=list(INVOICE_SCHEMA.items())[:4],
        orient="row",
    )
    return (
        frame.group_by("day", "provider", "model")
        .agg(pl.col("amount_usd").sum())
        .with_columns(pl.lit(source).alias("source_file"))
        .sort("day", "provider", "model", nulls_last=True)
        .cast(INVOICE_SCHEMA)  # type: ignore[arg-type]
    )


_Row = tuple[date, str, str | None, Decimal]


def _bad(source: str, problem: str) -> InvoiceFileError:
    return InvoiceFileError(f"{source}: {problem}", path=source)


def _json_rows(document: Any, source: str) -> Iterator[_Row]:
    pages = document if isinstance(document, list) else [document]
    for page in pages:
        buckets = page.get("data") if isinstance(page, dict) else None
        if not isinstance(buckets, list):
            raise _bad(source, "not an OpenAI costs page or an Anthropic cost report (no data)")
        for bucket in buckets:
            if not isinstance(bucket, dict) or not isinstance(bucket.get("results"), list):
                raise _bad(source, "a bucket without results")
            if "start_time" in bucket:
                yield from _openai_bucket(bucket, source)
            elif "starting_at" in bucket:
                yield from _anthropic_bucket(bucket, source)
            else:
                raise _bad(source, "a bucket without start_time or starting_at")


def _daily(start: datetime, end: datetime, source: str) -> date:
    if end - start != _DAY or start.time() != datetime.min.time():
        raise _bad(source, f"bucket {start.isoformat()} is not one UTC day (use bucket_width=1d)")
    return start.date()


def _openai_bucket(bucket: dict[str, Any], source: str) -> Iterator[_Row]:
    try:
        start = datetime.fromtimestamp(int(bucket["start_time"]), UTC)
        end = datetime.fromtimestamp(int(bucket["end_time"]), UTC)
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise _bad(source, "a bucket with an invalid start_time or end_time") from error
    day = _daily(start, end, source)
    for result in bucket["results"]:
        amount = result.get("amount") if isinstance(result, dict) else None
        if not isinstance(amount, dict) or not isinstance(amount.get("value"), Decimal | int):
            raise _bad(source, f"{day}: a result without amount.value")
        currency = str(amount.get("currency", "usd"))
        if currency.lower() != "usd":
            raise _bad(source, f"{day}: amount in {currency}; only USD is supported")
        line_item = result.get("line_item")
        model = str(line_item).split(",", 1)[0].strip().lower() if line_item else None
        yield day, "openai", model or None, Decimal(amount["value"])


def _anthropic_bucket(bucket: dict[str, Any], source: str) -> Iterator[_Row]:
    try:
        start = datetime.fromisoformat(str(bucket["starting_at"])).astimezone(UTC)
        end = datetime.fromisoformat(str(bucket["ending_at"])).astimezone(UTC)
    except (KeyError, ValueError) as error:
        raise _bad(source, "a bucket with an invalid starting_at or ending_at") from error
    day = _daily(start, end, source)
    for result in bucket["results"]:
        if not isinstance(result, dict) or not isinstance(result.get("amount"), str):
            raise _bad(source, f"{day}: a result without an amount string")
        currency = str(result.get("currency", "USD"))
        if currency.upper() != "USD":
            raise _bad(source, f"{day}: amount in {currency}; only USD is supported")
        try:
            cents = Decimal(result["amount"])
        except InvalidOperation as error:
            raise _bad(source, f"{day}: amount {result['amount']!r} is not a number") from error
        model = result.get("model")
        yield day, "anthropic", str(model).strip().lower() if model else None, cents / 100


def _csv_rows(text: str, source: str) -> Iterator[_Row]:
    reader = csv.reader(io.StringIO(text))
    header = tuple(cell.strip().lower() for cell in next(reader, []))
    if header != CSV_HEADER:
        raise _bad(source, f"not a cost CSV: the header must be {','.join(CSV_HEADER)}")
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(CSV_HEADER):
            raise _bad(source, f"line {line}: {len(cells)} fields, expected 4")
        day_text, provider, model, amount_text = (cell.strip() for cell in cells)
        try:
            day = date.fromisoformat(day_text)
        except ValueError as error:
            raise _bad(source, f"line {line}: date {day_text!r} is not YYYY-MM-DD") from error
        try:
            amount = Decimal(amount_text)
        except InvalidOperation as error:
            raise _bad(
                source, f"line {line}: amount_usd {amount_text!r} is not a number"
            ) from error
        if not amount.is_finite() or not provider:
            raise _bad(source, f"line {line}: needs a provider and a finite amount_usd")
        yield day, provider.lower(), model.lower() or None, amount


def gateway_daily(rollup: pl.LazyFrame) -> pl.DataFrame:
    """The gateway's side per UTC day, provider and model from rollup rows: ``requests``,
    ``cost_usd`` (effective), ``cost_logged`` and ``unpriced_requests`` (cost from the
    gateway's log only, or none: ``cost_source`` logged or unknown). A rollup without
    columns (never built) gives no rows."""
    if not rollup.collect_schema().names():
        return pl.DataFrame(schema=_GATEWAY_SCHEMA)
    return (
        rollup.with_columns(pl.col("provider", "model").str.to_lowercase())
        .group_by(pl.col("hour").dt.date().alias("day"), "provider", "model")
        .agg(
            pl.col("requests").sum(),
            pl.col("cost_usd").sum(),
            pl.col("cost_logged").sum(),
            pl.col("requests")
            .filter(pl.col("cost_source").is_in(_UNPRICED))
            .sum()
            .alias("unpriced_requests"),
        )
        .sort("day", "provider", "model")
        .collect()
    )


def compare_invoices(
    invoice: pl.DataFrame, gateway: pl.DataFrame, *, tolerance_usd: float = 0.01
) -> pl.DataFrame:
    """Invoice against gateway per day, provider and model, with a likely cause.

    Only the invoice's providers and, per provider, its days are compared. Columns:
    ``invoice_usd``, ``cost_usd`` (aigw's effective cost), ``cost_logged``,
    ``difference_usd`` (invoice minus effective cost, USD), ``invoice_ratio`` (invoice over
    effective cost) and ``cause``: ``matched`` (within ``tolerance_usd``), ``bypass``
    (billed with no gateway request), ``not billed`` (gateway cost absent from the bill),
    ``unpriced`` (the gateway's cost is logged only), ``time-zone shift`` (the
    neighbouring day's difference cancels this one), ``discount`` (the same ratio below 1
    in two or more of the provider's cells: batch or credits) or ``unexplained``.
    """
    billed = invoice.group_by("day", "provider", "model").agg(
        pl.col("amount_usd").sum().alias("invoice_usd")
    )
    spans = invoice.group_by("provider").agg(
        pl.col("day").min().alias("first"), pl.col("day").max().alias("last")
    )
    logged = (
        gateway.join(spans, on="provider")
        .filter(pl.col("day").is_between(pl.col("first"), pl.col("last")))
        .drop("first", "last")
    )
    cells = billed.join(
        logged, on=["day", "provider", "model"], how="full", coalesce=True, nulls_equal=True
    ).with_columns(
        pl.col("invoice_usd").fill_null(0.0),
        pl.col("cost_usd").fill_null(0.0),
        pl.col("cost_logged").fill_null(0.0),
        pl.col("requests").fill_null(0),
        pl.col("unpriced_requests").fill_null(0),
    )
    cells = cells.with_columns(
        (pl.col("invoice_usd") - pl.col("cost_usd")).alias("difference_usd"),
        pl.when(pl.col("cost_usd") != 0)
        .then(pl.col("invoice_usd") / pl.col("cost_usd"))
        .otherwise(None)
        .alias("invoice_ratio"),
    ).sort("provider", "model", "day", nulls_last=True)
    causes = _causes(cells.to_dicts(), tolerance_usd)
    return cells.with_columns(pl.Series("cause", causes, dtype=pl.String)).select(
        "day",
        "provider",
        "model",
        "requests",
        "invoice_usd",
        "cost_usd",
        "cost_logged",
        "difference_usd",
        "invoice_ratio",
        "cause",
    )


def _causes(rows: list[dict[str, Any]], tolerance: float) -> list[str]:
    difference = {(r["day"], r["provider"], r["model"]): r["difference_usd"] for r in rows}
    ratios: dict[str, list[float]] = {}
    for row in rows:
        both = row["invoice_ratio"] is not None and row["invoice_usd"] > 0 and row["requests"] > 0
        if both and abs(row["difference_usd"]) > tolerance and row["invoice_ratio"] < 1:
            ratios.setdefault(row["provider"], []).append(row["invoice_ratio"])
    return [_cause(row, difference, ratios, tolerance) for row in rows]


def _cause(
    row: dict[str, Any],
    difference: dict[tuple[Any, ...], float],
    ratios: dict[str, list[float]],
    tolerance: float,
) -> str:
    gap = row["difference_usd"]
    if abs(gap) <= tolerance:
        return "matched"
    if row["invoice_usd"] > 0 and row["requests"] == 0:
        return "bypass"
    if row["invoice_usd"] == 0 and row["cost_usd"] > 0:
        return "not billed"
    if row["unpriced_requests"] > 0:
        return "unpriced"
    for step in (-_DAY, _DAY):
        other = difference.get((row["day"] + step, row["provider"], row["model"]))
        if (
            other is not None
            and other * gap < 0
            and abs(other + gap) <= max(tolerance, abs(gap) / 10)
        ):
            return "time-zone shift"
    ratio = row["invoice_ratio"] or 0.0
    same = [r for r in ratios.get(row["provider"], []) if math.isclose(r, ratio, rel_tol=0.02)]
    if ratio < 1 and len(same) >= 2:
        return "discount"
    return "unexplained"


def invoice_summary(cells: pl.DataFrame) -> dict[str, Any]:
    """Totals of ``compare_invoices``'s cells (USD): the invoice, aigw's effective and
    logged cost, the invoice amount in matched cells, the difference, and the
    difference per cause."""
    if cells.is_empty():
        by_cause: dict[str, float] = {}
    else:
        by_cause = dict(
            cells.group_by("cause").agg(pl.col("difference_usd").sum()).sort("cause").iter_rows()
        )
    return {
        "invoice_usd": float(cells["invoice_usd"].sum()),
        "cost_usd": float(cells["cost_usd"].sum()),
        "cost_logged": float(cells["cost_logged"].sum()),
        "matched_usd": float(cells.filter(pl.col("cause") == "matched")["invoice_usd"].sum()),
        "difference_usd": float(cells["difference_usd"].sum()),
        "difference_by_cause": by_cause,
    }


def read_provider_costs(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every imported bill row (``INVOICE_SCHEMA``); empty before migration v8's table."""
    if not table_exists(con, "provider_costs"):
        return pl.DataFrame(schema=INVOICE_SCHEMA)
    table = con.execute(
        "SELECT day, provider, model, amount_usd, source_file FROM provider_costs"
    ).to_arrow_table()
    return pl.DataFrame(pl.from_arrow(table)).cast(INVOICE_SCHEMA)  # type: ignore[arg-type]


def invoice_months(cells: pl.DataFrame) -> pl.DataFrame:
    """``compare_invoices``'s cells per calendar month (UTC, ``month`` its first day) and
    provider: ``invoice_usd``, ``cost_usd``, ``difference_usd`` and ``matched_usd`` (the
    invoice amount of matched cells), in USD."""
    return (
        cells.group_by(pl.col("day").dt.truncate("1mo").alias("month"), "provider")
        .agg(
            pl.col("invoice_usd").sum(),
            pl.col("cost_usd").sum(),
            pl.col("difference_usd").sum(),
            pl.col("invoice_usd").filter(pl.col("cause") == "matched").sum().alias("matched_usd"),
        )
        .sort("month", "provider")
    )
