"""``aigw maintain``: compact an Iceberg warehouse's small files and expire old snapshots
(``core.lake.maintain``)."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Annotated, Final

import typer

from app.console import ConfigOption, VerboseOption, out, user_errors
from app.settings import load_settings
from core.errors import ConfigError
from core.lake import LakeSpec

__all__ = ["maintain_command", "parse_age"]

_AGE: Final = re.compile(r"^(\d+)\s*(d|h|m)$")
_UNIT: Final = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}


def parse_age(value: str) -> timedelta:
    """A retention from ``7d``, ``12h`` or ``30m``."""
    match = _AGE.match(value.strip())
    if match is None:
        raise ConfigError(f"--older-than {value!r} must look like 7d, 12h or 30m")
    return int(match.group(1)) * _UNIT[match.group(2)]


def maintain_command(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Expire snapshots older than this (7d, 12h, 30m); the current one stays.",
        ),
    ] = "7d",
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Compact each day's small data files into large ones, expire old snapshots and delete
    the data and metadata files they alone referenced (Iceberg warehouses; R2 Data Catalog
    can do this itself)."""
    with user_errors(verbose):
        age = parse_age(older_than)
        target = load_settings(config, os.environ).warehouse
        if not isinstance(target, LakeSpec):
            raise ConfigError(
                'aigw maintain is for Iceberg warehouses ([warehouse] kind = "iceberg"); '
                "the DuckDB file needs no maintenance"
            )
        from core.lake.lake import Lake  # noqa: PLC0415 - the lake extra, on demand
        from core.lake.maintain import maintain  # noqa: PLC0415

        with Lake(target) as lake:
            result = maintain(lake, older_than=age)
    files = ", ".join(
        f"{t.name} {t.files_before} → {t.files_after}"
        + (f" ({_days(t.days_compacted)} compacted)" if t.days_compacted else "")
        for t in result.tables
        if t.files_before != t.files_after or t.days_compacted
    )
    out.print(f"data files: {files or 'nothing to compact'}", markup=False)
    kept = sum(t.kept for t in result.tables)
    line = f"snapshots expired: {result.expired} (older than {older_than})"
    if result.recorded:
        line += f"; {result.recorded} objects recorded in the manifest from snapshot summaries"
    if kept:
        line += f"; {kept} kept (they name objects the manifest does not record yet)"
    out.print(line, markup=False)
    if result.deleted:
        out.print(
            f"data files deleted: {result.deleted} (no remaining snapshot reads them)",
            markup=False,
        )
    if result.metadata_deleted:
        out.print(
            f"metadata files deleted: {result.metadata_deleted} (manifests, manifest lists "
            "and metadata.json files the current metadata no longer references)",
            markup=False,
        )


def _days(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"
