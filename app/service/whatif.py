"""What-ifs and the savings report over the warehouse: settings in, answers out.

Each function opens the warehouse read-only, reads the hourly rollups by the few
dimensions its what-if needs (summed in DuckDB), and raw requests only where the rollups
cannot answer exactly (``models.whatif``): the crossing hours of a budget, the repeated
requests of a cache replay, a target whose price depends on each request. The window is
``[since, until)``; without bounds it is the ``days`` days up to the end of the newest
data. ``ConfigError`` for an unknown dimension, an empty window or a bad setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from app.service.beside import beside
from app.service.prompt_cache import prompt_cache_replay
from app.service.reports import _check_dimensions, _check_window
from core.errors import ConfigError
from core.lake import WarehouseTarget
from core.warehouse import (
    STORED_COLUMNS,
    Warehouse,
    open_warehouse,
    read_cacheable,
    read_requests,
    rollup_span,
)
from models import (
    DEFAULT_CACHE_BY,
    DEFAULT_PROMPT_CACHE_BY,
    DEFAULT_SWITCH_BY,
    TTL_CHOICES,
    ModelsSettings,
    ModelSwitch,
    WhatIf,
    WhatIfSettings,
    batch_savings,
    costed_requests,
    load_price_file,
    newest_rollup_hour,
    opportunities,
    read_rollup,
    replay_cache_ttls,
    replay_identified,
    rollups_stale,
    switch_models,
)

__all__ = [
    "DEFAULT_DAYS",
    "Savings",
    "batch_dimension",
    "savings_in",
    "savings_report",
    "whatif_batch",
    "whatif_cache",
    "whatif_prompt_cache",
    "whatif_switch",
]

DEFAULT_DAYS: Final = 30
_TOKENS: Final = (
    "tokens_in",
    "tokens_out",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
)
_PRICED: Final = ("requests", *_TOKENS, "cost_usd")
_CACHED: Final = ("requests", "cached_requests", "cost_usd", "saved_usd")
# What the cache replay reads of each repeated request besides its scope and rows.
_REPLAY_COLUMNS: Final = (
    "gateway",
    "model",
    "status_code",
    "cached",
    "rate_limited",
    "api_key",
    "cache_skipped",
)
_USAGE: Final = ("provider", "model", "endpoint", "cost_source")  # what the savings read
_STALE: Final = "the rollups are behind the warehouse or the settings: run `aigw rollup`"


@dataclass(frozen=True, slots=True)
class _Window:
    """The resolved window, UTC, and whether the rollups lag behind the warehouse."""

    since: datetime
    until: datetime
    stale: bool = False

    def days(self, warehouse: Warehouse) -> float:
        """The days of the window that hold data: from the first rolled-up hour, if later."""
        span = rollup_span(warehouse.con)
        start = max(self.since, span[0]) if span else self.since
        return max((self.until - start) / timedelta(days=1), 1 / 24)

    def stamp(self, answer: WhatIf) -> WhatIf:
        """``answer`` with this window (and a note when the rollups are stale)."""
        notes = (*answer.notes, _STALE) if self.stale else answer.notes
        return dataclasses.replace(answer, window=(self.since, self.until), notes=notes)


def _window(
    warehouse: Warehouse,
    settings: ModelsSettings,
    since: datetime | None,
    until: datetime | None,
    days: int,
) -> _Window | None:
    """``[since, until)``, an open end being the newest data's end (None: no data)."""
    if days < 1:
        raise ConfigError(f"--days {days} must be 1 or more")
    _check_window(since, until)
    end = until or newest_rollup_hour(warehouse.con)
    if end is None:
        return None
    start = since or end - timedelta(days=days)
    _check_window(start, end)
    return _Window(start, end, stale=rollups_stale(warehouse.con, settings))


def _rollup(
    warehouse: Warehouse, window: _Window, dims: Sequence[str], measures: Sequence[str]
) -> pl.LazyFrame:
    keys = list(dict.fromkeys(dims))
    return read_rollup(
        warehouse.con, since=window.since, until=window.until, by=keys, measures=measures
    )


