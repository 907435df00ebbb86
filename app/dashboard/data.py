"""The dashboard's query layer: every page reads the warehouse through ``fetch``.

Concurrency design (DuckDB lets one process open a file read-write, and then no other
process can open it at all): the dashboard never holds the warehouse open. Each query
opens a short-lived read-only connection, runs one named function of ``models`` and
closes it; when a writer (``aigw ingest``, watch mode, ``aigw alerts run``) holds the
file, the open is retried for up to ``RETRY_SECONDS``. Results are cached with
``st.cache_data`` keyed on the warehouse *version*: the (mtime, size) of the file and
of its write-ahead log, which every committed write changes. So an unchanged
warehouse is never opened again, and a changed one is read once per query. When the
file stays busy past the retries, the last result of the same query is served and
the page says the data is stale and since when (``stale_since``); only a query that
never succeeded shows "warehouse busy". A run waits at most once: after one query found
the file busy, the run's other queries do not wait again.

Thread-safety: Streamlit runs sessions in threads; each query uses its own
connection, and the last-good store is guarded by a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import streamlit as st

from alerts import AlertsConfig, load_alerts_config
from app.service import AnyEnvironment
from core.errors import WarehouseBusy, WarehouseLocked
from core.lake import WarehouseTarget
from ingest import Warehouse, open_warehouse
from models import ModelsSettings, WhatIfSettings, load_models_settings

__all__ = [
    "RETRY_SECONDS",
    "DashboardSettings",
    "Filters",
    "PageContext",
    "WarehouseBusy",
    "alerts_config",
    "context",
    "day_bounds",
    "fetch",
    "models_settings",
    "reset_run",
    "set_context",
    "settings_for",
    "stale_since",
    "warehouse_version",
]

RETRY_SECONDS: Final = 3.0
LAKE_REFRESH_SECONDS: Final = 15
_RETRY_PAUSE: Final = 0.05
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    """What ``aigw dashboard`` was started with: built once by the entry script."""

    db_path: WarehouseTarget  # the DuckDB file, or an Iceberg warehouse
    config_path: Path | None = None
    budgets_path: Path | None = None
    now: datetime | None = None  # "as of" for month-to-date and budgets; None: newest data
    unit_key: str | None = None  # [outcomes] unit_key: the metadata key of a unit of work
    whatif: WhatIfSettings = field(default_factory=WhatIfSettings)  # [whatif]: the batch key

    @property
    def warehouse_name(self) -> str:
        """How pages name the warehouse: the file, or the Iceberg warehouse's location."""
        target = self.db_path
        return str(target) if isinstance(target, Path) else target.describe()


@dataclass(frozen=True, slots=True)
class Filters:
    """The global filters: ``since <= hour < until`` (UTC) and ``dimension = value`` pairs."""

    since: datetime
    until: datetime
    where: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, str]:
        return dict(self.where)

    def previous(self) -> Filters:
        """The range of the same length just before this one (for trends)."""
        span = self.until - self.since
        return Filters(self.since - span, self.since, self.where)


