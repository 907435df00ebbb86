"""`aigw whatif --limits` on the committed gateway sample, against what the gateway did:
sample_data/gateway-logs were written by a gateway running sample_data/gateway.toml."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson

from tests.conftest import run_aigw

REPO = Path(__file__).resolve().parents[2]
CONFIG = """\
[models.dimensions]
user = "user"
agent = "agent"
"""


def test_replaying_the_sample_gateway_reroutes_what_it_rerouted(tmp_path: Path) -> None:
    """The file's own limits refuse nothing (no record of the sample is rate limited), and
    its chat budget ($2 a day per agent, then gpt-4o-mini) reroutes the summarizer's
    requests of 2026-11-19 once its day's spend reaches $2: the 56 the gateway logged as
    rerouted, and 7 response-cache hits it served under the reroute (a hit's record has
    no RoutingReason). They were served by gpt-4o-mini already: nothing is saved."""
    db, config = tmp_path / "aigw.duckdb", tmp_path / "aigw.toml"
    config.write_text(CONFIG)
    loaded = run_aigw(
        "ingest", str(REPO / "sample_data" / "gateway-logs"), "--db", str(db),
        "--config", str(config),
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    result = run_aigw(
        "whatif", "--limits", str(REPO / "sample_data" / "gateway.toml"), "--db", str(db),
        "--config", str(config), "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer = orjson.loads(result.stdout)
    assert answer["windows"] == [
        {"route": "chat", "limit": "budget", "subject": "summarizer",
         "window_start": "2026-11-19T00:00:00+00:00", "refused_requests": 0,
         "rerouted_requests": 63, "avoided_usd": 0.0},
    ]  # fmt: skip
    assert answer["totals"]["saving_usd"] == 0
    with duckdb.connect(str(db), read_only=True) as con:
        logged = con.execute(
            "SELECT count(*) FILTER (WHERE routing_reason LIKE 'budget spent%'), "
            "count(*) FILTER (WHERE rate_limited) FROM requests"
        ).fetchone()
        hits = con.execute(
            "SELECT count(*) FROM requests WHERE cached AND model = 'gpt-4o-mini' "
            "AND json_extract_string(metadata, '$.agent') = 'summarizer' AND ts >= "
            "(SELECT min(ts) FROM requests WHERE routing_reason LIKE 'budget spent%') "
            "AND ts < TIMESTAMPTZ '2026-11-20 00:00:00+00'"
        ).fetchone()
    assert logged == (56, 0)
    assert hits == (7,)
