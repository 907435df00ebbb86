"""The dashboard tests' session warehouse (built once for all their modules)."""

from tests.app.dashboard_fixtures import dashboard_warehouse

__all__ = ["dashboard_warehouse"]
