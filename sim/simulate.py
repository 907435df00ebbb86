"""``aigw simulate``: realistic traffic through the real gateway, on 127.0.0.1 only.

Starts two simulated providers (OpenAI-shaped and Anthropic-shaped, seeded), the
gateway with the given ``gateway.toml`` pointed at them, and sends the planned calls
over HTTP with a few connections. The gateway runs on a simulated clock (each call
carries its planned time), so eight days of traffic take seconds, and writes its
Logpush files to ``out``. The OpenAI provider is down for a stretch of the calls:
the route's fallback serves them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvicorn

from proxy import SIM_TIME_HEADER, GatewayApp, GatewayConfig, load_gateway_config
from sim.provider import MockSettings, create_mock_app
from sim.traffic import PlannedCall, plan_traffic

__all__ = ["SimulationSummary", "simulate"]

MOCK_KEY_ENV = "AIGW_SIMULATED_PROVIDER_KEY"
_MOCK_KEY = "simulated-provider-key"


@dataclass(slots=True)
class SimulationSummary:
    """What the gateway answered, by HTTP status and cache status."""

    calls: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    cache_hits: int = 0
    failovers: int = 0  # answers served by a fallback (cf-aig-step > 0)
    out: str = ""


def simulate(
    config_path: Path,
    out: Path,
    *,
    requests: int,
    seed: int,
    concurrency: int = 1,
    environ: Mapping[str, str] | None = None,
) -> SimulationSummary:
    """Run the simulation to the end; the gateway's logs are flushed into ``out``.

    With one connection (the default) the same seed gives the same records, ids and
    durations aside. With more, calls overlap: which ones a token rate limit refuses, and
    which repeats find their answer cached yet, then depend on the order answers return.
    """
    env = {**(environ or {}), MOCK_KEY_ENV: _MOCK_KEY}
    config = load_gateway_config(config_path, env)
    return asyncio.run(_run(config, out, requests=requests, seed=seed, concurrency=concurrency))


async def _serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            lifespan="auto",
            log_level="warning",
            access_log=False,
            loop="none",
            http="httptools",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped at start-up")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


async def _run(
    config: GatewayConfig, out: Path, *, requests: int, seed: int, concurrency: int
) -> SimulationSummary:
    plan = plan_traffic(requests, seed=seed)
    openai_mock = await _serve(create_mock_app(MockSettings(seed=seed, api_key=_MOCK_KEY)))
    anthropic_mock = await _serve(create_mock_app(MockSettings(seed=seed + 1, api_key=_MOCK_KEY)))
    urls = {"openai": f"{openai_mock[2]}/v1", "anthropic": anthropic_mock[2]}
    with tempfile.TemporaryDirectory(prefix="aigw-simulate-") as scratch:
        providers = {
            name: dataclasses.replace(p, base_url=urls[p.kind])
            for name, p in config.providers.items()
        }
        config = dataclasses.replace(
            config,
            providers=providers,
            logs=dataclasses.replace(
                config.logs,
                destination=str(out),
                spool_dir=f"{scratch}/spool",
                max_interval_s=3600.0,
                max_records=500,  # several files, as a day of Logpush would make
            ),
            cache_url=None,
            cache_path=f"{scratch}/cache.sqlite",
            state_url=None,
        )
        gateway = await _serve(GatewayApp(config, simulated_time=True))
        summary = SimulationSummary(out=str(out))
        try:
            await _send_all(
                plan.calls,
                outage=plan.outage,
                gateway_url=gateway[2],
                openai_url=openai_mock[2],
                concurrency=concurrency,
                summary=summary,
            )
        finally:
            for server, task, _ in (gateway, openai_mock, anthropic_mock):
                server.should_exit = True
                await task
    return summary


async def _send_all(
    calls: tuple[PlannedCall, ...],
    *,
    outage: tuple[int, int],
    gateway_url: str,
    openai_url: str,
    concurrency: int,
    summary: SimulationSummary,
) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        pending: set[asyncio.Task[None]] = set()
        for index, call in enumerate(calls):
            if index in outage:  # the outage starts and ends between calls
                await asyncio.gather(*pending)
                pending.clear()
                method = "POST" if index == outage[0] else "DELETE"
                async with session.request(
                    method, f"{openai_url}/_mock/outage", json={"status": 503, "seconds": 86400}
                ) as response:
                    response.raise_for_status()
            if len(pending) >= concurrency:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pending.add(asyncio.create_task(_send(session, gateway_url, call, summary)))
        await asyncio.gather(*pending)


async def _send(
    session: aiohttp.ClientSession, url: str, call: PlannedCall, summary: SimulationSummary
) -> None:
    headers = {
        "authorization": f"Bearer {call.gateway_key}",
        "cf-aig-metadata": orjson.dumps(call.metadata).decode(),
        SIM_TIME_HEADER: str(call.ts_ns),
        "content-type": "application/json",
        **dict(call.headers),
    }
    async with session.post(
        url + call.path, data=orjson.dumps(call.body), headers=headers
    ) as response:
        await response.read()
        summary.calls += 1
        summary.statuses[response.status] += 1
        if response.headers.get("cf-aig-cache-status") == "HIT":
            summary.cache_hits += 1
        if response.headers.get("cf-aig-step", "0") != "0":
            summary.failovers += 1
