"""``aigw proxy``: run the companion gateway (thin: config in, server out)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from app.console import VerboseOption, err, user_errors
from app.console import out as out_console

__all__ = ["proxy_command", "simulate_command"]


def proxy_command(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", envvar="AIGW_GATEWAY_CONFIG", help="gateway.toml."),
    ] = Path("gateway.toml"),
    host: Annotated[
        str | None,
        typer.Option(help="Bind address (default: host under [server] in the config)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: port under [server] in the config).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Processes serving the port (default: one per core when rate limits and "
            "budgets are in Redis, else 1); a crashed one is restarted."
        ),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Run the gateway: OpenAI/Anthropic-compatible, inline controls, Logpush-format logs.

    Stops on SIGTERM or Ctrl-C after in-flight requests, flushing every log record.
    """
    with user_errors(verbose):
        # imported here: keeps other commands' start-up light
        from proxy import (  # noqa: PLC0415
            available_cores,
            load_gateway_config,
            require_otel,
            run_gateway,
            run_workers,
            worker_count,
        )

        settings = load_gateway_config(config, os.environ)
        require_otel(settings)  # [telemetry] otlp_endpoint without the otel extra: one line
        count, note = worker_count(settings, workers, available_cores())
        bind = host or settings.host
        err.print(
            f"aigw proxy: http://{bind}:{settings.port if port is None else port} "
            f"({len(settings.providers)} providers, {len(settings.routes)} routes; "
            f"logs to {settings.logs.destination}; {note})",
            markup=False,
        )
        if count == 1:
            run_gateway(settings, host=host, port=port)
            return
        status = run_workers(
            settings, count, host=host, port=port, say=lambda line: err.print(line, markup=False)
        )
    if status:
        raise typer.Exit(status)


def simulate_command(
    requests: Annotated[int, typer.Option("--requests", "-n", help="Calls to send.")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed sends the same calls.")] = 7,
    out: Annotated[Path, typer.Option(help="Folder for the gateway's Logpush files.")] = Path(
        "data/gateway-logs"
    ),
    config: Annotated[
        Path, typer.Option("--config", "-c", help="gateway.toml whose routes and keys to use.")
    ] = Path("sample_data/gateway.toml"),
    concurrency: Annotated[
        int,
        typer.Option(
            help="Connections to the gateway (1: the same seed gives the same records; "
            "more: faster, but which calls a rate limit refuses varies run to run)."
        ),
    ] = 1,
    verbose: VerboseOption = False,
) -> None:
    """Send realistic multi-team traffic through the gateway and simulated providers.

    Eight days (2026-11-12 to 2026-11-20 UTC) on a simulated clock: repeated prompts,
    PII and secrets, jailbreaks, an OpenAI outage (failover), one agent per savings
    opportunity (a model switch, a longer cache TTL, prompt caching, a batch API), and
    the agent `summarizer` running away on 2026-11-19 10:00-11:00 (one request resent in
    a loop). Everything stays on 127.0.0.1.
    """
    with user_errors(verbose):
        from sim import simulate  # noqa: PLC0415 - keeps other commands' start-up light

        summary = simulate(
            config, out, requests=requests, seed=seed, concurrency=concurrency, environ=os.environ
        )
    statuses = ", ".join(
        f"{status}: {count:,}" for status, count in sorted(summary.statuses.items())
    )
    out_console.print(
        f"simulated {summary.calls:,} calls ({statuses}); {summary.cache_hits:,} cache hits, "
        f"{summary.failovers:,} served by a fallback; logs in {summary.out}",
        markup=False,
    )
