"""``aigw proxy --workers N``: N gateway processes on one port, under a supervisor.

The supervisor (this process) binds the listening socket once and starts each worker as
``python -m proxy.worker`` with that socket inherited: the kernel hands each new
connection to one of the workers accepting on it. It serves nothing itself. It

- restarts a worker that exits while the gateway runs (a crash, SIGKILL, an out-of-memory
  kill), at once when it had run 5 s or more, else after a delay doubling from 0.5 s to
  5 s; the others keep serving meanwhile;
- on SIGTERM or SIGINT, sends SIGTERM to every worker (a second signal: again, which
  forces them), waits for all to exit and returns 0 when all exited 0;
- on SIGHUP, loads the config file again: when it loads and only reloadable settings
  changed (``GatewayConfig.needs_restart``), copies it to the run folder the workers read
  their config from and sends each SIGHUP (each reloads it, ``GatewayApp.reload_file``);
  else one line says why and nothing changes (a worker restarted later also starts with
  the running config, never a broken file);
- makes a run folder (removed at exit) with that config copy and a Prometheus
  multi-process folder for the workers (``PROMETHEUS_MULTIPROC_DIR``), and calls
  ``mark_process_dead`` for each worker that exits, so a scrape of any worker sums all.

Workers run in their own process group (a Ctrl-C in the terminal reaches only the
supervisor, which stops them once) and stop as on SIGTERM when the supervisor dies.

Each worker keeps its own log writer: journal and spooled files are named by batch token,
never shared (``proxy.logs.journal``), and a restarted worker recovers the journal files
its dead predecessor left. Rate limits and budgets are shared only when they live in Redis
(``[limits] url``); :func:`worker_count` refuses several workers with in-process ones
unless ``[server] per_worker_limits = true``. The response cache (SQLite file or Redis)
is shared either way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Final

from prometheus_client import multiprocess

from proxy.config import load_gateway_config
from proxy.errors import GatewayConfigError, ProxyError
from proxy.settings import GatewayConfig

__all__ = ["available_cores", "run_workers", "worker_count"]

_STEADY_S: Final = 5.0  # a worker that ran this long is restarted at once
_FIRST_DELAY_S: Final = 0.5
_MAX_DELAY_S: Final = 5.0
_POLL_S: Final = 0.05
_BACKLOG: Final = 2048
_WORKER_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_OPT_IN: Final = "[server] per_worker_limits = true"
_SHARE: Final = '[limits] url = "redis://…"'


def available_cores() -> int:
    """CPUs this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _limits_shared(config: GatewayConfig) -> bool:
    return config.state_url is not None and config.state_url != "memory://"


def worker_count(config: GatewayConfig, requested: int | None, cores: int) -> tuple[int, str]:
    """How many workers to run and a one-line note for the start-up message.

    ``requested`` None: one per core when rate limits and budgets are shared (Redis) or
    ``per_worker_limits`` is set, else 1 (the note says why). Several workers with
    in-process limits and without ``per_worker_limits`` raise ``GatewayConfigError``
    naming the setting: each worker would count only the requests it serves.
    """
    shared = _limits_shared(config)
    if requested is None:
        if shared or config.per_worker_limits or cores == 1:
            count = cores
        else:
            return 1, (
                f"1 worker: rate limits and budgets are kept in process; set {_SHARE} to "
                f"share them or {_OPT_IN} to run one worker per core ({cores})"
            )
    elif requested < 1:
        raise GatewayConfigError(f"--workers must be at least 1 (got {requested})")
    else:
        count = requested
    if count > 1 and not shared:
        if not config.per_worker_limits:
            raise GatewayConfigError(
                f"--workers {count}: rate limits and budgets are kept in process, so each "
                f"worker would count only its own requests; set {_SHARE} to share them, "
                f"or {_OPT_IN} to accept per-worker limits"
            )
        return count, (
            f"{count} workers; rate limits and budgets are per worker ({_OPT_IN}): "
            f"a limit of N lets up to {count} x N through"
        )
    return count, f"{count} worker" + ("s" if count > 1 else "")