def warehouse_version(path: WarehouseTarget) -> tuple[int, ...]:
    """(mtime_ns, size) of the warehouse file and of its WAL: changes with every commit.
    An Iceberg warehouse has no one file: its version is the current 15-second period, so
    the dashboard shows new commits within 15 s (opening never waits for a writer)."""
    if not isinstance(path, Path):
        return (int(time.time() // LAKE_REFRESH_SECONDS),)
    version: list[int] = []
    for candidate in (path, path.with_name(path.name + ".wal")):
        try:
            stat = candidate.stat()
        except FileNotFoundError:
            version += [0, 0]
        else:
            version += [stat.st_mtime_ns, stat.st_size]
    return tuple(version)


@dataclass
class _LastGood:
    """The newest result of each query (any warehouse version) and when it was read."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    results: dict[tuple[Any, ...], tuple[Any, datetime]] = field(default_factory=dict)


@st.cache_resource(show_spinner=False)
def _last_good() -> _LastGood:
    return _LastGood()


# How long this thread's next open may wait for a writer: RETRY_SECONDS, or 0 once this
# script run found the warehouse busy (one wait per run, not one per query).
_retry = threading.local()


def _open_with_retry(db_path: WarehouseTarget) -> Warehouse:
    deadline = time.monotonic() + getattr(_retry, "seconds", RETRY_SECONDS)
    while True:
        try:
            return open_warehouse(db_path, read_only=True)
        except WarehouseLocked:
            if time.monotonic() >= deadline:
                raise
            time.sleep(_RETRY_PAUSE)


# name -> function(warehouse, models settings, **arguments); filled by app.dashboard.queries
QUERIES: dict[str, Callable[..., Any]] = {}


@st.cache_data(show_spinner=False, max_entries=512)
def _cached(
    version: tuple[int, ...],
    name: str,
    db_path: WarehouseTarget,
    config: tuple[str, int],
    arguments: tuple[tuple[str, Any], ...],
) -> Any:
    """One named query on one warehouse version (``version`` is only the cache key)."""
    del version
    settings = models_settings(config)
    warehouse = _open_with_retry(db_path)
    try:
        with warehouse.errors():
            return QUERIES[name](warehouse, settings, **dict(arguments))
    finally:
        warehouse.close()


def fetch(settings: DashboardSettings, name: str, **arguments: Any) -> Any:
    """The result of query ``name`` with ``arguments`` (hashable values), cached per
    warehouse version; the last good result when the warehouse stays busy."""
    key = (name, str(settings.db_path), tuple(sorted(arguments.items())))
    store = _last_good()
    _retry.seconds = 0.0 if stale_since() is not None else RETRY_SECONDS
    try:
        result = _cached(
            warehouse_version(settings.db_path),
            name,
            settings.db_path,
            _config_key(settings.config_path),
            key[2],
        )
    except WarehouseLocked as locked:
        with store.lock:
            kept = store.results.get(key)
        if kept is None:
            raise WarehouseBusy(
                f"warehouse {settings.warehouse_name} is busy (another aigw process is writing); "
                "reload in a few seconds"
            ) from locked
        _mark_stale(kept[1])
        return kept[0]
    with store.lock:
        store.results[key] = (result, datetime.now(tz=UTC))
    return result


def _mark_stale(read_at: datetime) -> None:
    """Remember, for this script run, the oldest data served from the last-good store."""
    current = st.session_state.get("_aigw_stale_since")
    if current is None or read_at < current:
        st.session_state["_aigw_stale_since"] = read_at


def stale_since() -> datetime | None:
    """When the oldest stale result of this run was read (None: everything is fresh)."""
    value = st.session_state.get("_aigw_stale_since")
    return value if isinstance(value, datetime) else None


def reset_run() -> None:
    """Forget the previous run's staleness (the entry script calls it first)."""
    st.session_state.pop("_aigw_stale_since", None)


def _config_key(path: Path | None) -> tuple[str, int]:
    if path is None:
        return ("", 0)
    try:
        return (str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        return (str(path), 0)


@st.cache_resource(show_spinner=False)
def models_settings(config: tuple[str, int]) -> ModelsSettings:
    """The models settings of ``aigw.toml`` (re-read when the file changes)."""
    return load_models_settings(Path(config[0]) if config[0] else None)


def settings_for(settings: DashboardSettings) -> ModelsSettings:
    return models_settings(_config_key(settings.config_path))


@st.cache_data(show_spinner=False)
def _alerts_config(path: str, mtime: int, dimensions: tuple[str, ...]) -> AlertsConfig:
    del mtime
    # Channel secrets are not needed to draw budgets: their variables may be unset here.
    return load_alerts_config(Path(path), dimensions=dimensions, environ=AnyEnvironment())


def alerts_config(settings: DashboardSettings) -> AlertsConfig | None:
    """The budgets file's configuration, or None when there is no budgets file."""
    path = settings.budgets_path
    if path is None or not path.exists():
        return None
    return _alerts_config(str(path), path.stat().st_mtime_ns, settings_for(settings).all_dimensions)


def day_bounds(first: datetime, last: datetime) -> tuple[datetime, datetime]:
    """Midnight of ``first`` and the midnight after ``last`` (UTC)."""
    start = first.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = last.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, end + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class PageContext:
    """What every page reads: the settings, the filters, and the data's time span.

    ``as_of`` is the dashboard's "now" for month-to-date, budgets and anomalies: the
    ``--now`` it was started with, else the end of the newest rolled-up hour.
    """

    settings: DashboardSettings
    models: ModelsSettings
    filters: Filters
    first: datetime
    as_of: datetime


def set_context(context: PageContext) -> None:
    st.session_state["_aigw_context"] = context


def context() -> PageContext:
    """The context the entry script set for this run."""
    value = st.session_state.get("_aigw_context")
    if not isinstance(value, PageContext):
        raise WarehouseBusy("the dashboard has no data context; open it through its main page")
    return value
