"""Gateway benchmark: aigw vs LiteLLM's proxy vs direct, over one simulated provider.

    python bench/proxy.py [--seconds 10] [--warmup 2] [--pin off|on|both] [--skip-litellm]

Starts, each in its own process on 127.0.0.1: two simulated providers (`aigw mock-provider`,
0 ms and 50 ms latency), `aigw proxy` with every control on, and LiteLLM's proxy from
``bench/.venv-litellm`` (``make bench-proxy`` creates it: ``pip install 'litellm[proxy]'``;
no database, logging off, ``--num_workers 1`` to match one aigw process, master key on).
The load generator (``bench/proxy_load.py``) is a third process. For each cell of
{direct, aigw, litellm} x {0 ms, 50 ms} x {50, 200 connections} it warms up, then runs
``--seconds`` of closed-loop load and records req/s, p50/p99 latency and errors; "added"
latency is the cell's minus direct's at the same provider latency and connections. Extra
cells: 1 connection at 0 ms (per-request overhead without queueing) and aigw's cache-hit
path (one prompt repeated). Prints a markdown table; writes data/bench-proxy.json.

"All controls on" for aigw: the route has the response cache on (every prompt unique, so
it misses and stores), guardrails in monitor mode, DLP redact (each prompt has an e-mail
address), a request and a token rate limit and a budget set too high to refuse, a
fallback provider, and Logpush-format logs written to a local folder.

With ``--pin on`` the gateway under test gets CPU 0 and the providers and load generator
CPU 1 (``both`` runs the whole matrix unpinned, then pinned). The machine's load average is
recorded per cell: other work on the 2 cores shows up as noise. Not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_load import Load, LoadResult, run_load

REPO: Final = Path(__file__).resolve().parent.parent
LITELLM: Final = REPO / "bench" / ".venv-litellm" / "bin" / "litellm"
MODELS: Final = {0: "gpt-4o-mini", 50: "gpt-4o"}  # provider latency (ms) -> model routed there
CHAT: Final = "/v1/chat/completions"
OPEN_RATES: Final = (50.0, 500.0)  # requests/s offered in the open-loop cells

AIGW_TOML: Final = """
[server]
gateway = "bench"
[[auth.keys]]
id = "bench"
team = "bench"
sha256 = "{key_sha}"
[providers.fast]
kind = "openai"
base_url = "{fast}/v1"
api_key_env = "BENCH_PROVIDER_KEY"
catalog_name = "openai"
[providers.fast-backup]
kind = "openai"
base_url = "{fast}/v1"
api_key_env = "BENCH_PROVIDER_KEY"
catalog_name = "openai"
[providers.slow]
kind = "openai"
base_url = "{slow}/v1"
api_key_env = "BENCH_PROVIDER_KEY"
catalog_name = "openai"
[providers.slow-backup]
kind = "openai"
base_url = "{slow}/v1"
api_key_env = "BENCH_PROVIDER_KEY"
catalog_name = "openai"
[logs]
destination = "{folder}/logs"
spool_dir = "{folder}/spool"
[cache]
path = "{folder}/cache.sqlite"
"""
AIGW_ROUTE: Final = """
[routes.{name}]
match = ["{model}"]
provider = "{name}"
cache = true
cache_ttl_s = 3600
guardrails = "monitor"
dlp = "redact"
fallbacks = [{{ provider = "{name}-backup" }}]
rate_limits = [
    {{ name = "requests", per = "key", unit = "requests", limit = 1000000000, window_s = 60 }},
    {{ name = "tokens", per = "key", unit = "tokens", limit = 1000000000000, window_s = 60 }},
]
budget = {{ usd = 1000000000.0, period = "day", per = "key", action = "reject" }}
"""
LITELLM_YAML: Final = """
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{fast}/v1", api_key: sk-mock}}
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{slow}/v1", api_key: sk-mock}}
litellm_settings:
  set_verbose: false
  json_logs: true
  request_timeout: 600
general_settings:
  master_key: {master_key}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, token: str = "") -> None:
    """Poll ``url`` until it answers 200 (180 s at most: LiteLLM boots in 20-100 s on a
    busy machine); fail with the process's log tail."""
    headers = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - our http:// URL
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(request, timeout=2) as reply:  # noqa: S310 - loopback
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
    raise RuntimeError(f"{url} did not come up:\n{tail}")


