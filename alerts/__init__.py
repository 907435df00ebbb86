"""Budget and anomaly alerts that fire once per crossing, to Slack, webhooks, email or an outbox."""

from alerts.config import AlertsConfig, AnomalyRule, Budget, ChannelSpec, load_alerts_config
from alerts.errors import AlertsError, BudgetConfigError, DeliveryError
from alerts.evaluate import period_bounds
from alerts.message import Alert, alert_id
from alerts.run import AlertsRunResult, build_channel, run_alerts

__all__ = [
    "Alert",
    "AlertsConfig",
    "AlertsError",
    "AlertsRunResult",
    "AnomalyRule",
    "Budget",
    "BudgetConfigError",
    "ChannelSpec",
    "DeliveryError",
    "alert_id",
    "build_channel",
    "load_alerts_config",
    "period_bounds",
    "run_alerts",
]
