"""The data-quality gate: a Great Expectations suite over each ingest batch's new rows.

After a batch commits, ``check_batch`` reads the rows it added (``ingested_at`` of the
run and ``source_file`` among the batch's loaded objects; only the columns in
``ingest.quality_suite.CHECKED_COLUMNS``, never bodies or metadata), validates them
with the suite in ``ingest.quality_suite`` through a GX 1.x ``ValidationDefinition``
in an ephemeral (in-memory) context, and records one ``quality_runs`` row. The rows
stay loaded whatever the outcome: the gate marks the batch, it does not undo it.

``on_failure`` decides what a failed *critical* expectation means to the caller:
``fail`` (``QualityReport.gate_failed``; ``aigw ingest`` exits 3), ``warn`` (reported
only) or ``off`` (no check, no row). Warnings never fail anything.

Great Expectations takes 2-5 s of CPU to import, so it is imported only once a run has
new rows, never at module import. Not in a thread during the load: that import is Python
bytecode holding the GIL, and with the typed parser it slowed the load of 300,000 small
records from 5.1-5.4 s to 8.6-9.1 s (measured on the quiet 2-core machine). ``aigw
ingest`` runs it in a second process instead (``ingest.quality_process``: any
``Checker`` may be passed as ``gate``); a ``QualityGate`` imports it in this process when
its first check starts. Its analytics are switched off (``GX_ANALYTICS_ENABLED=false``)
before that import, so checking opens no connection. Examples of failing rows in the
results carry ids and numbers only.

Thread-safety: a ``QualityGate`` is used by one thread at a time.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Protocol

import orjson
import pyarrow as pa

from core.warehouse import Warehouse
from ingest.errors import ConfigError, QualityGateError
from ingest.quality_suite import (
    CHECKED_COLUMNS,
    CHECKS,
    DERIVED_COLUMNS,
    INDEX_COLUMNS,
    TS_MAX_PARAMETER,
    Check,
)

__all__ = [
    "QUALITY_MODES",
    "Checker",
    "ExpectationOutcome",
    "QualityGate",
    "QualityReport",
    "check_batch",
    "check_quality_mode",
]

QUALITY_MODES: Final = ("fail", "warn", "off")
_EXAMPLES: Final = 5  # failing rows shown per expectation
_SELECT: Final = (  # column names are constants from quality_suite
    "SELECT "
    + ", ".join(
        f"{DERIVED_COLUMNS[c]} AS {c}" if c in DERIVED_COLUMNS else c for c in CHECKED_COLUMNS
    )
    + " FROM requests "
    "WHERE ingested_at = $started AND list_contains($keys, source_file)"
)


def check_quality_mode(mode: str) -> str:
    """``mode`` in lower case if it is ``fail``, ``warn`` or ``off``; ConfigError otherwise."""
    lowered = mode.strip().lower()
    if lowered not in QUALITY_MODES:
        raise ConfigError(f"quality mode {mode!r} must be fail, warn or off")
    return lowered


@dataclass(frozen=True, slots=True)
class ExpectationOutcome:
    """One expectation's result over a batch. ``unexpected_count`` is None when the
    expectation could not be evaluated (counted as failed). ``examples`` hold up to
    five failing rows: their ``log_id``, ``source_file``, ``source_line`` and, for
    numeric and time columns, the values."""

    name: str
    expectation: str
    severity: str
    success: bool
    unexpected_count: int | None
    examples: tuple[dict[str, Any], ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The stored form (one element of ``quality_runs.results``)."""
        return {
            "name": self.name,
            "expectation": self.expectation,
            "severity": self.severity,
            "success": self.success,
            "unexpected_count": self.unexpected_count,
            "examples": list(self.examples),
        }


@dataclass(frozen=True, slots=True)
class QualityReport:
    """One check of one batch, as stored in ``quality_runs``."""

    run_id: str
    started_at: datetime
    finished_at: datetime
    source: str
    object_keys: tuple[str, ...]
    rows_checked: int
    on_failure: str
    outcomes: tuple[ExpectationOutcome, ...] = field(default=())

    @property
    def critical_failures(self) -> int:
        """Failed expectations of severity ``critical``."""
        return sum(1 for o in self.outcomes if not o.success and o.severity == "critical")

    @property
    def warnings(self) -> int:
        """Failed expectations of severity ``warning``."""
        return sum(1 for o in self.outcomes if not o.success and o.severity != "critical")

    @property
    def success(self) -> bool:
        """No critical expectation failed."""
        return self.critical_failures == 0

    @property
    def gate_failed(self) -> bool:
        """A critical expectation failed and the gate is set to ``fail``."""
        return self.on_failure == "fail" and not self.success

    def failed(self) -> list[ExpectationOutcome]:
        """The failed expectations, critical first."""
        failed = [o for o in self.outcomes if not o.success]
        return sorted(failed, key=lambda o: o.severity != "critical")


