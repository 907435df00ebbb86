"""``aigw whatif …`` and ``aigw report savings``: replays of the recorded traffic under a
change, and the changes that would have saved the most."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer

from app.console import (
    ConfigOption,
    DbOption,
    FormatOption,
    VerboseOption,
    check_format,
    err,
    out,
    parse_time,
    user_errors,
    write_json_document,
    write_rows,
)
from app.display import usd_fine
from app.reports_cli import ColumnsOption, SinceOption, UntilOption, _filters, _split
from app.service import (
    DEFAULT_DAYS,
    Savings,
    savings_report,
    whatif_batch,
    whatif_budgets,
    whatif_cache,
    whatif_limits,
    whatif_prompt_cache,
    whatif_switch,
)
from app.settings import Settings, load_settings
from app.tables import exact_dicts
from core.errors import ConfigError
from ingest import DEFAULT_DB_PATH
from models import ModelSwitch, WhatIf, parse_ttl, scope_filters

__all__ = ["savings_command", "whatif_command"]

_USERS_SHOWN = 20  # rows of a disruption table in a terminal
# The replays' extra tables shown in a terminal (all of them are in --format json).
_TABLES_SHOWN = {
    "users": "refused requests per user (the disruption):",
    "windows": "refused (and rerouted) requests per limit, subject and window:",
}

DaysOption = Annotated[
    int,
    typer.Option(
        "--days", help="Without --since: this many days up to --until (default: the newest data)."
    ),
]


def _settings(config: Path | None) -> Settings:
    return load_settings(config, os.environ)


def whatif_command(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="Price a model's requests at another: FROM=TO, e.g. gpt-4o=gpt-4o-mini "
            "(either side may be provider/model; repeatable).",
        ),
    ] = None,
    cross_family_ratio: Annotated[
        float | None,
        typer.Option(
            help="Allow a --model switch (or a --limits budget's reroute) across provider "
            "families: target tokens per source token (tokenizers differ; measure it on "
            "your prompts)."
        ),
    ] = None,
    cache_ttl: Annotated[
        str | None,
        typer.Option(help="Replay the response cache with this TTL: 5m, 1h, 24h (or 90s, 2d)."),
    ] = None,
    per_key: Annotated[
        bool, typer.Option(help="--cache-ttl: one cache per gateway key, not per gateway.")
    ] = False,
    batch: Annotated[
        bool,
        typer.Option(
            "--batch", help="Price non-interactive traffic ([whatif] batch_key) at batch prices."
        ),
    ] = False,
    prompt_cache: Annotated[
        bool,
        typer.Option(
            "--prompt-cache",
            help="Price requests that repeat a large prompt prefix (system prompt, tools) "
            "without cache reads as if the provider had cached it (aigw gateway logs only).",
        ),
    ] = False,
    budgets: Annotated[
        Path | None,
        typer.Option(help="Replay this budgets.toml's budgets as spend caps (refuse when spent)."),
    ] = None,
    limits: Annotated[
        Path | None,
        typer.Option(
            help="Replay this gateway.toml's routes' rate_limits and budgets (refuse past "
            "the limit; refuse or reroute once a budget is spent)."
        ),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    days: DaysOption = DEFAULT_DAYS,
    where: Annotated[
        list[str] | None, typer.Option(help="Filter dimension=value (repeatable).")
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            help="Dimensions of the rows, comma-separated (default: provider,model for "
            "--model and --prompt-cache, gateway,endpoint for --cache-ttl, the batch "
            "dimension for --batch)."
        ),
    ] = None,
    db: DbOption = DEFAULT_DB_PATH,
    config: ConfigOption = None,
    output_format: FormatOption = "table",
    columns: ColumnsOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Replay a period's requests under one change and report current cost, projected
    cost, saving and the requests affected."""
    chosen = check_format(output_format)
    with user_errors(verbose):
        changes = [
            bool(model),
            cache_ttl is not None,
            batch,
            prompt_cache,
            budgets is not None,
            limits is not None,
        ]
        if sum(changes) != 1:
            raise ConfigError(
                "name one change: --model, --cache-ttl, --batch, --prompt-cache, --budgets "
                "or --limits"
            )
        settings = _settings(config)
        target = settings.warehouse_for(db)
        first, end = parse_time(since, "--since"), parse_time(until, "--until")
        keys = _split(by) or None
        filters = _filters(where)
        if (budgets is not None or limits is not None) and (filters or keys):
            raise ConfigError("--budgets and --limits replay their own scopes: drop --where, --by")
        extra: dict[str, pl.DataFrame] = {}
        if model:
            answer = whatif_switch(
                target,
                settings.models,
                [ModelSwitch.parse(text) for text in model],
                since=first,
                until=end,
                days=days,
                filters=filters,
                by=keys,
                cross_family_ratio=cross_family_ratio,
            )
        elif cache_ttl is not None:
            answer = whatif_cache(
                target,
                settings.models,
                _ttl(cache_ttl),
                since=first,
                until=end,
                days=days,
                filters=filters,
                by=keys,
                per_key=per_key,
            )
        elif batch:
            answer = whatif_batch(
                target,
                settings.models,
                settings.whatif,
                since=first,
                until=end,
                days=days,
                filters=filters,
                by=keys,
            )
        elif limits is not None:
            limited = whatif_limits(
                target,
                settings.models,
                limits,
                since=first,
                until=end,
                days=days,
                cross_family_ratio=cross_family_ratio,
            )
            answer = limited.whatif
            extra = {"users": limited.users, "windows": limited.windows}
        elif prompt_cache:
            answer = whatif_prompt_cache(
                target,
                settings.models,
                since=first,
                until=end,
                days=days,
                filters=filters,
                by=keys,
            )
        elif budgets is not None:
            replay = whatif_budgets(
                target, settings.models, budgets, since=first, until=end, days=days
            )
            answer = replay.whatif
            extra = {"users": replay.users, "hours": replay.hours}
        _write(answer, extra, chosen, _split(columns))
        if answer.table.is_empty():
            err.print("no requests in scope: nothing to replay", markup=False)


