"""Settings of the models: named dimensions, the tenant, and the user price file.

Built once at the edge (the CLI) from ``aigw.toml`` (section ``[models]``) and
passed down; nothing here reads the environment.

    [models]
    prices = "prices.toml"          # user prices (TOML or CSV), win over the catalogue
    tenant = "customer"             # the dimension used for chargeback (optional)

    [models.dimensions]             # dimension name = metadata key
    team = "team"
    user = "user"
    agent = "agent"
    feature = "feature"
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final

from core.errors import ConfigError
from core.settings import check_keys, read_toml, table

__all__ = [
    "BUILTIN_DIMENSIONS",
    "COST_RULES_VERSION",
    "DEFAULT_DIMENSIONS",
    "KIND_DIMENSIONS",
    "ModelsSettings",
    "load_models_settings",
    "models_settings_from",
]

# The kinds of a request (chat, embeddings, images, audio…): as logged (REST), else the
# kind of its endpoint (``core.warehouse.reads.DERIVED_DIMENSIONS``). FOCUS Tags carry them.
KIND_DIMENSIONS: Final = ("request_type", "model_type")
# Columns of `requests` (or derived from them) that are dimensions by themselves.
BUILTIN_DIMENSIONS: Final = (
    "gateway",
    "provider",
    "model",
    "endpoint",
    "api_key",
    *KIND_DIMENSIONS,
)
DEFAULT_DIMENSIONS: Final = {"team": "team", "user": "user", "agent": "agent", "feature": "feature"}
_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True, slots=True)
class ModelsSettings:
    """Named metadata dimensions (name -> metadata key), the tenant dimension, prices."""

    dimensions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_DIMENSIONS))
    tenant: str | None = None
    prices: Path | None = None

    @property
    def all_dimensions(self) -> tuple[str, ...]:
        """Built-in dimensions, then the metadata ones, in order."""
        return (*BUILTIN_DIMENSIONS, *self.dimensions)

    def fingerprint(self) -> str:
        """What the rollups depend on: when it changes they are rebuilt."""
        prices = ""
        if self.prices is not None and self.prices.exists():
            stat = self.prices.stat()
            prices = f"{self.prices.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        dims = ",".join(f"{name}={key}" for name, key in self.dimensions.items())
        return (
            f"builtin[{','.join(BUILTIN_DIMENSIONS)}] dims[{dims}] prices[{prices}] "
            f"rules[{COST_RULES_VERSION}] catalogue[{catalogue_version()}]"
        )


# The version of the cost rules (models.cost, models.request_pricing, models.pricing's
# price_key): raised when a rule changes what a stored request costs, so that the first
# refresh after an upgrade rebuilds every warehouse's rollups at the new rules.
# 2: a custom cost wins; provider-prefixed model names are priced (schema v7).
# 3: a cache hit that tokens cannot price saves an estimate (models.savings); the request
#    and model types are dimensions; 1-hour cache writes at their own rate (schema v9).
COST_RULES_VERSION: Final = 3


@cache
def catalogue_version() -> str:
    """The installed genai-prices version: a new catalogue re-prices history, as a new
    price file does."""
    try:
        return version("genai-prices")
    except PackageNotFoundError:
        return "unknown"


def load_models_settings(path: Path | None) -> ModelsSettings:
    """Settings from ``path`` (a TOML file with a ``[models]`` table), or the defaults."""
    if path is None:
        return ModelsSettings()
    return models_settings_from(path, table(path, read_toml(path), "models"))


def models_settings_from(path: Path, section: Mapping[str, Any]) -> ModelsSettings:
    """Settings from a ``[models]`` table read from ``path``; unknown keys are an error."""
    check_keys(path, section, ("dimensions", "prices", "tenant"), where="[models]")
    dimensions = section.get("dimensions", DEFAULT_DIMENSIONS)
    if not isinstance(dimensions, dict):
        raise ConfigError(f"{path}: [models.dimensions] must be a table of name = metadata key")
    for name, key in dimensions.items():
        if not _NAME.match(name) or name in BUILTIN_DIMENSIONS:
            raise ConfigError(
                f"{path}: [models.dimensions] name {name!r} must be lowercase letters, digits "
                "and _ and not a built-in dimension"
            )
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{path}: [models.dimensions] {name} must name a metadata key")
    tenant = section.get("tenant")
    if tenant is not None and tenant not in dimensions:
        raise ConfigError(f"{path}: [models] tenant {tenant!r} is not one of the dimensions")
    prices = section.get("prices")
    price_path = (path.parent / prices) if isinstance(prices, str) and prices else None
    return ModelsSettings(dimensions=dict(dimensions), tenant=tenant, prices=price_path)