def _empty(change: str) -> WhatIf:
    return WhatIf(change, pl.DataFrame(), ("no rolled-up data in the window",))


def _overrides(settings: ModelsSettings) -> pl.DataFrame | None:
    return load_price_file(settings.prices) if settings.prices is not None else None


def _narrowed(settings: ModelsSettings, names: Sequence[str]) -> ModelsSettings:
    """``settings`` with only the metadata dimensions in ``names``: a raw read extracts
    no other metadata key (each one is JSON parsed per request)."""
    dimensions = {name: key for name, key in settings.dimensions.items() if name in names}
    return dataclasses.replace(settings, dimensions=dimensions)


def _models_reader(
    warehouse: Warehouse,
    settings: ModelsSettings,
    window: _Window,
    overrides: pl.DataFrame | None,
    dims: Sequence[str],
) -> Callable[[list[str]], pl.LazyFrame]:
    """Reads the window's costed requests of some models, with the dimensions ``dims``."""
    narrowed = _narrowed(settings, dims)

    def read(models: list[str]) -> pl.LazyFrame:
        return costed_requests(
            warehouse,
            narrowed,
            since=window.since,
            until=window.until,
            models=models,
            overrides=overrides,
        )

    return read


def whatif_switch(
    db_path: WarehouseTarget,
    settings: ModelsSettings,
    switches: Sequence[ModelSwitch],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    days: int = DEFAULT_DAYS,
    filters: dict[str, str] | None = None,
    by: Sequence[str] | None = None,
    cross_family_ratio: float | None = None,
) -> WhatIf:
    """The switched models' requests in the window priced at the targets
    (``models.whatif.switch``), by ``by`` (default: provider and model)."""
    by = list(by) if by else list(DEFAULT_SWITCH_BY)
    _check_dimensions(settings, [*by, *(filters or {})])
    change = "model " + ", ".join(str(switch) for switch in switches)
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        window = _window(warehouse, settings, since, until, days)
        if window is None:
            return _empty(change)
        dims = ["provider", "model", "cost_source", *by, *(filters or {})]
        rollup = _rollup(warehouse, window, dims, _PRICED)
        if not rollup.collect_schema().names():
            return _empty(change)
        overrides = _overrides(settings)
        answer = switch_models(
            rollup,
            switches,
            overrides=overrides,
            by=by,
            filters=filters,
            cross_family_ratio=cross_family_ratio,
            requests_of=_models_reader(warehouse, settings, window, overrides, dims),
        )
    return window.stamp(answer)


def whatif_cache(
    db_path: WarehouseTarget,
    settings: ModelsSettings,
    ttl: timedelta,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    days: int = DEFAULT_DAYS,
    filters: dict[str, str] | None = None,
    by: Sequence[str] | None = None,
    per_key: bool = False,
) -> WhatIf:
    """The window's identical requests replayed under a response-cache ``ttl``
    (``models.whatif.cache_ttl``), by ``by`` (default: the route, gateway and endpoint);
    reads the requests whose hash repeats in the window."""
    by = list(by) if by else list(DEFAULT_CACHE_BY)
    _check_dimensions(settings, [*by, *(filters or {})])
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        window = _window(warehouse, settings, since, until, days)
        if window is None:
            return _empty("response cache TTL")
        replays = _cache_replays(
            warehouse, settings, window, [ttl], filters=filters, by=by, per_key=per_key
        )
    return window.stamp(replays[0])


