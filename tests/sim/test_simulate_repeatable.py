"""`aigw simulate` over one connection (its default) is repeatable: the same seed gives the
same records, ids and durations aside, so `make demo` prints the same figures every run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.simulate import simulate
from tests.proxy.gateway_fixtures import read_records

CONFIG = Path(__file__).resolve().parents[2] / "sample_data" / "gateway.toml"
# what a record says about its call: all but its id, its clock, its durations and the
# hash of the answer's bytes (the provider's answer carries a fresh id and creation time)
VARYING = {"LogId", "Timestamp", "ResponseSha256"}


def _calls(out: Path) -> list[tuple[Any, ...]]:
    """The records under ``out`` without their varying fields, in a stable order."""
    kept = []
    for record in read_records(out):
        metrics = {k: v for k, v in record.get("Metrics", {}).items() if k != "durationMs"}
        fields = {k: v for k, v in record.items() if k not in VARYING | {"Metrics"}}
        kept.append(tuple(sorted((k, repr(v)) for k, v in {**fields, **metrics}.items())))
    return sorted(kept)


def test_the_same_seed_gives_the_same_records_over_one_connection(tmp_path: Path) -> None:
    """Two runs of 400 calls (seed 11) write the same records: statuses, refusals, cache
    hits, failovers, tokens and costs, call for call. The per-agent token limit is cut to
    2,000 a minute so that rate-limit refusals (32 here) are part of what is compared."""
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG.read_text().replace("limit = 40000", "limit = 2000"))
    first = simulate(config, tmp_path / "a", requests=400, seed=11)
    second = simulate(config, tmp_path / "b", requests=400, seed=11)
    assert first.statuses[429] == 32
    assert first.statuses == second.statuses
    assert (first.cache_hits, first.failovers) == (second.cache_hits, second.failovers)
    calls = _calls(tmp_path / "a")
    assert len(calls) >= 400
    assert calls == _calls(tmp_path / "b")
