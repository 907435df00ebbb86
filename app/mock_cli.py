"""``aigw mock-provider``: run the simulated OpenAI/Anthropic provider until Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from app.console import VerboseOption, err, user_errors
from core.errors import ConfigError

__all__ = ["mock_provider_command", "parse_outage_option"]


def mock_provider_command(
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback unless you mean otherwise).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 takes a free one (printed at start).")] = 8787,
    seed: Annotated[int, typer.Option(help="Same seed and body: same answer.")] = 0,
    latency_ms: Annotated[float, typer.Option(help="Added to every response.")] = 0.0,
    jitter_ms: Annotated[float, typer.Option(help="+- uniform, fixed per request body.")] = 0.0,
    stream_chunk_delay_ms: Annotated[float, typer.Option(help="Between SSE chunks.")] = 0.0,
    error_rate_429: Annotated[float, typer.Option(help="Fraction of requests answered 429.")] = 0.0,
    error_rate_500: Annotated[float, typer.Option(help="Fraction of requests answered 500.")] = 0.0,
    outage: Annotated[
        list[str] | None,
        typer.Option(help="START:END seconds after start answered 503; repeat for more."),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding the one key accepted (others: 401)."),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Run a fake OpenAI and Anthropic API (deterministic answers, no real key needed)."""
    with user_errors(verbose):
        # the simulated provider (aiohttp, the gateway's shapes): only this command loads it
        from sim import MockSettings, run_mock_provider  # noqa: PLC0415 - keeps start-up light

        settings = MockSettings(
            seed=seed,
            latency_ms=latency_ms,
            jitter_ms=jitter_ms,
            stream_chunk_delay_ms=stream_chunk_delay_ms,
            error_rate_429=error_rate_429,
            error_rate_500=error_rate_500,
            outages=tuple(parse_outage_option(value) for value in outage or ()),
            api_key=_key_from_env(api_key_env),
        )
        run_mock_provider(settings, host=host, port=port, on_started=_announce)
    err.print("mock provider stopped", markup=False)


def parse_outage_option(value: str) -> tuple[float, float]:
    """``START:END`` (seconds, e.g. ``10:12.5``) as a pair; :class:`ConfigError` otherwise."""
    start, sep, end = value.partition(":")
    message = f"--outage {value!r}: use START:END in seconds, e.g. 10:12.5"
    if not sep:
        raise ConfigError(message)
    try:
        return float(start), float(end)
    except ValueError:
        raise ConfigError(message) from None


def _key_from_env(name: str | None) -> str | None:
    if name is None:
        return None
    key = os.environ.get(name)
    if not key:
        raise ConfigError(f"--api-key-env: environment variable {name} is not set")
    return key


def _announce(url: str) -> None:
    # The one line a script waits for: it names the port when --port 0 took a free one.
    err.print(f"mock provider listening on {url} (Ctrl-C to stop)", markup=False)
