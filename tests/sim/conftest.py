"""Fixtures for tests that need simulated providers on real uvicorn servers (127.0.0.1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from sim.provider import MockSettings, create_mock_app
from tests.proxy.servers import serve_asgi

StartMock = Callable[..., str]


@pytest.fixture
def start_mock() -> Iterator[StartMock]:
    """Start a simulated provider: ``start_mock(seed=1, error_rate_429=0.1)`` -> base URL.

    Keyword arguments are :class:`MockSettings` fields; each call starts a new app (its own
    counters, prompt cache and recordings) on its own port; all stop at teardown.
    """
    with ExitStack() as stack:

        def start(**settings: object) -> str:
            app = create_mock_app(MockSettings(**settings))  # type: ignore[arg-type]
            return stack.enter_context(serve_asgi(app))

        yield start


@pytest.fixture
def mock_provider(start_mock: StartMock) -> str:
    """Base URL (``http://127.0.0.1:PORT``) of a simulated provider with default settings."""
    return start_mock()
