"""Simulated-provider benchmark: requests/s of `aigw mock-provider` alone, 0 ms latency.

    python bench/mock_provider.py [--connections 50] [--seconds 10] [--prompts 1000] [--pin]

Starts `aigw mock-provider --port 0` in its own process (as the gateway benchmark does),
then drives it from this process with aiohttp over ``--connections`` keep-alive connections
to 127.0.0.1 for ``--seconds`` per scenario: a plain chat completion, a streamed one (with
usage), and an Anthropic message. Bodies cycle through ``--prompts`` distinct prompts.
Prints requests/s, the median and p99 latency, and the server's CPU time per request (what
it takes from the gateway in the gateway benchmark) per scenario; stops the server with
SIGTERM. With ``--pin`` the server runs on CPU 0 and the load generator on CPU 1, so the
server's number is one core's worth. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent


def _bodies(kind: str, count: int) -> list[dict[str, Any]]:
    prompt = "Summarise the quarterly report for team {i} in three bullet points."
    if kind == "messages":
        return [
            {
                "model": "claude-haiku-4-5",
                "max_tokens": 256,
                "messages": [{"role": "user", "content": prompt.format(i=i)}],
            }
            for i in range(count)
        ]
    extra: dict[str, Any] = {"max_tokens": 256}
    if kind == "stream":
        extra |= {"stream": True, "stream_options": {"include_usage": True}}
    return [
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt.format(i=i)}]}
        | extra
        for i in range(count)
    ]


async def _drive(
    base: str, path: str, bodies: list[dict[str, Any]], connections: int, seconds: float
) -> tuple[float, list[float]]:
    """Send requests over ``connections`` workers until ``seconds`` pass; (elapsed, latencies)."""
    latencies: list[float] = []
    begun = time.monotonic()
    deadline = begun + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(offset: int) -> None:
            index = offset
            while time.monotonic() < deadline:
                started = time.perf_counter()
                async with session.post(base + path, json=bodies[index % len(bodies)]) as reply:
                    await reply.read()
                    if reply.status != 200:
                        raise RuntimeError(f"{path} answered {reply.status}")
                latencies.append(time.perf_counter() - started)
                index += connections

        await asyncio.gather(*(worker(offset) for offset in range(connections)))
    return time.monotonic() - begun, latencies


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_server() -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "mock-provider", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None  # noqa: S101 - set by stderr=PIPE
    line = process.stderr.readline().decode()
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"mock provider did not start: {line.strip()}")
    return process, line.split()[4]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--pin", action="store_true", help="server on CPU 0, load on CPU 1")
    args = parser.parse_args()
    process, base = _start_server()
    if args.pin:
        os.sched_setaffinity(process.pid, {0})
        os.sched_setaffinity(0, {1})
    try:
        print(f"mock provider at {base}; {args.connections} connections, {args.seconds:g} s each")
        where = "server on CPU 0, load on CPU 1" if args.pin else "server and load share them"
        print(f"cores: {os.cpu_count()}; {where}")
        scenarios = [
            ("chat", "/v1/chat/completions"),
            ("stream", "/v1/chat/completions"),
            ("messages", "/v1/messages"),
        ]
        for kind, path in scenarios:
            bodies = _bodies(kind, args.prompts)
            asyncio.run(_drive(base, path, bodies, args.connections, 1.0))  # warm-up
            cpu_before = _cpu_seconds(process.pid)
            elapsed, latencies = asyncio.run(
                _drive(base, path, bodies, args.connections, args.seconds)
            )
            cpu_per_request = (_cpu_seconds(process.pid) - cpu_before) / len(latencies)
            done = len(latencies)
            latencies.sort()
            median = latencies[len(latencies) // 2] * 1000
            p99 = latencies[int(len(latencies) * 0.99)] * 1000
            print(
                f"{kind:9s} {done / elapsed:8,.0f} req/s   "
                f"median {median:6.1f} ms   p99 {p99:6.1f} ms   "
                f"server CPU {cpu_per_request * 1e6:5.0f} us/request   ({done:,} requests)"
            )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


if __name__ == "__main__":
    main()
