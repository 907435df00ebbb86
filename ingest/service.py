"""``run_ingest``: settings in, summary out; what ``aigw ingest`` calls."""

from __future__ import annotations

from collections.abc import Callable

from core.lake import LakeSpec, require_lake
from core.warehouse import Warehouse, open_warehouse
from ingest.config import IngestSettings
from ingest.decrypt import Decryptor, load_private_key, read_private_key
from ingest.quality import Checker, check_batch
from ingest.quality_process import GateProcess
from ingest.run import IngestSummary, ObjectResult, ingest
from ingest.sources import Source, open_source

__all__ = ["check_summary", "make_decryptor", "private_key_pem", "run_ingest"]


def run_ingest(
    settings: IngestSettings,
    *,
    on_listed: Callable[[int], None] | None = None,
    on_object: Callable[[ObjectResult], None] | None = None,
    while_checking: Callable[[], None] | None = None,
) -> IngestSummary:
    """Open the source and the warehouse named in ``settings``, ingest once, then run
    the data-quality gate over the new rows (``summary.quality``; None when off or
    nothing was loaded). Into a DuckDB file, the gate runs in a second process started
    once the first object with new rows is stored (``ingest.quality_process``).

    ``while_checking``, if given, runs once in this thread after the load. Into a DuckDB
    file: while the check is pending (the new rows handed to the second process, which
    validates them meanwhile; their ``quality_runs`` row is stored after it), or as soon
    as it is known that nothing is to be checked; this run's connection is open then but
    idle, DuckDB's threads back to their default, so it may open the warehouse again.
    Into an Iceberg warehouse: after the check. An error it raises propagates as is, the
    check abandoned (no ``quality_runs`` row, the child killed)."""
    decryptor = make_decryptor(settings)
    source = open_source(settings.source, endpoint_url=settings.endpoint_url)

    if isinstance(settings.db_path, LakeSpec):
        summary = _run_lake_ingest(settings, source, on_listed=on_listed, on_object=on_object)
        if while_checking is not None:
            while_checking()
        return summary
    with open_warehouse(settings.db_path) as warehouse, GateProcess() as gate:
        warehouse.con.execute("SET threads = 1")
        summary = ingest(
            source,
            warehouse,
            batch_rows=settings.batch_rows,
            on_listed=on_listed,
            on_object=_starting(gate, on_object) if settings.quality != "off" else on_object,
            decryptor=decryptor,
            sql=settings.sql_engine,
        )
        meanwhile = None
        if while_checking is not None:
            meanwhile = _with_threads(warehouse, while_checking)
        check_summary(
            warehouse,
            summary,
            source=source.uri,
            on_failure=settings.quality,
            gate=gate,
            meanwhile=meanwhile,
        )
    return summary


def _with_threads(warehouse: Warehouse, work: Callable[[], None]) -> Callable[[], None]:
    """``work`` with the warehouse's DuckDB threads back to the default (a global setting
    of the database that this process's other connections to it share)."""

    def run() -> None:
        with warehouse.errors():
            warehouse.con.execute("RESET threads")
        work()

    return run


def _starting(
    gate: GateProcess, on_object: Callable[[ObjectResult], None] | None
) -> Callable[[ObjectResult], None]:
    """``on_object`` that first starts ``gate``'s process once an object's rows are stored."""

    def stored(result: ObjectResult) -> None:
        if result.counts.loaded:
            gate.start()
        if on_object is not None:
            on_object(result)

    return stored


def _run_lake_ingest(
    settings: IngestSettings,
    source: Source,
    *,
    on_listed: Callable[[int], None] | None,
    on_object: Callable[[ObjectResult], None] | None,
) -> IngestSummary:
    """``run_ingest`` into an Iceberg warehouse (``ingest.lake``), then the quality gate
    over the run's new rows, read from the snapshot after the commits."""
    require_lake()
    from core.lake.lake import Lake  # noqa: PLC0415 - the lake extra, only when asked for
    from ingest.lake import ingest_lake  # noqa: PLC0415

    assert isinstance(settings.db_path, LakeSpec)  # noqa: S101 - the caller checked
    pem = private_key_pem(settings)
    with Lake(settings.db_path) as lake:
        summary = ingest_lake(
            source,
            lake,
            engine=settings.db_path.engine,
            endpoint_url=settings.endpoint_url,
            private_key_pem=pem,
            batch_rows=settings.batch_rows,
            on_listed=on_listed,
            on_object=on_object,
        )
    if summary.rows_loaded and settings.quality != "off":
        with open_warehouse(settings.db_path) as warehouse:
            summary.quality = check_batch(
                warehouse,
                source=source.uri,
                started_at=summary.started_at,
                object_keys=summary.loaded_keys,
                on_failure=settings.quality,
            )
    return summary


def private_key_pem(settings: IngestSettings) -> bytes | None:
    """The PEM of ``settings``' private key (file or environment), None without one."""
    if settings.private_key is not None:
        return read_private_key(settings.private_key)
    return settings.private_key_pem


def check_summary(
    warehouse: Warehouse,
    summary: IngestSummary,
    *,
    source: str,
    on_failure: str,
    gate: Checker | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> None:
    """Run the quality gate over the rows ``summary``'s run loaded; sets ``summary.quality``
    (on an Iceberg warehouse, ``warehouse`` must see the run's commits). ``meanwhile``
    runs once while the check is pending, or at once when there is nothing to check
    (``check_batch``)."""
    if summary.rows_loaded:
        summary.quality = check_batch(
            warehouse,
            source=source,
            started_at=summary.started_at,
            object_keys=summary.loaded_keys,
            on_failure=on_failure,
            gate=gate,
            meanwhile=meanwhile,
        )
    elif meanwhile is not None:
        meanwhile()


def make_decryptor(settings: IngestSettings) -> Decryptor | None:
    """The decryptor for ``settings``' private key, if one is given."""
    if settings.private_key is not None:
        return Decryptor.from_file(settings.private_key)
    if settings.private_key_pem is not None:
        return Decryptor(load_private_key(settings.private_key_pem, source="AIGW_PRIVATE_KEY"))
    return None
