"""Optional extras: a command that needs a package aigw does not install by default says,
in one line, which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from core.errors import ConfigError

__all__ = ["MissingExtra", "require", "require_lake"]


class MissingExtra(ConfigError):
    """A feature needs an optional extra that is not installed."""


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module``; ``MissingExtra`` naming ``pip install 'aigw[extra]'`` if absent."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtra(
            f"{feature} needs the {extra} extra: pip install 'aigw[{extra}]'",
            detail=f"import {module}: {err}",
        ) from err


def require_lake() -> None:
    """Check that the ``lake`` extra is installed before any of its modules is imported
    (``MissingExtra`` otherwise): PyIceberg and SQLAlchemy."""
    for module in ("pyiceberg.catalog", "sqlalchemy"):
        require(module, extra="lake", feature="the iceberg warehouse")
