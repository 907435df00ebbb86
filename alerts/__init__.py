"""Budget and anomaly alerts. Not built yet: see the alerts issue."""
