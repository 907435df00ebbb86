"""The settings of one command, built once at the edge from flags, the environment and
``aigw.toml``, then passed down (nothing below reads the environment or the file).

Precedence, highest first: a flag, then its environment variable, then ``aigw.toml``,
then the built-in default. ``aigw.toml`` is ``--config``, else ``$AIGW_CONFIG``, else
``./aigw.toml`` when present; its only tables are ``[models]`` and ``[ingest]``, and any
other key is an error naming the file and the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from core.settings import budgets_file, check_keys, config_file, read_toml, table
from ingest import IngestFileOptions, ingest_options_from
from models import ModelsSettings, models_settings_from

__all__ = ["PRIVATE_KEY_ENV", "Settings", "load_settings"]

PRIVATE_KEY_ENV: Final = "AIGW_PRIVATE_KEY"  # the PEM itself (AIGW_PRIVATE_KEY_FILE: a path)
_SECTIONS: Final = ("models", "ingest")


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
    return dataclasses.replace(
        base,
        models=models_settings_from(path, table(path, document, "models")),
        ingest=ingest_options_from(path, table(path, document, "ingest")),
    )