@contextmanager
def _server(
    name: str, command: list[str], ready: str, folder: Path, *, env: dict[str, str], token: str = ""
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (stdout/stderr to folder/name.log) until the block ends; SIGTERM it."""
    log = folder / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, env=os.environ | env
        )
    try:
        _wait_ready(ready, process, log, token)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                queue += [int(child) for child in (task / "children").read_text().split()]
            except OSError:  # the thread ended meanwhile
                continue
    return pids


def _pin(pid: int, cpus: set[int]) -> None:
    """Set the CPU affinity of every thread of ``pid`` and its descendants."""
    for process in _tree(pid):
        for task in Path(f"/proc/{process}/task").glob("*"):
            try:
                os.sched_setaffinity(int(task.name), cpus)
            except OSError:  # the thread ended meanwhile
                continue


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live descendants so far."""
    total = 0
    for process in _tree(pid):
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _cell(system: str, url: str, load: Load, warmup: float, pid: int | None) -> dict[str, Any]:
    """Warm up, then measure one cell; the gateway's CPU per request when ``pid`` is given."""
    run_load(url, Load(**{**_fields(load), "seconds": warmup, "run_tag": load.run_tag + "w"}))
    load_before = os.getloadavg()[0]
    cpu_before = _cpu_seconds(pid) if pid else 0.0
    result: LoadResult = run_load(url, load)
    cpu = (_cpu_seconds(pid) - cpu_before) if pid else None
    return {
        "system": system,
        "connections": load.connections,
        "unique": load.unique,
        **_fields(result),
        "server_cpu_us_per_request": cpu / result.requests * 1e6
        if cpu and result.requests
        else None,
        "loadavg_1m": round(load_before, 2),
    }


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__slots__}


def _matrix(
    targets: dict[str, tuple[str, str, int | None]],
    args: argparse.Namespace,
    pinned: bool,
) -> list[dict[str, Any]]:
    """Every cell for one pinning choice; ``targets``: system -> (base URL, token, pid)."""
    cells = []
    load_cpus = "1" if pinned else None
    closed: list[tuple[int, int, bool, float | None]] = [(0, 1, True, None)]
    closed += [(lat, c, True, None) for lat in (0, 50) for c in (50, 200)]
    closed += [(0, 50, False, None), (0, 200, False, None)]
    # Open loop at a fixed rate: the added latency of a gateway that is not saturated
    # (closed-loop cells at 50+ connections measure queueing in a saturated process).
    opened = [(lat, c, True, rate) for rate in OPEN_RATES for lat in (0, 50) for c in (50, 200)]
    for latency, connections, unique, rate in [*closed, *opened]:
        for system, (base, token, pid) in targets.items():
            if not unique and system != "aigw":
                continue  # the cache-hit path is aigw's alone (LiteLLM runs without a cache)
            if system.startswith("mock") or (system == "litellm" and (rate or 0) > 100):
                continue  # LiteLLM serves about 100 requests/s here: it would only queue
            url = (targets[f"mock{latency}"][0] if system == "direct" else base) + CHAT
            for name, (_, _, server) in targets.items():
                if server is not None:  # gateways on CPU 0, providers with the load on CPU 1
                    _pin(server, ({1} if name.startswith("mock") else {0}) if pinned else {0, 1})
            tag = f"{system}-{latency}-{connections}-{'p' if pinned else 'u'}-{time.time_ns()}"
            load = Load(
                connections, args.seconds, MODELS[latency], token, unique, tag, load_cpus, rate
            )
            cell = _cell(system, url, load, args.warmup, pid)
            cell |= {"provider_latency_ms": latency, "pinned": pinned, "rate": rate}
            cells.append(cell)
            print(_row(cell, None), flush=True)
    return cells


def _added(cells: list[dict[str, Any]]) -> None:
    """Set added p50/p99 (cell minus direct at the same latency, connections, pinning)."""

    def key(c: dict[str, Any]) -> tuple[Any, ...]:
        return (c["provider_latency_ms"], c["connections"], c["pinned"], c["rate"])

    direct = {key(c): c for c in cells if c["system"] == "direct"}
    for cell in cells:
        base = direct.get(key(cell))
        if base and cell["system"] != "direct":
            cell["added_p50_ms"] = cell["p50_ms"] - base["p50_ms"]
            cell["added_p99_ms"] = cell["p99_ms"] - base["p99_ms"]


