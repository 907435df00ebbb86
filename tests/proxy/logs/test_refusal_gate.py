"""``RefusalGate``: how many records of refused unauthenticated requests are kept per window,
and the one warning line that counts the rest."""

from __future__ import annotations

import logging

import pytest

from proxy.logs import RefusalGate


class _Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_records_per_ip_and_in_all_per_window_then_a_fresh_window() -> None:
    """2 per IP and 3 in all per 60 s: the third from one IP and the fourth overall are left
    out; 60 s later both counts start again."""
    clock = _Clock()
    gate = RefusalGate(per_ip=2, overall=3, window_s=60.0, clock=clock)
    kept = [gate.allow(ip) for ip in ("a", "a", "a", "b", "c", None)]
    assert (kept, gate.left_out) == ([True, True, False, True, False, False], 3)
    clock.now += 59.9
    assert gate.allow("d") is False
    clock.now += 0.1
    assert [gate.allow("a"), gate.allow("a"), gate.allow("a")] == [True, True, False]
    assert gate.left_out == 5


def test_summary_is_one_warning_with_the_count_then_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``summarise`` logs how many were left out once; with none left out it is silent."""
    gate = RefusalGate(per_ip=1, overall=10, window_s=60.0, clock=_Clock())
    for _ in range(4):
        gate.allow("10.0.0.9")
    with caplog.at_level(logging.WARNING, logger="aigw.proxy"):
        gate.summarise()
        gate.summarise()
    assert [r.getMessage() for r in caplog.records] == [
        "3 records of refused unauthenticated requests left out "
        "(limits: 1 per client IP, 10 in all, per 60 s)"
    ]
    assert gate.left_out == 0
