"""``aigw alerts run``: evaluate budgets and anomaly rules once, or every N minutes.

Exit codes (one run): 0 evaluated and every owed delivery made; 1 some deliveries
failed and will be retried by the next run; 2 could not run (bad budgets file,
warehouse missing or locked past --wait); 4 the data is stale: the newest request is
older than --stale-after hours (the alerts were still evaluated and sent).
"""

from __future__ import annotations

import re
import signal
import threading
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Annotated, Final

import typer

from alerts import AlertsRunResult, load_alerts_config, run_alerts
from app.console import (
    EXIT_ERROR,
    EXIT_PARTIAL,
    EXIT_STALE,
    ConfigOption,
    DbOption,
    VerboseOption,
    err,
    out,
    parse_time,
    user_errors,
)
from app.reports_cli import resolve_settings, warehouse
from core.errors import AigwError, ConfigError
from core.settings import DEFAULT_BUDGETS
from ingest import DEFAULT_DB_PATH

__all__ = ["alerts_app"]

alerts_app = typer.Typer(
    help="Budget and anomaly alerts.", no_args_is_help=True, rich_markup_mode=None
)

_DURATION: Final = re.compile(r"^(\d+)\s*([smh])$")


def parse_every(value: str) -> float:
    """Seconds from ``30s``, ``5m`` or ``1h``; ConfigError otherwise."""
    match = _DURATION.match(value.strip())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"--every {value!r} must look like 30s, 5m or 1h")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


@alerts_app.command("run")
def alerts_run(
    budgets: Annotated[
        Path, typer.Option(envvar="AIGW_BUDGETS", help="Budgets and rules (TOML).")
    ] = DEFAULT_BUDGETS,
    every: Annotated[
        str | None, typer.Option(help="Repeat every 30s, 5m, 1h… until stopped.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Print what would fire; send and record nothing.")
    ] = False,
    now: Annotated[
        str | None, typer.Option(help="Evaluate as of this time (default: now).")
    ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for another writer.")] = 30.0,
    stale_after: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Hours: newer data than this is expected; older is reported and exits 4 "
            "(0: never; default: stale_after_hours in the budgets file, else 24).",
        ),
    ] = None,
    db: DbOption = DEFAULT_DB_PATH,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Evaluate budgets and anomaly rules; send each new alert once to its channels.

    The summary line counts the alerts that hold (their condition is true now, sent
    before or not), the new ones among them, and the deliveries made and failed.
    """
    with user_errors(verbose):
        settings = resolve_settings(config)
        alerts_config = load_alerts_config(budgets, dimensions=settings.all_dimensions)
        if stale_after is not None:
            alerts_config = replace(alerts_config, stale_after_hours=stale_after)
        interval = parse_every(every) if every else None
        moment = parse_time(now, "--now")
        target = warehouse(db, config)
    if interval is None:
        with user_errors(verbose):
            result = run_alerts(
                target, settings, alerts_config, now=moment, dry_run=dry_run, wait_seconds=wait
            )
        raise typer.Exit(_report(result, dry_run=dry_run))
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop.is_set():
        try:
            result = run_alerts(
                target, settings, alerts_config, now=moment, dry_run=dry_run, wait_seconds=wait
            )
            _report(result, dry_run=dry_run)
        except AigwError as error:  # one bad run does not stop the loop
            err.print(f"error: {error}", markup=False)
            if not error.transient:
                raise typer.Exit(EXIT_ERROR) from error
        stop.wait(interval)


def _report(result: AlertsRunResult, *, dry_run: bool) -> int:
    """Print what the run did; return its exit code."""
    stale = _say_stale(result)
    if dry_run:
        for alert, channels in result.would_fire:
            out.print(f"would fire: {alert.title} -> {', '.join(channels)}", markup=False)
        out.print(
            f"alerts (dry run): {result.evaluated} hold, {len(result.would_fire)} would fire",
            markup=False,
        )
        return EXIT_STALE if stale else 0
    for alert, channel in result.delivered:
        out.print(f"sent to {channel}: {alert.title}", markup=False)
    for alert, channel, error in result.failed:
        err.print(f"failed to {channel}: {alert.title}: {error}", markup=False)
    out.print(
        f"alerts: {result.evaluated} hold, {len(result.new)} new, "
        f"{len(result.delivered)} delivered, {len(result.failed)} failed (retried next run)",
        markup=False,
    )
    if stale:
        return EXIT_STALE
    return EXIT_PARTIAL if result.failed else 0


def _say_stale(result: AlertsRunResult) -> bool:
    """One warning line on stderr when the data is stale; whether it is."""
    if not result.stale:
        return False
    newest = result.newest_data
    what = (
        "there is no data at all"
        if newest is None
        else f"the newest request is from {newest:%Y-%m-%d %H:%M} UTC"
    )
    at = f"{result.now:%Y-%m-%d %H:%M} UTC" if result.now else "now"
    err.print(
        f"warning: stale data: {what}, more than {result.stale_after_hours:g} hours before "
        f"{at}; is `aigw ingest` running? (exit {EXIT_STALE})",
        markup=False,
    )
    return True
