"""The gateway's rate limits and route budgets (``gateway.toml``) replayed over the
warehouse's requests.

Reads the ``gateway.toml`` as the gateway does (``proxy.load_gateway_config``), gives each
request of the window its route (the route the gateway logged, else the first route whose
``match`` globs match the requested model, as the gateway routes), and replays the
routes' ``rate_limits`` and ``budget`` in time order (``models.whatif.limits``). Reads the
window's raw requests with the costs the rollups were built with, and, for the budgets,
those of the budget periods the window starts in, from their start (their recorded
spend counts). Limits ``per = "ip"`` cannot be replayed (the logs carry no client
address): a note names them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import polars as pl

from app.service.reports import _check_dimensions
from app.service.whatif import DEFAULT_DAYS, _empty, _overrides, _window
from core.errors import ConfigError
from core.lake import WarehouseTarget
from core.warehouse import (
    KEPT_COLUMNS,
    KEY_HASH,
    Warehouse,
    asked_pairs,
    keys_repeat,
    open_warehouse,
    read_kept_routed,
    read_routed,
    replay_inputs_kept,
)
from models import (
    PRICED_COLUMNS,
    TIE_ORDER,
    LimitsReplay,
    ModelsSettings,
    RateLimitRule,
    RouteBudget,
    replay_rate_limits,
    unique_keys,
)

if TYPE_CHECKING:
    from proxy import GatewayConfig

__all__ = ["AnyEnvironment", "whatif_limits"]

_META: Final = "metadata:"
# what the replay reads of each request (its time and tokens)...
_REPLAYED: Final = ("ts", "tokens_in", "tokens_out")
# ... and, when a request's key repeats (attempts of one request to fold), its keys and
# attempt, and the answering attempt's provider and model
_FOLDED: Final = ("log_id", "event_id", "step", "provider", "model")
# ... and what pricing a reroute reads too (not the log id: pricing does not use it, and
# its text through the read's sort costs seconds of 10 M requests)
_REPRICED: Final = (*(name for name in PRICED_COLUMNS if name != "log_id"), "cost_source")


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


def _priced_as(config: GatewayConfig) -> dict[str, str]:
    """Each provider's name -> the catalogue provider the gateway prices it as (its
    ``catalog_name``, else its name)."""
    return {name: provider.catalog_name or name for name, provider in config.providers.items()}


def _budgets(config: GatewayConfig, priced_as: Mapping[str, str]) -> list[RouteBudget]:
    """The routes' budgets, a reroute priced as the gateway prices its provider
    (``priced_as``)."""
    budgets = []
    for route in config.routes:
        budget = route.budget
        if budget is None:
            continue
        price_as = priced_as[budget.reroute.split("/", 1)[0]] if budget.reroute else None
        budgets.append(
            RouteBudget(
                route=route.name,
                usd=budget.usd,
                period=budget.period,
                per=budget.per,
                action=budget.action,
                reroute=budget.reroute,
                price_as=price_as,
            )
        )
    return budgets


def _lead(budgets: list[RouteBudget], since: datetime) -> datetime:
    """The start of the earliest budget period holding ``since`` (UTC); ``since`` without
    budgets."""
    day = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [day.replace(day=1) if budget.period == "month" else day for budget in budgets]
    return min([since, *starts])


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


@dataclasses.dataclass
class _Reader:
    """The window's requests of some routes as the replay reads them: routed and sorted
    by DuckDB, the request's key as a 64-bit hash (``read_routed``); read again with the
    keys' text when a key repeats (compared, or for the kept inputs listed by the
    refresh: ``keys_repeat``): the attempts of one request to fold, or (rarely) two
    keys of one hash. The kept inputs of a window where none repeats are read without
    their keys: each row is one request, in order, and its position is its key.
    ``renamed``: the metadata keys' columns -> their ``metadata:`` names; ``copied``:
    ``metadata:`` names copied from a column. ``kept``: the refresh's copy of the
    replay's inputs is current (``read_kept_routed`` reads it when it holds the columns,
    else ``read_routed`` reads ``requests``)."""

    warehouse: Warehouse
    settings: ModelsSettings
    config: GatewayConfig
    columns: list[str]
    renamed: dict[str, str]
    copied: dict[str, str]
    kept: bool = False

    def read(
        self, since: datetime, until: datetime, routes: list[str], *, keyed: bool = True
    ) -> pl.DataFrame:
        """The requests with ``since <= ts < until`` of ``routes``, in request order;
        ``keyed``: with keys that tell requests apart (not needed to sum spend)."""
        con, config = self.warehouse.con, self.config
        kept = KEPT_COLUMNS | set(self.settings.all_dimensions)
        fast = self.kept and set(self.columns) <= kept
        chosen = {
            (provider, asked): config.route_for(provider or "", asked or "").name
            for provider, asked in asked_pairs(con, since, until, kept=fast)
        }
        names = {route.name for route in config.routes}

        def routed(
            reader: Callable[..., pl.DataFrame], columns: list[str], **flags: bool
        ) -> pl.DataFrame:
            return reader(
                con,
                self.settings,
                since=since,
                until=until,
                routes=routes,
                logged=names,
                chosen=chosen,
                columns=columns,
                **flags,
            )

        frame = None
        if fast:  # the refresh listed the keys that repeat
            repeats = keyed and keys_repeat(con, since=since, until=until)
            if not repeats:  # one row a request, in order: its position is its key
                frame = routed(read_kept_routed, self.columns, keyed=False)
                frame = frame.with_row_index(KEY_HASH)
        else:
            frame = routed(read_routed, self.columns)
            repeats = keyed and not unique_keys(frame[KEY_HASH])
        if repeats or frame is None:  # attempts to fold: with their keys
            # (ties by the hash still, as without attempts: ``TIE_ORDER``)
            frame = routed(read_routed, [*self.columns, *_FOLDED])
            frame = frame.rename({KEY_HASH: TIE_ORDER})
        copies = [pl.col(name).alias(column) for column, name in self.copied.items()]
        return frame.rename(self.renamed).with_columns(copies)


def whatif_limits(
    db_path: WarehouseTarget,
    settings: ModelsSettings,
    gateway: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    days: int = DEFAULT_DAYS,
    user: str = "user",
    cross_family_ratio: float | None = None,
) -> LimitsReplay:
    """The rate limits and budgets of ``gateway`` (a ``gateway.toml``) replayed over the
    window: refused and rerouted requests per route, user and window, and the spend
    avoided (a reroute priced at its model from the same tokens, at the price file's or
    the catalogue's prices; ``cross_family_ratio`` as for ``--model``). The replay needs
    none of the file's secrets: the variables it names may be unset. ``ConfigError``
    when the file has nothing to replay."""
    # The gateway package (its server, stores and clients) loads in about a second: only
    # this command pays for it, not every command and dashboard page that uses the service.
    from proxy import load_gateway_config  # noqa: PLC0415 - on demand (see above)

    config = load_gateway_config(gateway, AnyEnvironment())
    rules, skipped = _rules(config)
    priced_as = _priced_as(config)
    budgets = _budgets(config, priced_as)
    if not rules and not budgets:
        raise ConfigError(
            f"{gateway}: no route has rate_limits per key, route or metadata, or a budget, "
            "to replay"
        )
    _check_dimensions(settings, [user])
    pers = [rule.per for rule in rules] + [budget.per for budget in budgets]
    keys = sorted({per.removeprefix(_META) for per in pers if per.startswith(_META)})
    wanted = {name: key for name, key in settings.dimensions.items() if name == user}
    # a key the user dimension already reads is copied, not extracted from the JSON again
    # (each extraction parses every request's metadata: about 1.4 s for 10 M requests)
    copied = {_META + key: name for name, key in wanted.items() if key in keys}
    extracted = [key for key in keys if _META + key not in copied]
    columns = {f"limit_key_{index}": key for index, key in enumerate(extracted)}
    narrowed = dataclasses.replace(settings, dimensions={**wanted, **columns})
    notes = [
        f"limits per ip are not replayed (no client address in the logs): {', '.join(skipped)}"
    ]
    routes = [budget.route for budget in budgets]
    replayed = [*_REPLAYED, *(("api_key",) if "key" in pers else ())]
    if user not in wanted:  # a request column or derived dimension, not a metadata key
        replayed.append(user)
    if any(budget.action == "reroute" for budget in budgets):
        replayed.extend(_REPRICED)
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        window = _window(warehouse, settings, since, until, days)
        if window is None:
            empty = _empty("rate limits and budgets")
            return LimitsReplay(empty, pl.DataFrame(), pl.DataFrame())
        reader = _Reader(
            warehouse,
            narrowed,
            config,
            columns=[*replayed, *narrowed.dimensions],
            renamed={name: _META + key for name, key in columns.items()},
            copied=copied,
            kept=(
                warehouse.lake is None and not window.stale and replay_inputs_kept(warehouse.con)
            ),
        )
        replayed_routes = sorted({rule.route for rule in rules} | set(routes))
        frame = reader.read(window.since, window.until, replayed_routes)
        lead = _lead(budgets, window.since)
        earlier = None
        if lead < window.since:  # the recorded spend of the budgets' first periods
            earlier = reader.read(lead, window.since, routes, keyed=False).lazy()
    replay = replay_rate_limits(
        frame.lazy(),
        rules,
        budgets,
        user=user,
        earlier=earlier,
        overrides=_overrides(settings),
        cross_family_ratio=cross_family_ratio,
        priced_as=priced_as,
        checked=True,  # (the reader's keys do not repeat: compared, or none listed)
    )
    answer = window.stamp(replay.whatif)
    answer = dataclasses.replace(answer, notes=(*answer.notes, *notes[: bool(skipped)]))
    return LimitsReplay(answer, replay.users, replay.windows)
