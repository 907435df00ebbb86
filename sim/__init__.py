"""Simulation equipment for the demo, the tests and the benchmarks: a simulated provider
(OpenAI and Anthropic shapes, outages, prompt caching), planned traffic, ``aigw simulate``
(the gateway driven by that traffic) and synthetic Logpush files.

Only the CLI, tests, bench and sample_data import this package; the product never does.
"""

from sim.provider import MockSettings, create_mock_app, run_mock_provider
from sim.simulate import SimulationSummary, simulate
from sim.synthetic import RunawayAgent, TrafficShape, synthetic_records, write_logpush_files

__all__ = [
    "MockSettings",
    "RunawayAgent",
    "SimulationSummary",
    "TrafficShape",
    "create_mock_app",
    "run_mock_provider",
    "simulate",
    "synthetic_records",
    "write_logpush_files",
]