def _cache_replays(
    warehouse: Warehouse,
    settings: ModelsSettings,
    window: _Window,
    ttls: Sequence[timedelta],
    *,
    filters: dict[str, str] | None,
    by: Sequence[str],
    per_key: bool = False,
) -> list[WhatIf]:
    """One replay per TTL of the same requests (read once, with the costs the rollups were
    built with)."""
    names = [*by, *(filters or {})]
    rollup = _rollup(warehouse, window, names, _CACHED)
    if not rollup.collect_schema().names():
        return [_empty("response cache TTL") for _ in ttls]
    for name, value in (filters or {}).items():
        rollup = rollup.filter(pl.col(name) == value)
    # the refresh's copy of the replay's inputs: kept in a DuckDB file (an Iceberg
    # warehouse does not keep it), current with the rollups, by the columns it holds
    if warehouse.lake is None and not window.stale and set(names) <= set(STORED_COLUMNS):
        kept = read_cacheable(
            warehouse.con,
            since=window.since,
            until=window.until,
            columns=by,
            filters=filters,
            per_key=per_key,
        )
        return replay_identified(rollup, kept, ttls, by=by, per_key=per_key)
    repeated = read_requests(
        warehouse.con,
        _narrowed(settings, names),
        since=window.since,
        until=window.until,
        with_request_hash=True,
        repeated_at_least=2,
        repeated_in="range",
        stored_costs=True,
        columns=[*names, *_REPLAY_COLUMNS],
    )
    for name, value in (filters or {}).items():
        repeated = repeated.filter(pl.col(name) == value)
    return replay_cache_ttls(rollup, repeated, ttls, by=by, per_key=per_key)


def whatif_prompt_cache(
    db_path: WarehouseTarget,
    settings: ModelsSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    days: int = DEFAULT_DAYS,
    filters: dict[str, str] | None = None,
    by: Sequence[str] | None = None,
) -> WhatIf:
    """The window's requests that repeat a large prompt prefix unread, priced with the
    provider's prompt cache (``models.whatif.prompt_cache``), by ``by`` (default: provider
    and model); reads the rollups for the totals and the raw requests that carry a
    prompt-prefix hash (``prompt_prefixed_requests`` while the rollups are current)."""
    by = list(by) if by else list(DEFAULT_PROMPT_CACHE_BY)
    _check_dimensions(settings, [*by, *(filters or {})])
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        window = _window(warehouse, settings, since, until, days)
        if window is None:
            return _empty("provider prompt caching")
        scope = _rollup(warehouse, window, [*by, *(filters or {})], ("requests", "cost_usd"))
        if not scope.collect_schema().names():
            return _empty("provider prompt caching")
        answer = prompt_cache_replay(
            warehouse,
            settings,
            window.since,
            window.until,
            by=by,
            filters=filters,
            scope=scope,
            current=not window.stale,
        )
    return window.stamp(answer)


def batch_dimension(settings: ModelsSettings, whatif: WhatIfSettings) -> str:
    """The rollup dimension that carries ``[whatif] batch_key``; ``ConfigError`` when the
    key is not set or no ``[models.dimensions]`` entry reads it."""
    if whatif.batch_key is None:
        raise ConfigError(
            "no [whatif] batch_key in aigw.toml: name the metadata key that marks "
            'non-interactive traffic (e.g. batch_key = "interactive")'
        )
    for name, key in settings.dimensions.items():
        if key == whatif.batch_key:
            return name
    raise ConfigError(
        f"[whatif] batch_key {whatif.batch_key!r} is not the metadata key of a "
        f'[models.dimensions] entry: add {whatif.batch_key} = "{whatif.batch_key}" there '
        "(the rollups then carry it; run `aigw rollup --full`)"
    )


def whatif_batch(
    db_path: WarehouseTarget,
    settings: ModelsSettings,
    whatif: WhatIfSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    days: int = DEFAULT_DAYS,
    filters: dict[str, str] | None = None,
    by: Sequence[str] | None = None,
) -> WhatIf:
    """The non-interactive traffic of the window at batch prices (``models.whatif.batch``)."""
    dimension = batch_dimension(settings, whatif)
    keys = list(by) if by else [dimension]
    _check_dimensions(settings, [*keys, *(filters or {})])
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        window = _window(warehouse, settings, since, until, days)
        if window is None:
            return _empty("batch API")
        answer = _batch(
            warehouse, settings, whatif, window, dimension=dimension, by=keys, filters=filters
        )
    return window.stamp(answer)


