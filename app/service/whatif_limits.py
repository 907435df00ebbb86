"""The gateway's rate limits (``gateway.toml``) replayed over the warehouse's requests.

Reads the ``gateway.toml`` as the gateway does (``proxy.load_gateway_config``), gives each
request of the window its route (the route the gateway logged, else the first route whose
``match`` globs match the requested model, as the gateway routes), and replays the
routes' ``rate_limits`` in time order (``models.whatif.limits``). Reads the window's raw
requests with the costs the rollups were built with. Limits ``per = "ip"`` cannot be
replayed (the logs carry no client address): a note names them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import polars as pl

from app.service.reports import _check_dimensions
from app.service.whatif import DEFAULT_DAYS, _empty, _window
from core.errors import ConfigError
from core.lake import WarehouseTarget
from core.warehouse import open_warehouse, read_requests
from models import LimitsReplay, ModelsSettings, RateLimitRule, replay_rate_limits

if TYPE_CHECKING:
    from proxy import GatewayConfig

__all__ = ["AnyEnvironment", "whatif_limits"]

_META: Final = "metadata:"


class AnyEnvironment(Mapping[str, str]):
    """An environment in which every variable is set (to a placeholder, never shown): to
    read a settings file whose secrets the reader does not need."""

    def __getitem__(self, key: str) -> str:
        return "unset"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __contains__(self, key: object) -> bool:
        return True


def _rules(config: GatewayConfig) -> tuple[list[RateLimitRule], list[str]]:
    """The routes' limits that can be replayed, and the names of those that cannot."""
    rules, skipped = [], []
    for route in config.routes:
        for limit in route.rate_limits:
            if limit.per == "ip":
                skipped.append(f"{route.name}.{limit.name}")
                continue
            rules.append(
                RateLimitRule(
                    route=route.name,
                    name=limit.name,
                    per=limit.per,
                    unit=limit.unit,
                    limit=limit.limit,
                    window_s=limit.window_s,
                    sliding=limit.sliding,
                )
            )
    return rules, skipped


def _routed(frame: pl.LazyFrame, config: GatewayConfig) -> pl.LazyFrame:
    """``frame`` with ``route``: the logged route when the file names it, else the route
    the gateway would pick for the requested (else the served) model."""
    names = {route.name for route in config.routes}
    asked = pl.coalesce(pl.col("requested_model"), pl.col("model")).alias("_asked")
    frame = frame.with_columns(asked)
    pairs = frame.select("provider", "_asked").unique().collect()
    chosen = pl.DataFrame(
        {
            "provider": pairs["provider"],
            "_asked": pairs["_asked"],
            "_route": [
                config.route_for(provider or "", model or "").name
                for provider, model in pairs.iter_rows()
            ],
        },
        schema={"provider": pl.String, "_asked": pl.String, "_route": pl.String},
    )
    logged = pl.col("route")
    return (
        frame.join(chosen.lazy(), on=["provider", "_asked"], how="left", nulls_equal=True)
        .with_columns(
            pl.when(logged.is_in(list(names)))
            .then(logged)
            .otherwise(pl.col("_route"))
            .alias("route")
        )
        .drop("_asked", "_route")
    )


def whatif_limits(
    db_path: WarehouseTarget,
    settings: ModelsSettings,
    gateway: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    days: int = DEFAULT_DAYS,
    user: str = "user",
) -> LimitsReplay:
    """The rate limits of ``gateway`` (a ``gateway.toml``) replayed over the window: refused
    requests per route, user and window, and the spend avoided. The replay needs none of
    the file's secrets: the variables it names may be unset. ``ConfigError`` when the file
    has no limit to replay."""
    # The gateway package (its server, stores and clients) loads in about a second: only
    # this command pays for it, not every command and dashboard page that uses the service.
    from proxy import load_gateway_config  # noqa: PLC0415 - on demand (see above)

    config = load_gateway_config(gateway, AnyEnvironment())
    rules, skipped = _rules(config)
    if not rules:
        raise ConfigError(
            f"{gateway}: no route has rate_limits per key, route or metadata to replay"
        )
    _check_dimensions(settings, [user])
    keys = sorted({rule.per.removeprefix(_META) for rule in rules if rule.per.startswith(_META)})
    columns = {f"limit_key_{index}": key for index, key in enumerate(keys)}
    wanted = {name: key for name, key in settings.dimensions.items() if name == user}
    narrowed = dataclasses.replace(settings, dimensions={**wanted, **columns})
    notes = [
        f"limits per ip are not replayed (no client address in the logs): {', '.join(skipped)}"
    ]
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        window = _window(warehouse, settings, since, until, days)
        if window is None:
            empty = _empty("rate limits")
            return LimitsReplay(empty, pl.DataFrame(), pl.DataFrame())
        frame = read_requests(
            warehouse.con,
            narrowed,
            since=window.since,
            until=window.until,
            stored_costs=True,
            with_routing=True,
        )
    frame = _routed(frame.rename({name: _META + key for name, key in columns.items()}), config)
    replay = replay_rate_limits(frame, rules, user=user)
    answer = window.stamp(replay.whatif)
    answer = dataclasses.replace(answer, notes=(*answer.notes, *notes[: bool(skipped)]))
    return LimitsReplay(answer, replay.users, replay.windows)
