"""``run_ingest``: settings in, summary out; what ``aigw ingest`` calls."""

from __future__ import annotations

from collections.abc import Callable

from ingest.config import IngestSettings
from ingest.decrypt import Decryptor, load_private_key
from ingest.run import IngestSummary, ObjectResult, ingest
from ingest.sources import open_source
from ingest.warehouse import open_warehouse

__all__ = ["run_ingest"]


def run_ingest(
    settings: IngestSettings,
    *,
    on_listed: Callable[[int], None] | None = None,
    on_object: Callable[[ObjectResult], None] | None = None,
) -> IngestSummary:
    """Open the source and the warehouse named in ``settings`` and ingest once."""
    decryptor = None
    if settings.private_key is not None:
        decryptor = Decryptor.from_file(settings.private_key)
    elif settings.private_key_pem is not None:
        decryptor = Decryptor(load_private_key(settings.private_key_pem, source="AIGW_PRIVATE_KEY"))
    source = open_source(settings.source, endpoint_url=settings.endpoint_url)
    with open_warehouse(settings.db_path) as warehouse:
        warehouse.con.execute("SET threads = 1")
        return ingest(
            source,
            warehouse,
            batch_rows=settings.batch_rows,
            on_listed=on_listed,
            on_object=on_object,
            decryptor=decryptor,
        )
