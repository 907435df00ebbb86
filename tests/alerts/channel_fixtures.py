"""Shared by the channel tests: test secrets, a budget alert to deliver, a refused port and
a sleep that records its delays. The fixtures reach the tests through this folder's conftest."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

import pytest

from alerts.message import Alert, alert_id

SLACK_TOKEN = "T0SECRET/B0SECRET/XXslacktokenXX"  # noqa: S105 (a test value)
WEBHOOK_SECRET = "whsec-do-not-print"  # noqa: S105
SMTP_PASSWORD = "smtp-pass-do-not-print"  # noqa: S105


@pytest.fixture
def alert() -> Alert:
    """A budget alert with characters that need escaping in Slack and HTML."""
    return Alert(
        alert_id=alert_id("team-budget", "agent=summarizer", "2026-11", 0.8),
        kind="budget",
        rule="team-budget",
        scope="agent=summarizer",
        period_start=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        period_end=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        threshold=0.8,
        spent_usd=812.5,
        budget_usd=1000.0,
        forecast_usd=1290.0,
        top_contributors=[("gpt-4o", 500.0), ("claude-sonnet", 250.0), ("gpt-4o-mini", 62.5)],
        dashboard_url="http://127.0.0.1:8501/budgets?name=team-budget&period=2026-11",
        detail="Spend <rising> & steady",
    )


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def no_sleep() -> tuple[list[float], Any]:
    delays: list[float] = []
    return delays, delays.append
