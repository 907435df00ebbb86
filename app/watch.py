"""``aigw ingest --watch``: prints what ``app.service.watch_and_alert`` does (each batch,
its rollups and, when budgets are configured, its alerts) and stops on a signal.

SIGTERM and SIGINT set the stop event: the object in hand commits, its batch is
checked, rolled up and alerted on, then the command prints the totals and exits 0
(3 if any batch failed a critical data-quality expectation with ``--quality fail``).
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Final

from alerts import AlertsConfig
from app.console import EXIT_QUALITY, err, out
from app.service import BatchOutcome, watch_and_alert
from core.errors import ConfigError
from ingest import (
    IngestSettings,
    IngestSummary,
    ObjectResult,
    QualityReport,
    WatchSettings,
)
from models import ModelsSettings, RefreshResult

__all__ = ["parse_interval", "print_quality", "print_refreshed", "run_watch"]

_INTERVAL: Final = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_interval(value: str) -> float:
    """Seconds from ``30s``, ``1m``, ``0.5s``, ``500ms`` or a bare number of seconds."""
    match = _INTERVAL.match(value.strip())
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"] if match else 0.0
    if seconds <= 0:
        raise ConfigError(f"--interval {value!r} must look like 30s, 1m or 0.5s")
    return seconds


def run_watch(
    settings: IngestSettings,
    options: WatchSettings,
    *,
    models_settings: ModelsSettings,
    alerts_config: AlertsConfig | None,
    on_object: Callable[[ObjectResult], None] | None,
) -> int:
    """Watch until SIGTERM/SIGINT; print each batch and the totals; return the exit code."""
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    def on_refreshed(outcome: BatchOutcome) -> None:
        print_refreshed(outcome.refreshed)
        if outcome.alerts is not None:
            for alert, channel in outcome.alerts.delivered:
                out.print(f"sent to {channel}: {alert.title}", markup=False)
            for alert, channel, error in outcome.alerts.failed:
                err.print(f"failed to {channel}: {alert.title}: {error}", markup=False)

    def on_batch(summary: IngestSummary) -> None:
        out.print(
            f"batch: {summary.loaded} loaded, {summary.skipped} skipped, "
            f"{summary.failed} failed; {summary.rows_loaded:,} rows, "
            f"{summary.duplicates:,} duplicates, {summary.rejected:,} rejected",
            markup=False,
        )
        for failure in summary.failures:
            err.print(f"failed: {failure.error} (retried later)", markup=False)
        print_quality(summary.quality)

    def on_notice(message: str) -> None:
        err.print(message, markup=False)

    where = f" and {options.sqs_queue_url}" if options.sqs_queue_url else ""
    err.print(
        f"watching {settings.source}{where} every {options.interval:g}s; "
        "stop with Ctrl-C or SIGTERM",
        markup=False,
    )
    total = watch_and_alert(
        settings,
        options,
        models_settings=models_settings,
        alerts_config=alerts_config,
        stop=stop,
        on_refreshed=on_refreshed,
        on_batch=on_batch,
        on_object=on_object,
        on_notice=on_notice,
    )
    totals = total.totals
    out.print(
        f"stopped after {total.polls} polls, {total.batches} batches: "
        f"{totals.loaded} objects loaded, {totals.failed} failed; "
        f"{totals.rows_loaded:,} rows, {totals.duplicates:,} duplicates, "
        f"{totals.rejected:,} rejected",
        markup=False,
    )
    return EXIT_QUALITY if total.quality_failures else 0


def print_refreshed(refreshed: RefreshResult) -> None:
    """One line when the rollups changed: rebuilt, or how many hours were refreshed."""
    if refreshed.full:
        out.print(f"rollups: rebuilt ({refreshed.rows:,} rows)", markup=False)
    elif refreshed.hours:
        out.print(f"rollups: {refreshed.hours:,} hours refreshed", markup=False)


def print_quality(report: QualityReport | None) -> None:
    """The gate's one-line result on stdout and one stderr line per failed expectation."""
    if report is None:
        return
    critical = report.critical_failures
    warned = report.warnings
    out.print(
        f"quality: {report.rows_checked:,} rows checked, "
        f"{critical} critical failure{'s' if critical != 1 else ''}, "
        f"{warned} warning{'s' if warned != 1 else ''}",
        markup=False,
    )
    for outcome in report.failed():
        kind = "failed" if outcome.severity == "critical" else "warning"
        count = outcome.unexpected_count
        rows = "not evaluated" if count is None else f"{count:,} row{'s' if count != 1 else ''}"
        err.print(f"quality {kind}: {outcome.name} ({rows})", markup=False)
