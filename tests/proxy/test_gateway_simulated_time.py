"""Under ``aigw simulate`` (``simulated_time``) the response cache's TTLs run on the
requests' simulated time: an entry filled at T serves the same request at T + 59 min, not
at T + 61 min (one hour TTL), though the calls come a second apart on the wall clock."""

from __future__ import annotations

from pathlib import Path

from proxy import SIM_TIME_HEADER, GatewayApp, load_gateway_config
from tests.proxy.gateway_fixtures import (
    GATEWAY_KEYS,
    PROVIDER_KEY,
    Running,
    providers,
    read_records,
    write_config,
)
from tests.proxy.servers import serve_asgi

ROUTES = '\n[routes.chat]\nmatch = ["*"]\ncache = true\ncache_ttl_s = 3600\n'
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Status?"}]}
T0 = 1_763_546_400 * 10**9  # a simulated moment (unixnano): 2025-11-19 10:00 UTC
MINUTE = 60 * 10**9


def test_the_simulated_gateway_expires_cache_entries_on_the_simulated_clock(
    tmp_path: Path,
) -> None:
    """Miss at T (fills), hit at T + 59 min, miss at T + 61 min (expired: fills again), hit
    at T + 62 min; one record each, at its simulated minute."""
    with providers() as urls:
        path = write_config(tmp_path, urls, ROUTES)
        config = load_gateway_config(path, {"TEST_PROVIDER_KEY": PROVIDER_KEY})
        with serve_asgi(GatewayApp(config, simulated_time=True), lifespan="on") as url:
            gw = Running(url, *urls, logs=tmp_path / "logs")
            statuses = [
                gw.post(
                    "/v1/chat/completions",
                    BODY,
                    key=GATEWAY_KEYS["team-a"],
                    headers={SIM_TIME_HEADER: str(T0 + minutes * MINUTE)},
                ).headers["cf-aig-cache-status"]
                for minutes in (0, 59, 61, 62)
            ]
    assert statuses == ["MISS", "HIT", "MISS", "HIT"]
    # a record's Timestamp is its request's time plus when its attempt started (ms later)
    records = read_records(tmp_path / "logs")
    assert [((record["Timestamp"] - T0) // MINUTE, record["Cached"]) for record in records] == [
        (0, False),
        (59, True),
        (61, False),
        (62, True),
    ]
