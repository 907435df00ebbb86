"""The gateway benchmark's load generator: closed-loop HTTP/1.1 load over keep-alive sockets.

    python bench/proxy_load.py URL --connections 50 --seconds 10 --model gpt-4o-mini \
        [--auth TOKEN] [--shared] [--tag RUN]

Run in its own process by ``bench/proxy.py`` (``run_load`` starts it, optionally pinned
with taskset). Opens ``--connections`` keep-alive connections to URL (127.0.0.1 only) and
on each sends one OpenAI chat completion after another until ``--seconds`` pass, then
prints one JSON line: requests, seconds, requests/s, p50/p99/max latency in milliseconds
(from writing a request to reading its whole response) and errors (non-2xx answers and
dropped connections). Every prompt differs (``--tag`` keeps runs apart) so a response cache
misses; ``--shared`` sends one prompt over and over (cache hits). Each prompt carries an
e-mail address so DLP has something to redact.

Why not wrk: wrk 4 "corrects" its latency histogram for coordinated omission before any
report or Lua ``done`` sees it (it adds synthetic samples for every request slower than the
mean), which gave p99s longer than the run itself allowed at 1 connection. Here every
latency is one request's own, measured with ``perf_counter_ns``. A raw asyncio protocol
(uvloop) keeps the client's CPU per request small; responses must carry Content-Length or
chunked encoding (all three servers do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urlsplit

import uvloop

__all__ = ["Load", "LoadResult", "run_load"]

_PROMPT: Final = (
    "Ticket {ticket} from ana.lima@example.com: summarise the conversation below in three "
    "bullet points and name the product area. The customer says the CSV export stops after "
    "10,000 rows and the dashboard shows spend in the wrong currency since the last release; "
    "they need it fixed before the month-end report."
)


@dataclass(frozen=True, slots=True)
class Load:
    """One load run: ``connections`` keep-alive connections for ``seconds`` (wall clock)."""

    connections: int
    seconds: float
    model: str
    auth: str = ""  # bearer token sent on every request ("": none)
    unique: bool = True  # every prompt different (cache misses) or one prompt (cache hits)
    run_tag: str = "run"  # makes one run's prompts differ from another run's
    cpus: str | None = None  # taskset CPU list for the load process, e.g. "1"; None: any
    rate: float | None = None  # open loop: requests per second in all, paced; None: closed loop


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What the client saw: latency in milliseconds, throughput in requests per second."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # non-2xx answers + connections dropped mid-request
    non_2xx: int


def run_load(url: str, load: Load) -> LoadResult:
    """Run this file as its own process against ``url`` (a full endpoint URL on 127.0.0.1)."""
    command = [sys.executable, str(Path(__file__).resolve()), url]
    command += ["--connections", str(load.connections), "--seconds", str(load.seconds)]
    command += ["--model", load.model, "--tag", load.run_tag]
    command += ["--auth-env", "BENCH_LOAD_AUTH"]  # a token stays out of the process list
    if not load.unique:
        command.append("--shared")
    if load.rate is not None:
        command += ["--rate", str(load.rate)]
    if load.cpus is not None:
        command = ["taskset", "-c", load.cpus, *command]
    environ = os.environ | {"BENCH_LOAD_AUTH": load.auth}
    timeout = load.seconds + 60
    done = subprocess.run(
        command, capture_output=True, text=True, env=environ, check=False, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.strip()[-400:]}")
    return LoadResult(**json.loads(done.stdout.strip().splitlines()[-1]))


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending requests back to back until the deadline."""

    def __init__(self, run: _Run, index: int) -> None:
        self.run = run
        self.index = index
        self.counter = 0
        self.buffer = bytearray()
        self.started = 0
        self.due = 0  # open loop: when this connection's next request is due (perf ns)
        self.transport: asyncio.Transport | None = None
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self) -> None:
        self.counter += 1
        self.buffer.clear()
        request = self.run.request(self.index, self.counter)
        now = time.perf_counter_ns()
        # Open loop: latency counts from when the request was due, so a late send (the
        # previous answer came after this one's slot) is charged to the server under test.
        self.started = min(now, self.due) if self.run.period_ns else now
        assert self.transport is not None  # noqa: S101 - set in connection_made
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = _response_end(self.buffer)
        if end is None:
            return
        self.run.record(time.perf_counter_ns() - self.started, int(self.buffer[9:12]))
        if end < len(self.buffer):  # more than one response: the server broke keep-alive
            self.run.errors += 1
        if time.monotonic() < self.run.deadline:
            if self.run.period_ns:
                self.due += self.run.period_ns
                wait = (self.due - time.perf_counter_ns()) / 1e9
                if wait > 0:
                    asyncio.get_running_loop().call_later(wait, self.send)
                    return
            self.send()
        else:
            self.buffer.clear()
            assert self.transport is not None  # noqa: S101 - set in connection_made
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.buffer or exc is not None:
            self.run.errors += 1
        if not self.finished.done():
            self.finished.set_result(None)


