"""Fixtures for the alert tests: the channel tests' budget alert and refused port."""

from tests.alerts.channel_fixtures import alert, closed_port

__all__ = ["alert", "closed_port"]  # fixtures, for pytest
