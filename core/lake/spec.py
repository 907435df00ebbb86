"""Where an Iceberg warehouse lives, from ``aigw.toml``'s ``[warehouse]`` and ``[engine]``.

``[warehouse] kind = "duckdb"`` (the default) is the one DuckDB file; ``kind = "iceberg"``
is a lakehouse: facts in Apache Iceberg tables (a catalog and a location), operational
state (manifest, alert ledger, rollup watermarks) in a SQL database reached through
SQLAlchemy. ``[engine] kind = "local"`` runs the per-object engine in this process,
``"ray"`` on a Ray cluster. Secrets are never values here: a REST catalog's token and
object-store keys come from environment variables named in the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from core.errors import ConfigError
from core.settings import check_keys

__all__ = [
    "DEFAULT_DB_PATH",
    "EngineSpec",
    "LakeSpec",
    "WarehouseTarget",
    "engine_spec_from",
    "warehouse_target_from",
]

DEFAULT_DB_PATH: Final = Path("data/aigw.duckdb")
_WAREHOUSE_KEYS: Final = ("kind", "path", "catalog", "location", "namespace", "state", "s3")
_CATALOG_KEYS: Final = ("type", "uri", "name", "token_env", "warehouse")
_S3_KEYS: Final = ("endpoint", "region", "access_key_env", "secret_key_env")
_ENGINE_KEYS: Final = ("kind", "address", "num_cpus", "batch_objects")


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """Where the per-object engine runs: ``local`` (this process) or ``ray``.

    ``address``: ``local`` starts Ray on this machine for the run, ``auto`` joins the
    cluster this machine belongs to, ``ray://host:10001`` a remote one. ``batch_objects``
    is how many objects one Iceberg commit carries at most.
    """

    kind: str = "local"
    address: str = "local"
    num_cpus: int | None = None
    batch_objects: int = 64


@dataclass(frozen=True, slots=True)
class LakeSpec:
    """An Iceberg warehouse: its catalog, its data location, its state database.

    ``catalog`` holds PyIceberg catalog properties (``type`` ``sql`` or ``rest``, ``uri``
    …; a REST token is read from the variable ``token_env`` names when the catalog is
    opened). ``location`` is a folder or ``s3://bucket/prefix``; ``state`` a SQLAlchemy
    URL. ``s3`` holds the endpoint, region and the names of the key variables.
    """

    location: str
    state: str
    catalog: Mapping[str, str] = field(default_factory=dict)
    namespace: str = "aigw"
    s3: Mapping[str, str] = field(default_factory=dict)
    engine: EngineSpec = field(default_factory=EngineSpec)  # where ingest and rollups run

    def describe(self) -> str:
        """How messages name this warehouse (no secrets: URLs lose their password)."""
        return f"iceberg warehouse {self.namespace} at {self.location}"


WarehouseTarget = Path | LakeSpec
"""What a command opens: the DuckDB file's path, or an Iceberg warehouse."""


def warehouse_target_from(path: Path, section: Mapping[str, Any]) -> WarehouseTarget:
    """The warehouse a ``[warehouse]`` table read from ``path`` names (relative paths
    are relative to the working directory, like ``--db``)."""
    check_keys(path, section, _WAREHOUSE_KEYS, where="[warehouse]")
    kind = _text(path, section, "kind", "duckdb")
    if kind == "duckdb":
        for key in ("catalog", "location", "state", "s3"):
            if key in section:
                raise ConfigError(f'{path}: [warehouse] {key} needs kind = "iceberg"')
        return Path(_text(path, section, "path", str(DEFAULT_DB_PATH)))
    if kind != "iceberg":
        raise ConfigError(f'{path}: [warehouse] kind must be "duckdb" or "iceberg", not {kind!r}')
    location = _text(path, section, "location", "")
    if not location:
        raise ConfigError(f'{path}: [warehouse] location is required with kind = "iceberg"')
    state = _text(path, section, "state", "")
    if not state:
        raise ConfigError(
            f'{path}: [warehouse] state is required with kind = "iceberg" '
            "(sqlite:///data/state.db, or postgresql+psycopg://… for several machines)"
        )
    catalog = _subtable(path, section, "catalog", _CATALOG_KEYS)
    kind_of_catalog = catalog.setdefault("type", "sql")
    if kind_of_catalog not in {"sql", "rest"}:
        raise ConfigError(f'{path}: [warehouse] catalog type must be "sql" or "rest"')
    if "uri" not in catalog:
        raise ConfigError(f"{path}: [warehouse] catalog needs a uri")
    if "path" in section:
        raise ConfigError(f'{path}: [warehouse] path is for kind = "duckdb"')
    return LakeSpec(
        location=location,
        state=state,
        catalog=catalog,
        namespace=_text(path, section, "namespace", "aigw"),
        s3=_subtable(path, section, "s3", _S3_KEYS),
    )


def engine_spec_from(path: Path, section: Mapping[str, Any]) -> EngineSpec:
    """The ``[engine]`` table read from ``path``."""
    check_keys(path, section, _ENGINE_KEYS, where="[engine]")
    kind = _text(path, section, "kind", "local", "[engine]")
    if kind not in {"local", "ray"}:
        raise ConfigError(f'{path}: [engine] kind must be "local" or "ray", not {kind!r}')
    cpus = section.get("num_cpus")
    if cpus is not None and (not isinstance(cpus, int) or isinstance(cpus, bool) or cpus < 1):
        raise ConfigError(f"{path}: [engine] num_cpus must be a whole number of 1 or more")
    batch = section.get("batch_objects", 64)
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 10_000:
        raise ConfigError(f"{path}: [engine] batch_objects must be a whole number from 1 to 10000")
    return EngineSpec(
        kind=kind,
        address=_text(path, section, "address", "local", "[engine]"),
        num_cpus=cpus,
        batch_objects=batch,
    )


def _text(
    path: Path, section: Mapping[str, Any], key: str, default: str, where: str = "[warehouse]"
) -> str:
    value = section.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{path}: {where} {key} must be a string")
    return value


def _subtable(
    path: Path, section: Mapping[str, Any], key: str, allowed: tuple[str, ...]
) -> dict[str, str]:
    value = section.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [warehouse] {key} must be a table")
    check_keys(path, value, allowed, where=f"[warehouse] {key}")
    for name, item in value.items():
        if not isinstance(item, str):
            raise ConfigError(f"{path}: [warehouse] {key}.{name} must be a string")
    return dict(value)


def make_sqlite_folder(url: str) -> None:
    """SQLite creates its file but not the folder: make the folder of a ``sqlite:///`` URL
    (nothing for an in-memory database or another driver)."""
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""
    if path and not path.startswith(":memory:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
