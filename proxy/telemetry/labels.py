"""Bounded label values for the gateway's metrics.

Provider and model names reach the gateway from clients (a model may be any string, a
cached answer names the provider that once served it), so they are not used as label
values as they come: each metric series costs memory in the gateway and in Prometheus for
as long as it lives. A provider is its name when ``gateway.toml`` defines it, else
``other``; a model is its name when a route names it exactly, or once an answer for it was
priced (it is in the price catalogue or the price file), up to ``max_models`` such names;
every other model is ``other``. No key, user, metadata value or prompt is ever a label.

Used on the gateway's event loop only (not thread-safe).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = ["NONE", "OTHER", "LabelBounds"]

OTHER: Final = "other"  # a name past the bounds
NONE: Final = "none"  # no value (a request refused before any provider or route)


class LabelBounds:
    """Which provider and model names may be label values (see the module docstring)."""

    def __init__(self, providers: Iterable[str], models: Iterable[str], max_models: int) -> None:
        self._providers = frozenset(providers)
        self._models = set(models)  # route-named models do not count against max_models
        self._most = len(self._models) + max_models

    def provider(self, name: str | None) -> str:
        """``name`` if the gateway defines that provider; ``none`` or ``other`` otherwise."""
        if name is None:
            return NONE
        return name if name in self._providers else OTHER

    def model(self, name: str | None, *, priced: bool = False) -> str:
        """``name`` if it is a label value already, or becomes one now (``priced``: an answer
        for it was priced) while fewer than the limit are; ``none`` or ``other`` otherwise."""
        if name is None:
            return NONE
        if name in self._models:
            return name
        if priced and len(self._models) < self._most:
            self._models.add(name)
            return name
        return OTHER


def route_models(matches: Iterable[str]) -> list[str]:
    """The models routes name exactly (globs without wildcards), without ``provider/``."""
    return [g.split("/", 1)[-1] for g in matches if not any(c in g for c in "*?[")]
