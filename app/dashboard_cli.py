"""``aigw dashboard``: serve the Streamlit FinOps dashboards on 127.0.0.1.

Runs ``streamlit run app/dashboard/main.py`` in this process's Python, headless, with
usage statistics off and no file watcher (nothing phones home, nothing reloads), bound
to ``--host`` (127.0.0.1 by default: the dashboard has no login, expose it only behind
one). The settings reach the entry script through its environment (``AIGW_DB``,
``AIGW_CONFIG``, ``AIGW_BUDGETS``, ``AIGW_NOW``). Exit code 2 when the warehouse file
is missing or the port is taken (one line with the fix); otherwise the process becomes
Streamlit's server (``exec``), so signals reach it directly and its exit code is the
command's. ``python -m app.dashboard_cli HOST PORT`` checks only the port (``make demo``
does, before its minutes of work).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Annotated, Final

import typer

from app.console import ConfigOption, DbOption, VerboseOption, parse_time, user_errors
from app.settings import load_settings
from core.errors import ConfigError, WarehouseError
from core.settings import DEFAULT_BUDGETS, config_file
from ingest import DEFAULT_DB_PATH

__all__ = ["ENTRY_SCRIPT", "check_port", "dashboard_command", "streamlit_command"]

ENTRY_SCRIPT: Final = Path(__file__).parent / "dashboard" / "main.py"


def streamlit_command(host: str, port: int) -> list[str]:
    """The ``streamlit run`` command line (flags, so nothing depends on a config file)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ENTRY_SCRIPT),
        f"--server.address={host}",
        f"--server.port={port}",
        "--server.headless=true",
        "--server.fileWatcherType=none",
        "--browser.gatherUsageStats=false",
        f"--browser.serverAddress={host}",
        "--global.showWarningOnDirectExecution=false",
        "--client.toolbarMode=minimal",
    ]


def check_port(host: str, port: int) -> None:
    """``ConfigError`` when nothing can listen on ``host:port`` (another server holds it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(
                f"port {port} on {host} is not available ({error.strerror}): stop what "
                f"listens there or pick another port: --port {port + 1} "
                f"(make demo PORT={port + 1})"
            ) from None


def dashboard_command(
    db: DbOption = DEFAULT_DB_PATH,
    host: Annotated[
        str, typer.Option(help="Address to listen on (the dashboard has no login).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8501,
    budgets: Annotated[
        Path | None,
        typer.Option(envvar="AIGW_BUDGETS", help="budgets.toml (default: ./budgets.toml)."),
    ] = None,
    config: ConfigOption = None,
    now: Annotated[
        str | None,
        typer.Option(help="Show month-to-date, budgets and anomalies as of this time (UTC)."),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Serve the FinOps dashboards (Streamlit) on http://HOST:PORT."""
    with user_errors(verbose):
        target = load_settings(config, os.environ).warehouse_for(db)
        if isinstance(target, Path) and not target.exists():
            raise WarehouseError(
                f"no warehouse at {target}; run `aigw ingest` first or pass --db",
                path=str(target),
            )
        moment = parse_time(now, "--now")
        check_port(host, port)
        config = config_file(config, os.environ)
        env = {
            **os.environ,
            # an Iceberg warehouse is named by the aigw.toml passed below
            "AIGW_DB": str(target.resolve() if isinstance(target, Path) else db),
            "AIGW_BUDGETS": str((budgets or DEFAULT_BUDGETS).resolve()),
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
            "STREAMLIT_SERVER_HEADLESS": "true",
        }
        env.pop("AIGW_CONFIG", None)
        env.pop("AIGW_NOW", None)
        if config is not None:
            env["AIGW_CONFIG"] = str(config.resolve())
        if moment is not None:
            env["AIGW_NOW"] = moment.isoformat()
        # Streamlit imports app.dashboard.* from the repository root or the installed package.
        root = str(ENTRY_SCRIPT.parent.parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    # Replace this process with Streamlit's: signals (Ctrl-C, SIGTERM from a supervisor)
    # reach the server itself, and no orphan is left behind.
    command = streamlit_command(host, port)
    os.execve(command[0], command, env)  # noqa: S606 - our own command line


if __name__ == "__main__":  # `make demo` checks its PORT before anything else
    try:
        check_port(sys.argv[1], int(sys.argv[2]))
    except ConfigError as taken:
        print(f"error: {taken}", file=sys.stderr)
        sys.exit(2)
