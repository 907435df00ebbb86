"""Fault script: `aigw proxy` killed with SIGKILL under load loses no answered request.

    python bench/gateway_kill.py [--clients 20] [--seconds 20] [--kill-at 10] [--rounds 3]
                                 [--stream]

Each round starts, on 127.0.0.1, a simulated provider (`aigw mock-provider`, 20 ms) and
`aigw proxy` whose batches are held for an hour (``max_interval_s = 3600``: nothing is
uploaded before the kill, the worst case). ``--clients`` connections send chat requests,
each with its own ``cf-aig-event-id``, and note when each answer completed. At
``--kill-at`` seconds the gateway gets SIGKILL; a new `aigw proxy` with the same spool
starts, recovers the journals and is stopped with SIGTERM (which uploads). Then every
answered request must have exactly one record: the script prints, per round, the
requests answered, those answered more than ``sync_interval_s`` (0.2 s) before the kill,
how many of those have no record (the guarantee: 0), how many of the last 0.2 s have none
(allowed), and duplicate records. With ``--stream`` the answers are streamed (chunks 10 ms
apart: the kill falls in the middle of streams). Not a test: a fault injection.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Final

import aiohttp

REPO: Final = Path(__file__).resolve().parent.parent
AIGW: Final = [sys.executable, "-m", "app"]
KEY: Final = "gw-kill-bench"
SYNC_INTERVAL_S: Final = 0.2
CONFIG: Final = """
[server]
gateway = "kill"
[[auth.keys]]
id = "bench"
team = "bench"
sha256 = "{key_sha}"
[providers.openai]
kind = "openai"
base_url = "{provider}/v1"
api_key_env = "BENCH_PROVIDER_KEY"
[logs]
destination = "{folder}/logs"
spool_dir = "{folder}/spool"
max_interval_s = 3600
sync_interval_s = {sync}
[cache]
path = "{folder}/cache.sqlite"
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start(command: list[str], ready: str, log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` (output to ``log``) and wait until ``ready`` answers 200 (60 s)."""
    with log.open("ab") as sink:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=os.environ | {"BENCH_PROVIDER_KEY": "sk-mock"},
        )
    request = urllib.request.Request(ready, headers={"Authorization": f"Bearer {KEY}"})  # noqa: S310
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(request, timeout=2) as reply:  # noqa: S310 - loopback
                if reply.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{command[3]} did not start:\n{log.read_text(errors='replace')[-800:]}")


async def _client(
    url: str, name: str, stream: bool, stop_at: float, answered: dict[str, float]
) -> None:
    """Send requests one after another until ``stop_at`` or the gateway is gone; note each
    answer's completion time (monotonic) by its event id."""
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"count to three ({name})"}],
        "stream": stream,
        **({"max_tokens": 200} if stream else {}),
    }
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        n = 0
        while time.monotonic() < stop_at:
            event_id = f"{name}-{n}"
            n += 1
            try:
                async with session.post(
                    url, json=body, headers={**headers, "cf-aig-event-id": event_id}
                ) as reply:
                    await reply.read()
                    if reply.status == 200:
                        answered[event_id] = time.monotonic()
            except (TimeoutError, aiohttp.ClientError):
                return  # the gateway was killed


async def _load(url: str, args: argparse.Namespace, pid: int) -> tuple[dict[str, float], float]:
    """Run the clients; SIGKILL ``pid`` after ``--kill-at`` seconds. Answers, kill time."""
    answered: dict[str, float] = {}
    started = time.monotonic()
    tasks = [
        asyncio.create_task(_client(url, f"c{c}", args.stream, started + args.seconds, answered))
        for c in range(args.clients)
    ]
    await asyncio.sleep(args.kill_at)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    await asyncio.gather(*tasks)
    return answered, killed_at


def _records(logs: Path) -> Counter[str]:
    """How many records each event id has in the uploaded Logpush files."""
    seen: Counter[str] = Counter()
    for path in logs.rglob("*.log.gz"):
        for line in gzip.decompress(path.read_bytes()).splitlines():
            seen[json.loads(line).get("EventId")] += 1
    return seen


def _round(args: argparse.Namespace, number: int) -> dict[str, int]:
    with tempfile.TemporaryDirectory(prefix="aigw-kill-") as tmp:
        folder = Path(tmp)
        provider_port, gateway_port = _free_port(), _free_port()
        provider_url = f"http://127.0.0.1:{provider_port}"
        mock_command = [*AIGW, "mock-provider", "--port", str(provider_port), "--latency-ms", "20"]
        if args.stream:
            mock_command += ["--stream-chunk-delay-ms", "10"]
        provider = _start(mock_command, f"{provider_url}/v1/models", folder / "mock.log")
        try:
            (folder / "gateway.toml").write_text(
                CONFIG.format(
                    key_sha=hashlib.sha256(KEY.encode()).hexdigest(),
                    provider=provider_url,
                    folder=folder,
                    sync=SYNC_INTERVAL_S,
                )
            )
            proxy = [*AIGW, "proxy", "--config", str(folder / "gateway.toml")]
            proxy += ["--port", str(gateway_port)]
            gateway_url = f"http://127.0.0.1:{gateway_port}"
            gateway = _start(proxy, f"{gateway_url}/v1/models", folder / "proxy.log")
            answered, killed_at = asyncio.run(
                _load(f"{gateway_url}/v1/chat/completions", args, gateway.pid)
            )
            gateway.wait()
            uploaded_before = _records(folder / "logs")
            restarted = _start(proxy, f"{gateway_url}/v1/models", folder / "proxy.log")
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(timeout=60)
        finally:
            provider.send_signal(signal.SIGTERM)
            provider.wait(timeout=30)
        records = _records(folder / "logs")
    old = {e for e, t in answered.items() if t < killed_at - SYNC_INTERVAL_S}
    return {
        "round": number,
        "answered": len(answered),
        "uploaded before the kill": sum(uploaded_before.values()),
        "answered > 0.2 s before the kill": len(old),
        "of those without a record": len(old - set(records)),
        "answered in the last 0.2 s without a record": len(set(answered) - old - set(records)),
        "records with a duplicate": sum(1 for count in records.values() if count > 1),
        "records of requests not answered": len(set(records) - set(answered)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--kill-at", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stream", action="store_true", help="streamed answers")
    args = parser.parse_args()
    rows = [_round(args, n + 1) for n in range(args.rounds)]
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{row[c]:,}" for c in columns) + " |")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