Outcomes = Callable[[], tuple[ExpectationOutcome, ...]]  # a pending check's answer


class Checker(Protocol):
    """What runs the suite over a batch's new rows: a ``QualityGate`` here, or
    ``ingest.quality_process.GateProcess`` in a second process (same outcomes)."""

    def submit(self, table: pa.Table, *, now: datetime) -> Outcomes:
        """Start checking ``table`` (``CHECKED_COLUMNS`` as read from ``requests``); the
        function returned waits for the suite's outcomes (raising ``QualityGateError`` if
        the suite cannot run). Call it once, before the next ``submit``."""
        ...


class QualityGate:
    """The suite, built once in an ephemeral GX context on first use, then reused for
    every batch of the process (a watcher checks many)."""

    def __init__(self) -> None:
        self._definition: Any = None

    def prepare(self) -> None:
        """Import GX and build the suite now rather than at the first check (the second
        process does this while the load runs). Raises ``QualityGateError``."""
        with _suite_errors():
            self._definition = self._definition or self._build()

    def submit(self, table: pa.Table, *, now: datetime) -> Outcomes:
        """``check_table`` deferred: the suite runs when the function returned is called."""
        return functools.partial(self.check_table, table, now=now)

    def check_table(self, table: pa.Table, *, now: datetime) -> tuple[ExpectationOutcome, ...]:
        """Run the suite over ``table`` (``CHECKED_COLUMNS`` as read from ``requests``)."""
        frame = table.to_pandas()
        # GX compares only int64 and float64 columns vectorised; int32 goes value by value.
        int32 = {name: "int64" for name in frame.columns if frame[name].dtype == "int32"}
        return self.validate(frame.astype(int32), now=now)

    def validate(self, frame: Any, *, now: datetime) -> tuple[ExpectationOutcome, ...]:
        """Run the suite over a pandas frame of ``CHECKED_COLUMNS``."""
        with _suite_errors():
            definition = self._definition or self._build()
            result = definition.run(
                batch_parameters={"dataframe": frame},
                expectation_parameters={TS_MAX_PARAMETER: now + timedelta(days=1)},
                result_format={
                    "result_format": "SUMMARY",
                    "partial_unexpected_count": _EXAMPLES,
                    "unexpected_index_column_names": list(INDEX_COLUMNS),
                },
            )
        ordered = _in_suite_order(result.results)
        return tuple(_outcome(check, item) for check, item in zip(CHECKS, ordered, strict=True))

    def _build(self) -> Any:
        gx, gxe, progress_bars = _import_gx()
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = progress_bars(globally=False)
        asset = context.data_sources.add_pandas("aigw").add_dataframe_asset("requests")
        batch = asset.add_batch_definition_whole_dataframe("new rows")
        suite = context.suites.add(gx.ExpectationSuite(name="aigw requests"))
        for check in CHECKS:
            expectation = getattr(gxe, check.expectation)
            suite.add_expectation(
                expectation(**check.kwargs, severity=check.severity, notes=check.name)
            )
        definition = gx.ValidationDefinition(name="aigw batch", data=batch, suite=suite)
        self._definition = context.validation_definitions.add(definition)
        return self._definition


@contextmanager
def _suite_errors() -> Iterator[None]:
    """Whatever GX raises becomes ``QualityGateError``: none may escape as a traceback."""
    try:
        yield
    except QualityGateError:
        raise
    except Exception as err:  # GX raises many kinds
        raise QualityGateError(
            f"the data-quality suite could not run ({type(err).__name__}); the rows are "
            "loaded; pass --quality off to skip the check",
            detail=str(err),
        ) from err