def _ttl(text: str) -> timedelta:
    try:
        return parse_ttl(text)
    except ValueError:
        raise ConfigError(
            f"--cache-ttl {text!r} is not a duration: use 5m, 1h, 24h (or 90s, 2d)"
        ) from None


def _write(answer: WhatIf, extra: dict[str, pl.DataFrame], chosen: str, pick: list[str]) -> None:
    """JSON: one document (change, window, totals, rows, notes, and the budgets' users and
    hours); CSV: the rows, notes on stderr; a table: the change, the rows, the totals and
    the notes."""
    totals = answer.totals()
    if chosen == "json":
        since, until = answer.window or (None, None)
        document: dict[str, Any] = {
            "change": answer.change,
            "since": since,
            "until": until,
            "totals": exact_dicts(pl.DataFrame([totals]))[0] if totals else {},
            "rows": exact_dicts(answer.table),
            "notes": list(answer.notes),
        }
        document.update({name: exact_dicts(frame) for name, frame in extra.items()})
        write_json_document(document)
        return
    if chosen == "csv":
        write_rows(answer.table.columns, answer.table.rows(), chosen, pick=pick)
        for note in answer.notes:
            err.print(f"note: {note}", markup=False)
        return
    span = ""
    if answer.window is not None:
        since, until = answer.window
        span = f", {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC"
    out.print(f"what if: {answer.change}{span}", markup=False)
    write_rows(answer.table.columns, answer.table.rows(), chosen, pick=pick)
    if totals:
        out.print(
            f"total: {usd_fine(totals['current_cost_usd'])} now, "
            f"{usd_fine(totals['projected_cost_usd'])} with the change, "
            f"saving {usd_fine(totals['saving_usd'])} "
            f"({int(totals['affected_requests']):,} of {int(totals['requests']):,} requests "
            "affected)",
            markup=False,
        )
    for name, title in _TABLES_SHOWN.items():
        frame = extra.get(name)
        if frame is None or frame.is_empty():
            continue
        out.print(title, markup=False)
        shown = frame.head(_USERS_SHOWN)
        write_rows(shown.columns, shown.rows(), chosen)
        if frame.height > _USERS_SHOWN:
            out.print(
                f"… {frame.height - _USERS_SHOWN:,} more; --format json lists them all "
                "(and a budget's refused hours)",
                markup=False,
            )
    for note in answer.notes:
        out.print(f"note: {note}", markup=False)


def savings_command(
    since: SinceOption = None,
    until: UntilOption = None,
    days: DaysOption = DEFAULT_DAYS,
    top: Annotated[int, typer.Option(help="How many opportunities to list.")] = 10,
    db: DbOption = DEFAULT_DB_PATH,
    config: ConfigOption = None,
    output_format: FormatOption = "table",
    verbose: VerboseOption = False,
) -> None:
    """The top savings opportunities of the last 30 days (or --since to --until): model
    switches, cache TTLs, batch APIs and provider prompt caching, each with its saving per
    month, evidence and the one change to make."""
    chosen = check_format(output_format)
    with user_errors(verbose):
        settings = _settings(config)
        report = savings_report(
            settings.warehouse_for(db),
            settings.models,
            settings.whatif,
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
            days=days,
            top=top,
        )
        _write_savings(report, chosen)


def _write_savings(report: Savings, chosen: str) -> None:
    table = report.table
    if chosen == "json":
        rows = exact_dicts(table)
        for row in rows:
            row["filters"] = scope_filters(row["scope"])
        write_json_document(
            {"since": report.since, "until": report.until, "rows": rows, "notes": report.notes}
        )
        return
    if chosen == "csv":
        write_rows(table.columns, table.rows(), chosen)
    else:
        if report.since is not None and report.until is not None:
            out.print(
                f"savings opportunities, {report.since:%Y-%m-%d %H:%M} to "
                f"{report.until:%Y-%m-%d %H:%M} UTC",
                markup=False,
            )
        shown = (
            table.select(
                pl.int_range(1, pl.len() + 1).alias("#"),
                "kind",
                "scope",
                "saving_per_month_usd",
                "requests",
                "current_cost_usd",
                "projected_cost_usd",
            )
            if not table.is_empty()
            else table
        )
        write_rows(shown.columns, shown.rows(), chosen)
        for number, row in enumerate(table.iter_rows(named=True), start=1):
            out.print(f"{number}. change: {row['change']}", markup=False)
            out.print(f"   evidence: {row['evidence']}", markup=False)
    for note in report.notes:
        err.print(f"note: {note}", markup=False)
    if table.is_empty():
        err.print("no savings found in the window", markup=False)