def _batch(
    warehouse: Warehouse,
    settings: ModelsSettings,
    whatif: WhatIfSettings,
    window: _Window,
    *,
    dimension: str,
    by: Sequence[str],
    filters: dict[str, str] | None,
) -> WhatIf:
    dims = ["provider", "model", "cost_source", dimension, *by, *(filters or {})]
    rollup = _rollup(warehouse, window, dims, _PRICED)
    if not rollup.collect_schema().names():
        return _empty("batch API")
    overrides = _overrides(settings)
    return batch_savings(
        rollup,
        dimension,
        whatif.batch_values,
        whatif.batch_discount,
        overrides=overrides,
        by=by,
        filters=filters,
        requests_of=_models_reader(warehouse, settings, window, overrides, dims),
    )


@dataclass(frozen=True, slots=True)
class Savings:
    """The savings report: ``table`` (``models.SAVINGS_COLUMNS``), its window, notes
    (what-ifs that could not run and why), and ``days``: the window's days that hold data,
    over which ``saving_usd`` was measured (per month is it times 30 / ``days``)."""

    table: pl.DataFrame
    since: datetime | None
    until: datetime | None
    notes: tuple[str, ...]
    days: float | None = None


def savings_report(
    db_path: WarehouseTarget,
    settings: ModelsSettings,
    whatif: WhatIfSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    days: int = DEFAULT_DAYS,
    top: int = 10,
) -> Savings:
    """The top opportunities of ``[since, until)`` (default: the ``days`` days up to the
    end of the newest data): model switches, cache TTLs per route, batch APIs and provider
    prompt caching, each with its saving per month, evidence and change
    (``models.whatif.savings``)."""
    if top < 1:
        raise ConfigError(f"--top {top} must be 1 or more")
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        return savings_in(warehouse, settings, whatif, since=since, until=until, days=days, top=top)


def savings_in(
    warehouse: Warehouse,
    settings: ModelsSettings,
    whatif: WhatIfSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    days: int = DEFAULT_DAYS,
    top: int = 10,
) -> Savings:
    """``savings_report`` on an open warehouse (the dashboard's: it opens and closes its
    own read-only connections); the caller translates the driver's errors."""
    notes: list[str] = []
    window = _window(warehouse, settings, since, until, days)
    if window is None:
        return Savings(pl.DataFrame(), None, None, ("no rolled-up data",))
    usage = _rollup(warehouse, window, _USAGE, _PRICED)
    if not usage.collect_schema().names():
        return Savings(pl.DataFrame(), window.since, window.until, ("no data in the window",))
    overrides = _overrides(settings)
    ttls = list(TTL_CHOICES.values())

    def cache_replays(opened: Warehouse) -> list[WhatIf]:
        return _cache_replays(opened, settings, window, ttls, filters=None, by=DEFAULT_CACHE_BY)

    # the cache replays (the longest part: every repeated request) beside the rest
    with beside(warehouse, cache_replays) as replays:
        batch, dimension = None, ""
        try:
            dimension = batch_dimension(settings, whatif)
        except ConfigError as err:
            notes.append(f"batch: {err}")
        else:
            batch = _batch(
                warehouse,
                settings,
                whatif,
                window,
                dimension=dimension,
                by=[dimension],
                filters=None,
            )
        prompt_cache = prompt_cache_replay(
            warehouse,
            settings,
            window.since,
            window.until,
            by=DEFAULT_PROMPT_CACHE_BY,
            prefixed_only=True,
            current=not window.stale,
        )
        measured = window.days(warehouse)
        table = opportunities(
            usage,
            days=measured,
            overrides=overrides,
            cache_replays=dict(zip(TTL_CHOICES, replays.result(), strict=True)),
            batch=batch,
            batch_dimension=dimension,
            top=top,
            requests_of=_models_reader(warehouse, settings, window, overrides, _USAGE),
            prompt_cache=prompt_cache,
        )
    if window.stale:
        notes.append(_STALE)
    return Savings(table, window.since, window.until, tuple(notes), measured)
