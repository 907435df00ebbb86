"""The stages composed once: load, check quality, refresh the rollups, run the alerts.

``aigw ingest`` calls ``ingest_and_refresh``; ``aigw ingest --watch`` calls
``watch_and_alert``, whose every batch goes through ``refresh_and_alert``. The CLI only
parses and prints; tests call these directly. Delivery guarantees are the stages' own:
an object's rows commit with its manifest entry (``ingest``), alerts fire once per
crossing (``alerts``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from alerts import AlertsConfig, AlertsRunResult, run_alerts
from app.service.reports import refresh
from core.lake import WarehouseTarget
from core.warehouse import Warehouse
from ingest import (
    IngestSettings,
    IngestSummary,
    ObjectResult,
    WatchSettings,
    WatchSummary,
    run_ingest,
    watch,
)
from models import ModelsSettings, RefreshResult, refresh_rollups

__all__ = [
    "BatchOutcome",
    "IngestOutcome",
    "ingest_and_refresh",
    "refresh_and_alert",
    "watch_and_alert",
]


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """One ``aigw ingest``: what the load and its quality check did, then the rollups."""

    summary: IngestSummary
    refreshed: RefreshResult


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """After one watch batch: the rollups' refresh and, with budgets, the alerts run."""

    refreshed: RefreshResult
    alerts: AlertsRunResult | None


def ingest_and_refresh(
    settings: IngestSettings,
    models_settings: ModelsSettings,
    *,
    on_listed: Callable[[int], None] | None = None,
    on_object: Callable[[ObjectResult], None] | None = None,
    on_loaded: Callable[[IngestSummary], None] | None = None,
) -> IngestOutcome:
    """Load the new objects of ``settings.source``, run the quality gate over the new
    rows (``summary.quality``) and bring the rollups up to date; ``on_loaded`` sees the
    summary and its quality once all three are done.

    Into a DuckDB file the refresh runs while the gate's second process validates the
    rows (``run_ingest``'s ``while_checking``), so the two overlap; the results are those
    of the load, the check, then the refresh. The refresh runs whatever the gate says.
    An error of the refresh is raised after the check's ``quality_runs`` row is stored
    and ``on_loaded`` has run, as when the refresh came last; an error of the load or
    the check (``QualityGateError``) is raised as is.

    A run whose load or check fails (raises) leaves no new warehouse behind: the file,
    its WAL and the folders this run created for it are removed; an existing warehouse
    is kept (its rollups may then be refreshed already).
    """
    refreshed: list[RefreshResult] = []
    failed: list[Exception] = []

    def refresh_now() -> None:
        try:
            refreshed.append(refresh(settings.db_path, models_settings))
        except Exception as err:  # noqa: BLE001 - raised below, once the check is stored
            failed.append(err)

    with _removed_on_error(settings.db_path):
        summary = run_ingest(
            settings, on_listed=on_listed, on_object=on_object, while_checking=refresh_now
        )
    if on_loaded is not None:
        on_loaded(summary)
    if failed:
        raise failed[0]
    return IngestOutcome(summary, refreshed[0])


@contextmanager
def _removed_on_error(db_path: WarehouseTarget) -> Iterator[None]:
    """Remove the warehouse at ``db_path`` (and the folders made for it) if the block
    raises and the file did not exist before it (an Iceberg warehouse is left as is:
    its commits are whole)."""
    if not isinstance(db_path, Path):
        yield
        return
    path = Path(db_path)
    if path.exists():
        yield
        return
    missing = [folder for folder in path.absolute().parents if not folder.exists()]
    try:
        yield
    except BaseException:
        for leftover in (path, path.with_name(path.name + ".wal")):
            leftover.unlink(missing_ok=True)
        for folder in missing:  # innermost first
            with suppress(OSError):  # not empty: something else wrote there meanwhile
                folder.rmdir()
        raise


def refresh_and_alert(
    warehouse: Warehouse,
    summary: IngestSummary,
    models_settings: ModelsSettings,
    alerts_config: AlertsConfig | None,
) -> BatchOutcome:
    """Refresh the rollups of the hours ``summary``'s batch touched; with ``alerts_config``
    and new rows, evaluate the budgets and rules and send what crossed."""
    refreshed = refresh_rollups(warehouse, models_settings)
    result = None
    if alerts_config is not None and summary.rows_loaded:
        # Same process, same file: DuckDB hands run_alerts a second connection to the
        # database this batch holds open, so no lock is waited for.
        result = run_alerts(Path(warehouse.path), models_settings, alerts_config)
    return BatchOutcome(refreshed, result)


def watch_and_alert(
    settings: IngestSettings,
    options: WatchSettings,
    *,
    models_settings: ModelsSettings,
    alerts_config: AlertsConfig | None,
    stop: threading.Event,
    on_batch: Callable[[IngestSummary], None] | None = None,
    on_refreshed: Callable[[BatchOutcome], None] | None = None,
    on_object: Callable[[ObjectResult], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> WatchSummary:
    """Watch ``settings.source`` until ``stop`` is set; after each batch's load and
    quality check (``on_batch``), refresh and alert (``on_refreshed``)."""

    def after_batch(warehouse: Warehouse, summary: IngestSummary) -> None:
        outcome = refresh_and_alert(warehouse, summary, models_settings, alerts_config)
        if on_refreshed is not None:
            on_refreshed(outcome)

    return watch(
        settings,
        options,
        stop=stop,
        after_batch=after_batch,
        on_batch=on_batch,
        on_object=on_object,
        on_notice=on_notice,
    )
