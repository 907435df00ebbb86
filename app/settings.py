"""The settings of one command, built once at the edge from flags, the environment and
``aigw.toml``, then passed down (nothing below reads the environment or the file).

Precedence, highest first: a flag, then its environment variable, then ``aigw.toml``,
then the built-in default. ``aigw.toml`` is ``--config``, else ``$AIGW_CONFIG``, else
``./aigw.toml`` when present; its only tables are ``[models]``, ``[ingest]``,
``[warehouse]``, ``[engine]``, ``[statements]``, ``[outcomes]`` and ``[whatif]``, and any
other key is an error naming the file and the key.

The warehouse: ``--db`` (or ``$AIGW_DB``) naming a file other than the default is that
DuckDB file; otherwise ``[warehouse]`` decides (``kind = "iceberg"``: a lakehouse).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from core.lake import (
    DEFAULT_DB_PATH,
    EngineSpec,
    LakeSpec,
    WarehouseTarget,
    engine_spec_from,
    warehouse_target_from,
)
from core.settings import budgets_file, check_keys, config_file, read_toml, table
from ingest import IngestFileOptions, ingest_options_from
from models import (
    ModelsSettings,
    OutcomeSettings,
    StatementSettings,
    WhatIfSettings,
    models_settings_from,
    outcome_settings_from,
    statement_settings_from,
    whatif_settings_from,
)

__all__ = ["PRIVATE_KEY_ENV", "Settings", "load_settings", "resolve_warehouse"]

PRIVATE_KEY_ENV: Final = "AIGW_PRIVATE_KEY"  # the PEM itself (AIGW_PRIVATE_KEY_FILE: a path)
_SECTIONS: Final = ("models", "ingest", "warehouse", "engine", "statements", "outcomes", "whatif")


@dataclass(frozen=True, slots=True)
class Settings:
    """What ``aigw.toml`` and the environment say, resolved once.

    ``budgets_path`` is the budgets file that applies when no ``--budgets`` is given (None:
    no budgets). ``private_key_pem`` is a secret: it is never printed (see ``__repr__``).
    """

    config_path: Path | None = None
    models: ModelsSettings = field(default_factory=ModelsSettings)
    ingest: IngestFileOptions = field(default_factory=IngestFileOptions)
    budgets_path: Path | None = None
    private_key_pem: bytes | None = None
    warehouse: WarehouseTarget = DEFAULT_DB_PATH  # an Iceberg one carries its [engine]
    statements: StatementSettings = field(default_factory=StatementSettings)
    outcomes: OutcomeSettings = field(default_factory=OutcomeSettings)
    whatif: WhatIfSettings = field(default_factory=WhatIfSettings)

    def warehouse_for(self, db: Path) -> WarehouseTarget:
        """The warehouse a command opens: ``db`` when it names another file than the
        default, else what ``[warehouse]`` says (the default file when it says nothing)."""
        if Path(db) != DEFAULT_DB_PATH:
            return Path(db)
        return self.warehouse

    def __repr__(self) -> str:
        return f"Settings(config_path={self.config_path!r}, budgets_path={self.budgets_path!r})"


def load_settings(
    config: Path | None, environ: Mapping[str, str], *, budgets: Path | None = None
) -> Settings:
    """Read ``aigw.toml`` (``config``, else the environment's, else ./aigw.toml) once."""
    path = config_file(config, environ)
    pem = environ.get(PRIVATE_KEY_ENV)
    base = Settings(
        config_path=path,
        budgets_path=budgets_file(budgets, environ),
        private_key_pem=pem.encode() if pem else None,
    )
    if path is None:
        return base
    document = read_toml(path)
    check_keys(path, document, _SECTIONS)
    engine = engine_spec_from(path, table(path, document, "engine"))
    return dataclasses.replace(
        base,
        models=models_settings_from(path, table(path, document, "models")),
        ingest=ingest_options_from(path, table(path, document, "ingest")),
        warehouse=_with_engine(
            warehouse_target_from(path, table(path, document, "warehouse")), engine
        ),
        statements=statement_settings_from(path, table(path, document, "statements")),
        outcomes=outcome_settings_from(path, table(path, document, "outcomes")),
        whatif=whatif_settings_from(path, table(path, document, "whatif")),
    )


def _with_engine(target: WarehouseTarget, engine: EngineSpec) -> WarehouseTarget:
    """An Iceberg warehouse with the engine that runs its ingest and rollups."""
    return dataclasses.replace(target, engine=engine) if isinstance(target, LakeSpec) else target


def resolve_warehouse(db: Path, config: Path | None, environ: Mapping[str, str]) -> WarehouseTarget:
    """The warehouse for ``--db`` and ``aigw.toml`` (see the module)."""
    return load_settings(config, environ).warehouse_for(db)