def check_batch(
    warehouse: Warehouse,
    *,
    source: str,
    started_at: datetime,
    object_keys: Sequence[str],
    on_failure: str,
    gate: Checker | None = None,
    now: datetime | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> QualityReport | None:
    """Check the rows the run that started at ``started_at`` loaded from ``object_keys``
    with ``gate`` (a ``QualityGate`` of its own if None) and record the result in
    ``quality_runs`` (its own transaction; on an Iceberg warehouse, opened after the
    run's commits, an append to its ``quality_runs``).

    ``meanwhile``, if given, runs once in this thread before the check's outcomes are
    awaited: after the rows are read and handed to ``gate`` (with a ``GateProcess``, while
    its child validates them), or as soon as it is known that nothing is to be checked
    (it does not run if reading the rows raises). If it raises, the error propagates and
    nothing is recorded (the check is abandoned: close the gate).

    Returns None, recording nothing, when ``on_failure`` is ``off`` or the batch
    added no rows. Raises ``QualityGateError`` if the suite cannot run and
    ``WarehouseError`` if the warehouse cannot be read or written.
    """
    report = _check(warehouse, source, started_at, object_keys, on_failure, gate, now, meanwhile)
    if report is not None:
        _store(warehouse, report)
    return report


def _check(  # noqa: PLR0917 - private: the two public checks pass their arguments on
    warehouse: Warehouse,
    source: str,
    started_at: datetime,
    object_keys: Sequence[str],
    on_failure: str,
    gate: Checker | None,
    now: datetime | None,
    meanwhile: Callable[[], None] | None = None,
) -> QualityReport | None:
    meanwhile = meanwhile or _nothing
    if on_failure == "off" or not object_keys:
        meanwhile()
        return None
    clock = datetime.now(tz=UTC)
    with warehouse.errors():
        table = (
            warehouse.con.execute(_SELECT, {"started": started_at, "keys": list(object_keys)})
            .arrow()
            .read_all()
        )
    if table.num_rows == 0:
        meanwhile()
        return None
    pending = (gate or QualityGate()).submit(table, now=now or clock)
    meanwhile()
    outcomes = pending()
    return QualityReport(
        run_id=str(uuid.uuid4()),
        started_at=clock,
        finished_at=datetime.now(tz=UTC),
        source=source,
        object_keys=tuple(object_keys),
        rows_checked=table.num_rows,
        on_failure=on_failure,
        outcomes=outcomes,
    )


def _nothing() -> None:
    """No work to overlap with the check."""


def _store(warehouse: Warehouse, report: QualityReport) -> None:
    if warehouse.lake is not None:
        from core.lake.tables import FACT_SCHEMAS, conform  # noqa: PLC0415 - the lake extra

        schema = FACT_SCHEMAS["quality_runs"]
        table = pa.Table.from_pylist([dict(zip(schema.names, _row(report), strict=True))])
        warehouse.lake.commit("quality_runs", lambda t: t.append(conform(table, schema)))
        return
    with warehouse.errors():
        warehouse.con.execute(
            "INSERT INTO quality_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _row(report)
        )


def _row(report: QualityReport) -> list[Any]:
    """The ``quality_runs`` row of ``report``, in the table's column order."""
    return [
        report.run_id,
        report.started_at,
        report.finished_at,
        report.source,
        list(report.object_keys),
        report.rows_checked,
        report.on_failure,
        report.success,
        report.critical_failures,
        report.warnings,
        orjson.dumps([outcome.as_json() for outcome in report.outcomes]).decode(),
    ]


def _import_gx() -> tuple[Any, Any, Any]:
    """Great Expectations, imported on first use with its analytics off."""
    # GX reads this when a context is made; set before import so no event is ever sent.
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    try:
        with warnings.catch_warnings():
            # Its import chain warns about deprecated stdlib modules; not ours to fix.
            warnings.simplefilter("ignore")
            gx = importlib.import_module("great_expectations")
            gxe = importlib.import_module("great_expectations.expectations")
            base = importlib.import_module("great_expectations.data_context.types.base")
    except ImportError as err:
        raise QualityGateError(
            "the data-quality gate needs great-expectations; install aigw's dependencies "
            "or pass --quality off",
            detail=str(err),
        ) from err
    return gx, gxe, base.ProgressBarsConfig


def _in_suite_order(results: Sequence[Any]) -> list[Any]:
    """Results matched to ``CHECKS`` by the note each expectation carries (its name)."""
    by_name = {str(item.expectation_config.notes): item for item in results}
    return [by_name[check.name] for check in CHECKS]


def _outcome(check: Check, item: Any) -> ExpectationOutcome:
    info = item.exception_info or {}
    if info.get("raised_exception"):
        return ExpectationOutcome(check.name, check.expectation, check.severity, False, None)
    result = item.result or {}
    examples = []
    for row in (result.get("partial_unexpected_index_list") or [])[:_EXAMPLES]:
        shown = {name: _plain(row.get(name)) for name in INDEX_COLUMNS}
        if check.show_values:
            shown |= {name: _plain(row.get(name)) for name in check.columns}
        examples.append(shown)
    count = result.get("unexpected_count")
    return ExpectationOutcome(
        check.name,
        check.expectation,
        check.severity,
        bool(item.success),
        int(count) if count is not None else 0,
        tuple(examples),
    )


def _plain(value: Any) -> Any:
    """A JSON-ready id or number: numpy scalars unwrapped, times (pandas' too) as ISO 8601,
    NaN and NaT as null."""
    if isinstance(value, datetime | date):  # pandas.Timestamp is a datetime
        return value.isoformat()
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else float(value)  # numpy.float64 is a float
    if hasattr(value, "item"):  # numpy scalar
        return _plain(value.item())
    return None if value != value else str(value)  # noqa: PLR0124 - true only for NaT
