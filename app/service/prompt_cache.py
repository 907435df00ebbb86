"""The provider prompt-caching what-if over the warehouse: the window's costed requests
in, ``models.whatif.replay_prompt_cache``'s answer out.

It reads raw requests (one row a request, priced as ``aigw report cost`` prices them):
the replay follows each prompt prefix request by request, which hourly rollups cannot;
given the rollups' totals, only the requests that carry a prefix hash.
Only the metadata dimensions named in ``by`` and ``filters`` are read, and with
``prefixed_only`` only the requests that carry a prefix hash (the savings report: the
scope's other requests and the note counting them are left out). Those come from
``prompt_prefixed_requests``, the copy the rollup refresh keeps, when the caller says the
rollups are current, the warehouse is a DuckDB file (an Iceberg one keeps no copy) and
``by`` and ``filters`` name only the columns it holds; from ``requests`` otherwise, priced
again (the same answer: a test holds the two reads to it). The caller owns the warehouse
(open, read-only) and resolves the window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime

import polars as pl

from core.warehouse import PREFIXED_DIMENSIONS, Warehouse, read_prompt_prefixed
from models import (
    PROMPT_CACHE_COLUMNS,
    ModelsSettings,
    WhatIf,
    costed_requests,
    load_price_file,
    replay_prompt_cache,
)

__all__ = ["prompt_cache_replay"]


def prompt_cache_replay(
    warehouse: Warehouse,
    settings: ModelsSettings,
    since: datetime,
    until: datetime,
    *,
    by: Sequence[str],
    filters: Mapping[str, str] | None = None,
    prefixed_only: bool = False,
    scope: pl.LazyFrame | None = None,
    current: bool = False,
) -> WhatIf:
    """Requests in ``[since, until)`` (UTC) replayed with the provider's prompt cache, by
    ``by`` (dimensions already checked). With ``scope`` (the window's rollup rows by
    ``by`` and the filters' dimensions, with ``requests`` and ``cost_usd``) only the
    requests with a prefix hash are read and priced; the totals come from ``scope``.
    ``current``: the rollups are up to date with the warehouse and the settings (then the
    refresh's copy of the prefixed requests may be read)."""
    names = [*by, *(filters or {})]
    overrides = load_price_file(settings.prices) if settings.prices is not None else None
    prefixed = prefixed_only or scope is not None
    requests: pl.LazyFrame
    if current and prefixed and warehouse.lake is None and set(names) <= set(PREFIXED_DIMENSIONS):
        requests = read_prompt_prefixed(
            warehouse.con, since=since, until=until, columns=names, filters=filters
        ).lazy()
    else:
        dimensions = {name: key for name, key in settings.dimensions.items() if name in names}
        requests = costed_requests(
            warehouse,
            dataclasses.replace(settings, dimensions=dimensions),
            since=since,
            until=until,
            overrides=overrides,
            prompt_prefix_only=prefixed,
            columns=[*PROMPT_CACHE_COLUMNS, *names],
        )
    requests = requests.select(*dict.fromkeys([*PROMPT_CACHE_COLUMNS, *names]))
    empty = scope if scope is not None else requests
    if empty.select(pl.len()).collect().item() == 0:
        return WhatIf("provider prompt caching", pl.DataFrame(), ("no requests in the window",))
    return replay_prompt_cache(requests, overrides=overrides, by=by, filters=filters, scope=scope)