def _row(cell: dict[str, Any], header: bool | None) -> str:
    if header:
        return (
            "| pinned | provider | conns | offered | system | req/s | p50 ms | p99 ms | "
            "added p50 | added p99 | errors | gateway CPU us/req | load avg |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        )
    system = cell["system"] + ("" if cell["unique"] else " (cache hit)")
    offered = "max" if cell["rate"] is None else f"{cell['rate']:g}/s"
    cpu = cell["server_cpu_us_per_request"]
    added = [cell.get("added_p50_ms"), cell.get("added_p99_ms")]
    return (
        f"| {'yes' if cell['pinned'] else 'no'} | {cell['provider_latency_ms']} ms "
        f"| {cell['connections']} | {offered} "
        f"| {system} | {cell['rps']:,.0f} | {cell['p50_ms']:.2f} "
        f"| {cell['p99_ms']:.2f} | "
        + " | ".join("" if a is None else f"{a:+.2f}" for a in added)
        + f" | {cell['errors']} | {'' if cpu is None else f'{cpu:,.0f}'} "
        f"| {cell['loadavg_1m']} |"
    )


def _litellm_version() -> str | None:
    python = LITELLM.parent / "python"
    if not python.exists():
        return None
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per cell")
    parser.add_argument("--pin", choices=("off", "on", "both"), default="off")
    parser.add_argument("--skip-litellm", action="store_true", help="aigw and direct only")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "bench-proxy.json")
    args = parser.parse_args()
    litellm_version = None if args.skip_litellm else _litellm_version()
    if not args.skip_litellm and litellm_version is None:
        sys.exit(f"LiteLLM is not installed in {LITELLM.parent.parent}: run make bench-proxy")
    key = "gw-bench-" + secrets.token_hex(8)
    master_key = "sk-bench-" + secrets.token_hex(8)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aigw-bench-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        aigw = [sys.executable, "-m", "app"]
        mocks, mock_pids = {}, {}
        for latency in (0, 50):
            port = _free_port()
            mocks[latency] = f"http://127.0.0.1:{port}"
            command = [*aigw, "mock-provider", "--port", str(port), "--latency-ms", str(latency)]
            mock = stack.enter_context(
                _server(f"mock{latency}", command, mocks[latency] + "/v1/models", folder, env={})
            )
            mock_pids[latency] = mock.pid
        targets: dict[str, tuple[str, str, int | None]] = {
            "mock0": (mocks[0], "", mock_pids[0]),
            "mock50": (mocks[50], "", mock_pids[50]),
            "direct": ("", "", None),
        }
        config = AIGW_TOML.format(
            key_sha=hashlib.sha256(key.encode()).hexdigest(),
            fast=mocks[0],
            slow=mocks[50],
            folder=folder,
        )
        config += AIGW_ROUTE.format(name="fast", model=MODELS[0])
        config += AIGW_ROUTE.format(name="slow", model=MODELS[50])
        (folder / "gateway.toml").write_text(config)
        port = _free_port()
        gateway = stack.enter_context(
            _server(
                "aigw",
                [*aigw, "proxy", "--config", str(folder / "gateway.toml"), "--port", str(port)],
                f"http://127.0.0.1:{port}/v1/models",
                folder,
                env={"BENCH_PROVIDER_KEY": "sk-mock"},
                token=key,
            )
        )
        targets["aigw"] = (f"http://127.0.0.1:{port}", key, gateway.pid)
        if not args.skip_litellm:
            (folder / "litellm.yaml").write_text(
                LITELLM_YAML.format(fast=mocks[0], slow=mocks[50], master_key=master_key)
            )
            port = _free_port()
            command = [str(LITELLM), "--config", str(folder / "litellm.yaml")]
            command += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
            environ = {"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
            booted = time.monotonic()
            litellm = stack.enter_context(
                _server(
                    "litellm",
                    command,
                    f"http://127.0.0.1:{port}/health/liveliness",
                    folder,
                    env=environ,
                    token=master_key,
                )
            )
            print(f"LiteLLM {litellm_version} up in {time.monotonic() - booted:.1f} s")
            targets["litellm"] = (f"http://127.0.0.1:{port}", master_key, litellm.pid)
        print(_row({}, header=True))
        cells = []
        for pinned in {"off": [False], "on": [True], "both": [False, True]}[args.pin]:
            cells += _matrix(targets, args, pinned)
        _added(cells)
    print("\n" + _row({}, header=True))
    for cell in cells:
        print(_row(cell, None))
    document = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "python": platform.python_version(),
        "litellm": litellm_version,
        "seconds_per_cell": args.seconds,
        "warmup_seconds": args.warmup,
        "wall_seconds": round(time.monotonic() - started, 1),
        "cells": cells,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.out} ({document['wall_seconds']} s)")


if __name__ == "__main__":
    main()