def _response_end(buffer: bytearray) -> int | None:
    """Where the first complete response in ``buffer`` ends, or None if it has not yet."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buffer[:head_end]).lower()
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : line_end if line_end > 0 else None])
        end = head_end + 4 + length
        return end if len(buffer) >= end else None
    if b"\r\ntransfer-encoding: chunked" in head:
        tail = buffer.find(b"\r\n0\r\n\r\n", head_end)
        return tail + 7 if tail >= 0 else None
    return None


class _Run:
    """Request bytes and the latencies of one load run (one event loop; not thread-safe)."""

    def __init__(self, url: str, args: argparse.Namespace, auth: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        headers = f"POST {parts.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        headers += "Content-Type: application/json\r\n"
        if auth:
            headers += f"Authorization: Bearer {auth}\r\n"
        self.head = headers.encode()
        # The body is built once around a marker; each request only splices in its ticket.
        body = json.dumps(
            {
                "model": args.model,
                "max_tokens": 64,
                "messages": [{"role": "user", "content": _PROMPT.format(ticket="\0")}],
            }
        ).encode()
        self.body_start, self.body_end = body.split(b"\\u0000")
        self.tag = args.tag.encode()
        self.shared = args.shared
        rate = getattr(args, "rate", None)
        # Open loop: each connection sends every connections / rate seconds, staggered.
        self.period_ns = int(args.connections / rate * 1e9) if rate else 0
        self.deadline = 0.0
        self.latencies: list[int] = []
        self.non_2xx = 0
        self.errors = 0

    def request(self, connection: int, counter: int) -> bytes:
        ticket = b"shared" if self.shared else b"%s-%d-%d" % (self.tag, connection, counter)
        body = self.body_start + ticket + self.body_end
        return self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body

    def record(self, latency_ns: int, status: int) -> None:
        self.latencies.append(latency_ns)
        if not 200 <= status < 300:
            self.non_2xx += 1


async def _drive(run: _Run, connections: int, seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    protocols = []
    for index in range(connections):  # connect every socket first: the run times requests only
        _, protocol = await loop.create_connection(
            lambda i=index: _Connection(run, i),  # type: ignore[misc]
            run.host,
            run.port,
        )
        protocols.append(protocol)
    begun = time.monotonic()
    run.deadline = begun + seconds
    start_ns = time.perf_counter_ns()
    for index, protocol in enumerate(protocols):
        if run.period_ns:
            protocol.due = start_ns + run.period_ns * index // connections
            loop.call_later((protocol.due - start_ns) / 1e9, protocol.send)
        else:
            protocol.send()
    await asyncio.wait_for(asyncio.gather(*(p.finished for p in protocols)), timeout=seconds + 30)
    elapsed = time.monotonic() - begun
    latencies = sorted(run.latencies)
    count = len(latencies)

    def percentile(share: float) -> float:
        return latencies[min(count - 1, int(count * share))] / 1e6 if count else 0.0

    return {
        "requests": count,
        "seconds": round(elapsed, 3),
        "rps": count / elapsed,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "max_ms": latencies[-1] / 1e6 if count else 0.0,
        "errors": run.errors + run.non_2xx,
        "non_2xx": run.non_2xx,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--auth-env", help="environment variable holding a bearer token")
    parser.add_argument("--shared", action="store_true", help="one prompt for every request")
    parser.add_argument("--tag", default="run", help="makes this run's prompts unique")
    parser.add_argument("--rate", type=float, help="open loop: requests per second in all")
    args = parser.parse_args()
    auth = os.environ.get(args.auth_env, "") if args.auth_env else ""
    run = _Run(args.url, args, auth)
    result = uvloop.run(_drive(run, args.connections, args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
