"""Fixtures for the gateway tests: the simulated providers of ``tests.sim``."""

from tests.sim.conftest import StartMock, mock_provider, start_mock

__all__ = ["StartMock", "mock_provider", "start_mock"]