def _signal_name(number: int) -> str:
    """``SIGKILL`` for 9; the number itself for one Python does not name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket every worker accepts on (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError as err:
        sock.close()
        raise GatewayConfigError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock.set_inheritable(True)
    return sock


@dataclass(slots=True)
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0  # exits in a row after less than _STEADY_S
    restart_at: float = 0.0


@dataclass(slots=True)
class _Supervisor:
    """The workers of one ``run_workers`` call (see the module docstring)."""

    config: GatewayConfig  # the accepted config; workers load its copy, ``accepted``
    accepted: Path
    sock: socket.socket
    env: dict[str, str]
    metrics_dir: str
    say: Callable[[str], None]
    workers: list[_Worker]
    stops: int = 0  # SIGTERM/SIGINT received
    reloads: int = 0  # SIGHUP received, not yet handled
    failed: bool = False  # a worker exited non-zero while stopping

    def spawn(self, worker: _Worker) -> None:
        fd = self.sock.fileno()
        command = [sys.executable, "-m", "proxy.worker", "--fd", str(fd)]
        command += ["--index", str(worker.index), "--parent", str(os.getpid())]
        # the worker starts with these blocked (the mask survives exec): one that arrives
        # while it starts waits until its server handles them (proxy.serving), so a worker
        # stopped while starting still exits 0
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _WORKER_SIGNALS)
        try:
            worker.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [*command, str(self.accepted)],
                env=self.env,
                pass_fds=(fd,),
                process_group=0,
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        worker.started = time.monotonic()

    def signal_all(self, signum: int) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signum)

    def on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stops += 1
        self.signal_all(signal.SIGTERM)

    def on_reload(self, signum: int, frame: FrameType | None) -> None:
        self.reloads += 1

    def reload(self) -> None:
        """Check the config file again; when it loads and can be reloaded, make it the
        accepted copy and send SIGHUP to every worker, else say why in one line (the
        workers keep the running config, and a restarted worker starts with it too)."""
        self.reloads = 0
        candidate = self.accepted.with_name("candidate.toml")
        try:
            candidate.write_bytes(self.config.path.read_bytes())
            config = load_gateway_config(candidate, os.environ)
            tables = self.config.needs_restart(config)
            if tables:
                raise GatewayConfigError(
                    f"{', '.join(tables)} changed; restart the gateway to apply it"
                )
        except (ProxyError, OSError) as err:
            reason = str(err).replace(str(candidate), str(self.config.path))
            self.say(f"aigw proxy: config reload refused, the running config stays: {reason}")
            return
        candidate.replace(self.accepted)
        self.config = dataclasses.replace(config, path=self.config.path)
        self.signal_all(signal.SIGHUP)
        self.say(
            f"aigw proxy: config reloaded from {self.config.path} "
            f"({len(config.routes)} routes, {len(config.keys)} keys)"
        )

    def reap(self, worker: _Worker) -> None:
        """Handle ``worker``'s exit if it has exited: mark it dead, plan its restart."""
        process = worker.process
        if process is None or process.poll() is None:
            return
        worker.process = None
        multiprocess.mark_process_dead(process.pid, self.metrics_dir)  # type: ignore[no-untyped-call]
        code = process.returncode
        if self.stops:
            self.failed = self.failed or code != 0
            return
        ran = time.monotonic() - worker.started
        worker.failures = 0 if ran >= _STEADY_S else worker.failures + 1
        delay = 0.0 if worker.failures == 0 else _FIRST_DELAY_S * 2 ** (worker.failures - 1)
        delay = min(delay, _MAX_DELAY_S)
        worker.restart_at = time.monotonic() + delay
        how = f"killed by {_signal_name(-code)}" if code < 0 else f"exited with {code}"
        self.say(
            f"aigw proxy: worker {worker.index} (pid {process.pid}) {how}; "
            f"restarting it{f' in {delay:g} s' if delay else ''}"
        )

    def run(self) -> int:
        for worker in self.workers:
            self.spawn(worker)
        while True:
            if self.reloads and not self.stops:
                self.reload()
            for worker in self.workers:
                self.reap(worker)
                due = worker.process is None and time.monotonic() >= worker.restart_at
                if due and not self.stops:
                    self.spawn(worker)
            if self.stops and all(worker.process is None for worker in self.workers):
                return 1 if self.failed else 0
            time.sleep(_POLL_S)


def run_workers(
    config: GatewayConfig,
    count: int,
    *,
    host: str | None = None,
    port: int | None = None,
    say: Callable[[str], None],
) -> int:
    """Serve ``config`` with ``count`` worker processes until SIGTERM or SIGINT; return the
    exit status (0 when every worker drained and exited 0). ``say`` prints a line for the
    operator (a worker restarted). Called from the main thread (it installs signal handlers).
    """
    sock = _listen(host or config.host, config.port if port is None else port)
    run_dir = Path(tempfile.mkdtemp(prefix="aigw-proxy-"))
    metrics_dir = run_dir / "metrics"
    metrics_dir.mkdir()
    accepted = run_dir / "gateway.toml"
    accepted.write_bytes(config.path.read_bytes())
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    supervisor = _Supervisor(
        config=config,
        accepted=accepted,
        sock=sock,
        env=env,
        metrics_dir=str(metrics_dir),
        say=say,
        workers=[_Worker(index) for index in range(count)],
    )
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    handlers = (supervisor.on_stop, supervisor.on_stop, supervisor.on_reload)
    previous = {
        sig: signal.signal(sig, handler) for sig, handler in zip(handled, handlers, strict=True)
    }
    try:
        return supervisor.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        supervisor.signal_all(signal.SIGKILL)  # only left if the supervisor itself failed
        sock.close()
        shutil.rmtree(run_dir, ignore_errors=True)
