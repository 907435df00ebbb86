"""A Ray session for one command: started on this machine (``[engine] address =
"local"``) or joined (``auto``, ``ray://host:10001``), and stopped at the end only if this
command started it. A Ray already running in the process (a test, a notebook) is used as
it is."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.lake.extra import require
from core.lake.spec import EngineSpec

__all__ = ["ray_session"]


@contextmanager
def ray_session(engine: EngineSpec) -> Iterator[Any]:
    """Yield the ``ray`` module, connected as ``engine`` says (see module)."""
    ray: Any = require("ray", extra="lake", feature='[engine] kind = "ray"')
    owned = False
    if not ray.is_initialized():
        if engine.address == "local":
            ray.init(
                address="local",  # a new Ray of this machine's, not another user's cluster
                num_cpus=engine.num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        else:
            ray.init(address=engine.address, log_to_driver=False)
        owned = True
    try:
        yield ray
    finally:
        if owned:
            ray.shutdown()
