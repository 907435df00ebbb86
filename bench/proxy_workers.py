"""Gateway benchmark with several processes: `aigw proxy --workers 1` vs `--workers 2`.

    python bench/proxy_workers.py [--seconds 10] [--warmup 2] [--workers 1,2]

The same gateway as ``bench/proxy.py`` (every control on; rate limits and budgets kept in
process, so ``[server] per_worker_limits = true``; their limits never refuse) over one
simulated provider with 0 ms latency. For each worker count and {50, 200} connections it
runs closed-loop load (``bench/proxy_load.py``, its own process) after a warm-up and
records req/s, p50/p99 and the latency added over calling the provider directly at the
same connections. The machine's load average is recorded per cell: the providers, the load
generator and the gateway share the cores. Prints a markdown table; writes
data/bench-proxy-workers.json. Not a test. LiteLLM's proxy (``bench/.venv-litellm``, made by
``make bench-proxy``) runs beside it in the same run with ``--num_workers`` 1 and 2, unless
``--skip-litellm``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final

_HERE: Final = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
from proxy_load import Load  # noqa: E402

# bench/proxy.py, loaded under another name: "proxy" is the gateway's package
_SPEC = importlib.util.spec_from_file_location("bench_proxy", _HERE / "proxy.py")
if _SPEC is None or _SPEC.loader is None:
    raise SystemExit(f"cannot load {_HERE / 'proxy.py'}")
bench: Any = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)

REPO: Final = _HERE.parent
CONNECTIONS: Final = (50, 200)


def _cells(args: argparse.Namespace) -> list[dict[str, Any]]:
    key = "gw-bench-" + secrets.token_hex(8)
    master = "sk-" + secrets.token_hex(8)
    cells: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aigw-bench-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        aigw = [sys.executable, "-m", "app"]
        mock = f"http://127.0.0.1:{bench._free_port()}"
        command = [*aigw, "mock-provider", "--port", mock.rsplit(":", 1)[1], "--latency-ms", "0"]
        stack.enter_context(bench._server("mock0", command, mock + "/v1/models", folder, env={}))
        config = bench.AIGW_TOML.format(
            key_sha=hashlib.sha256(key.encode()).hexdigest(), fast=mock, slow=mock, folder=folder
        ).replace('gateway = "bench"', 'gateway = "bench"\nper_worker_limits = true')
        config += bench.AIGW_ROUTE.format(name="fast", model=bench.MODELS[0])
        (folder / "gateway.toml").write_text(config)
        for connections in CONNECTIONS:
            tag = f"direct-{connections}-{time.time_ns()}"
            load = Load(connections, args.seconds, bench.MODELS[0], "", True, tag)
            cell = bench._cell("direct", mock + bench.CHAT, load, args.warmup, None)
            cells.append(cell | {"provider_latency_ms": 0, "pinned": False, "rate": None})
            print(bench._row(cells[-1], None), flush=True)
        for system, workers in _systems(args):
            if system == "litellm":
                yaml = bench.LITELLM_YAML.format(fast=mock, slow=mock, master_key=master)
                (folder / "litellm.yaml").write_text(yaml)
            with _gateway(system, workers, folder, key, master) as (url, token, pid):
                for connections in CONNECTIONS:
                    tag = f"{system}{workers}-{connections}-{time.time_ns()}"
                    load = Load(connections, args.seconds, bench.MODELS[0], token, True, tag)
                    cell = bench._cell(
                        f"{system} x{workers}", url + bench.CHAT, load, args.warmup, pid
                    )
                    cells.append(cell | {"provider_latency_ms": 0, "pinned": False, "rate": None})
                    print(bench._row(cells[-1], None), flush=True)
    bench._added(cells)
    return cells


def _systems(args: argparse.Namespace) -> list[tuple[str, int]]:
    systems = ["aigw"] if args.skip_litellm else ["aigw", "litellm"]
    return [(system, workers) for system in systems for workers in args.workers]


@contextmanager
def _gateway(
    system: str, workers: int, folder: Path, key: str, master: str
) -> Iterator[tuple[str, str, int]]:
    """Start aigw's gateway or LiteLLM's proxy with ``workers`` processes; yield URL, key, pid."""
    port = bench._free_port()
    url = f"http://127.0.0.1:{port}"
    if system == "aigw":
        command = [sys.executable, "-m", "app", "proxy", "--config", str(folder / "gateway.toml")]
        command += ["--port", str(port), "--workers", str(workers)]
        env, ready, token = {"BENCH_PROVIDER_KEY": "sk-mock"}, url + "/v1/models", key
    else:
        command = [str(bench.LITELLM), "--config", str(folder / "litellm.yaml")]
        command += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", str(workers)]
        env = {"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        ready, token = url + "/health/liveliness", master
    with bench._server(f"{system}{workers}", command, ready, folder, env=env, token=token) as proc:
        time.sleep(5.0)  # every worker up, not only the first that answered
        yield url, token, proc.pid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per cell")
    parser.add_argument("--workers", type=lambda s: [int(n) for n in s.split(",")], default=[1, 2])
    parser.add_argument("--skip-litellm", action="store_true", help="aigw and direct only")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "bench-proxy-workers.json")
    args = parser.parse_args()
    if not args.skip_litellm and bench._litellm_version() is None:
        sys.exit(f"LiteLLM is not installed in {bench.LITELLM.parent.parent}: run make bench-proxy")
    started = time.monotonic()
    print(bench._row({}, header=True), flush=True)
    cells = _cells(args)
    print("\n" + bench._row({}, header=True))
    for cell in cells:
        print(bench._row(cell, None))
    document = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "python": platform.python_version(),
        "litellm": None if args.skip_litellm else bench._litellm_version(),
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
