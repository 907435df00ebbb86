"""The ``aigw`` console script's entry point, kept light: the command line is imported
when the script runs, not when the script is imported.

Python's ``multiprocessing`` (``spawn``) imports the main script again in every child it
starts, as ``__mp_main__``: the quality gate's process (``ingest.quality_process``) is
one. With the script importing ``app.cli`` at its top, that child imported every
command's modules (alerts, reports, what-ifs, pricing: 0.5-0.9 s of CPU) before its own
work; ``python -m app`` never did (multiprocessing skips a ``__main__`` module).
"""

from __future__ import annotations


def main() -> None:
    """Run the ``aigw`` command line."""
    from app.cli import main as run_cli  # noqa: PLC0415 - only when the script runs (above)

    run_cli()
