"""Settings of the what-ifs: which traffic could wait for a batch API, and its discount.

Built once at the edge (the CLI) from ``aigw.toml`` (section ``[whatif]``) and passed
down; nothing here reads the environment.

    [whatif]
    batch_key = "interactive"       # metadata key that marks traffic able to wait (optional)
    batch_values = ["false"]        # its values meaning "not interactive" (default: false, no, 0)

    [whatif.batch_discount]         # gateway provider slug = share off the standard price
    openai = 0.5                    # (defaults: openai and anthropic 0.5, their batch APIs;
    azure-openai = 0.5              # 0 turns a default off)

``batch_key`` must be the metadata key of a ``[models.dimensions]`` entry, so that the
rollups carry it (the what-if then reads rollups, not raw requests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from core.errors import ConfigError
from core.settings import check_keys, table

__all__ = [
    "DEFAULT_BATCH_DISCOUNT",
    "DEFAULT_BATCH_VALUES",
    "WhatIfSettings",
    "whatif_settings_from",
]

# OpenAI's Batch API and Anthropic's Message Batches API both bill 50% of the standard
# rates (openai.com/api/pricing, docs.anthropic.com "Batch processing", checked 2026-12).
DEFAULT_BATCH_DISCOUNT: Final = {"openai": 0.5, "anthropic": 0.5}
DEFAULT_BATCH_VALUES: Final = ("false", "no", "0")


@dataclass(frozen=True, slots=True)
class WhatIfSettings:
    """``batch_key``: metadata key marking non-interactive traffic (None: not set);
    ``batch_values``: its values that mean non-interactive; ``batch_discount``: per
    gateway provider slug, the share of the standard price a batch API takes off when the
    price catalogue has no batch price for the model."""

    batch_key: str | None = None
    batch_values: tuple[str, ...] = DEFAULT_BATCH_VALUES
    batch_discount: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_BATCH_DISCOUNT)
    )


def whatif_settings_from(path: Path, section: Mapping[str, Any]) -> WhatIfSettings:
    """Settings from a ``[whatif]`` table read from ``path``; unknown keys are an error."""
    check_keys(path, section, ("batch_key", "batch_values", "batch_discount"), where="[whatif]")
    key = section.get("batch_key")
    if key is not None and (not isinstance(key, str) or not key):
        raise ConfigError(f"{path}: [whatif] batch_key must name a metadata key")
    values = section.get("batch_values", list(DEFAULT_BATCH_VALUES))
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ConfigError(f'{path}: [whatif] batch_values must list strings (e.g. ["false"])')
    discounts = {**DEFAULT_BATCH_DISCOUNT, **table(path, section, "batch_discount")}
    for provider, share in discounts.items():
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
            raise ConfigError(
                f"{path}: [whatif.batch_discount] {provider} must be a share from 0 to below 1 "
                "(0.5: half price)"
            )
    return WhatIfSettings(
        batch_key=key,
        batch_values=tuple(values),
        batch_discount={str(name): float(share) for name, share in discounts.items()},
    )
