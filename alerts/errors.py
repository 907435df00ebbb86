"""The alerts branch of aigw's error tree (drawn whole in ``core.errors``)."""

from core.errors import AlertsError, BudgetConfigError, DeliveryError

__all__ = ["AlertsError", "BudgetConfigError", "DeliveryError"]
