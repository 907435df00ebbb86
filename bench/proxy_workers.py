"""Gateway benchmark with several processes: `aigw proxy --workers 1` vs `--workers 2`.

    python bench/proxy_workers.py [--seconds 10] [--warmup 2] [--workers 1,2]

The same gateway as ``bench/proxy.py`` (every control on; rate limits and budgets kept in
process, so ``[server] per_worker_limits = true``; their limits never refuse) over one
simulated provider with 0 ms latency. For each worker count and {50, 200} connections it
runs closed-loop load (``bench/proxy_load.py``, its own process) after a warm-up and
records req/s, p50/p99 and the latency added over calling the provider directly at the
same connections. The machine's load average is recorded per cell: the providers, the load
generator and the gateway share the cores. Prints a markdown table; writes
data/bench-proxy-workers.json. Not a test. LiteLLM is not run here (``bench/proxy.py``).
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
from contextlib import ExitStack
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
        for workers in args.workers:
            port = bench._free_port()
            command = [*aigw, "proxy", "--config", str(folder / "gateway.toml")]
            command += ["--port", str(port), "--workers", str(workers)]
            with bench._server(
                f"aigw{workers}",
                command,
                f"http://127.0.0.1:{port}/v1/models",
                folder,
                env={"BENCH_PROVIDER_KEY": "sk-mock"},
                token=key,
            ) as gateway:
                time.sleep(5.0)  # every worker up, not only the first that answered
                for connections in CONNECTIONS:
                    tag = f"aigw{workers}-{connections}-{time.time_ns()}"
                    load = Load(connections, args.seconds, bench.MODELS[0], key, True, tag)
                    url = f"http://127.0.0.1:{port}{bench.CHAT}"
                    cell = bench._cell(f"aigw x{workers}", url, load, args.warmup, gateway.pid)
                    cells.append(cell | {"provider_latency_ms": 0, "pinned": False, "rate": None})
                    print(bench._row(cells[-1], None), flush=True)
    bench._added(cells)
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per cell")
    parser.add_argument("--workers", type=lambda s: [int(n) for n in s.split(",")], default=[1, 2])
    parser.add_argument("--out", type=Path, default=REPO / "data" / "bench-proxy-workers.json")
    args = parser.parse_args()
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
