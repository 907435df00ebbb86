"""Errors of the alerts package (part of the tree rooted at ``ingest.errors.AigwError``)::

AigwError
└── AlertsError
    ├── BudgetConfigError   budgets.toml is invalid (names file, budget, key); nothing is sent
    └── DeliveryError       a channel could not deliver (``transient``: retry later)
"""

from __future__ import annotations

from ingest.errors import AigwError

__all__ = ["AlertsError", "BudgetConfigError", "DeliveryError"]


class AlertsError(AigwError):
    """Alerts could not be evaluated or sent."""


class BudgetConfigError(AlertsError):
    """The budgets file is invalid; carries the file, the budget and the key."""

    def __init__(
        self, message: str, *, path: str, budget: str | None = None, key: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.budget = budget
        self.key = key


class DeliveryError(AlertsError):
    """A channel did not accept an alert. ``transient`` errors are retried (next run too)."""

    def __init__(self, message: str, *, channel: str, transient: bool = True) -> None:
        super().__init__(message)
        self.channel = channel
        self.transient = transient
