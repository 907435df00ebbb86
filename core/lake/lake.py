"""``Lake``: an open lakehouse warehouse (the Iceberg catalog and the state database).

Every Iceberg commit retries on conflict (``commit``): another writer committed first,
so the table is refreshed and the change applied again on top of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import pyarrow as pa

from core.errors import WarehouseError
from core.lake.extra import require
from core.lake.spec import LakeSpec
from core.lake.state import StateDB
from core.lake.tables import DAY_PARTITIONED, FACT_SCHEMAS, load_catalog

__all__ = ["COMMIT_RETRIES", "Lake"]

COMMIT_RETRIES: Final = 8
_LIBRARY_RETRIES: Final = "commit.retry.num-retries"  # PyIceberg's own: see below
T = TypeVar("T")


class Lake:
    """The catalog and state database of ``spec``; ``close`` it (or use ``with``)."""

    def __init__(self, spec: LakeSpec, environ: Mapping[str, str] | None = None) -> None:
        require("sqlalchemy", extra="lake", feature="the iceberg warehouse")
        self.spec = spec
        self.catalog = load_catalog(spec, environ)
        self.state = StateDB(spec.state, describe=f"state database of {spec.describe()}")

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the state database and the SQL catalog's connections."""
        self.state.close()
        engine = getattr(self.catalog, "engine", None)  # a SqlCatalog's; REST has none
        if engine is not None:
            engine.dispose()

    def table(self, name: str) -> Any | None:
        """The Iceberg table ``name`` of the namespace, or None when it does not exist."""
        exceptions = require("pyiceberg.exceptions", extra="lake", feature="the iceberg warehouse")
        try:
            return self.catalog.load_table((self.spec.namespace, name))
        except exceptions.NoSuchTableError:
            return None
        except Exception as err:  # the catalog's client raises many kinds
            raise self._error(f"cannot read table {name}", err) from err

    def fact(self, name: str) -> Any:
        """The fact table ``name`` (``FACT_SCHEMAS``), created when missing; a table made
        before a column was added to ``core.schema`` gains it (nullable: old rows read
        NULL), as the DuckDB warehouse's migrations add it."""
        table = self.table(name)
        if table is None:
            return self.create(name, FACT_SCHEMAS[name])
        schema = FACT_SCHEMAS[name]
        if set(schema.names) <= {field.name for field in table.schema().fields}:
            return table
        exceptions = require("pyiceberg.exceptions", extra="lake", feature="iceberg tables")
        try:
            with table.update_schema() as update:
                update.union_by_name(schema)
        except exceptions.CommitFailedException:
            pass  # another writer added them first; the reload below has them
        except Exception as err:
            raise self._error(f"cannot add the new columns of table {name}", err) from err
        return self.table(name)

    def create(self, name: str, schema: pa.Schema, *, replace: bool = False) -> Any:
        """Create table ``name`` with ``schema`` (partitioned by day of ``ts`` where
        ``DAY_PARTITIONED`` says), dropping an existing one when ``replace``."""
        transforms = require("pyiceberg.transforms", extra="lake", feature="iceberg tables")
        exceptions = require("pyiceberg.exceptions", extra="lake", feature="iceberg tables")
        identifier = (self.spec.namespace, name)
        try:
            if replace and self.catalog.table_exists(identifier):
                self.catalog.drop_table(identifier)
            tx = self.catalog.create_table_transaction(identifier, schema=schema)
            if name in DAY_PARTITIONED:
                with tx.update_spec() as spec:
                    spec.add_field("ts", transforms.DayTransform(), "ts_day")
            tx.commit_transaction()
        except (exceptions.TableAlreadyExistsError, exceptions.CommitFailedException) as err:
            # another writer created it first (a SQL catalog says so either way)
            if self.table(name) is None:
                raise self._error(f"cannot create table {name}", err) from err
        except Exception as err:
            raise self._error(f"cannot create table {name}", err) from err
        # the table as stored, not the staged one the transaction returns: that one cannot
        # be refreshed, so a later commit conflict would fail
        return self.table(name)

    def commit(self, name: str, change: Callable[[Any], T]) -> T:
        """Apply ``change(table)`` (one Iceberg commit) to the current ``name``, retrying
        on a commit conflict with the table reloaded, up to ``COMMIT_RETRIES`` times:
        ``change`` runs again, so what it computed from the table (deduplication) is
        computed again from the other writer's rows."""
        exceptions = require("pyiceberg.exceptions", extra="lake", feature="iceberg tables")
        for attempt in range(COMMIT_RETRIES):
            table = _without_library_retries(
                self.fact(name) if name in FACT_SCHEMAS else self.table(name)
            )
            try:
                return change(table)
            except (exceptions.CommitFailedException, exceptions.ValidationException) as err:
                # another writer committed first (or changed what an overwrite checked)
                if attempt == COMMIT_RETRIES - 1:
                    raise self._error(f"commit to {name} kept conflicting", err) from err
                time.sleep(0.05 * 2**attempt)
            except (WarehouseError, ValueError, TypeError):
                raise
            except Exception as err:
                raise self._error(f"cannot write table {name}", err) from err
        raise AssertionError("unreachable")

    def _error(self, what: str, err: Exception) -> WarehouseError:
        return WarehouseError(
            f"{self.spec.describe()}: {what} ({type(err).__name__})",
            path=self.spec.location,
            detail=str(err),
        )


def _without_library_retries(table: Any) -> Any:
    """``table`` whose commits do not retry inside PyIceberg: PyIceberg would re-apply
    the same rows on top of the other writer's commit, so a row both wrote would be stored
    twice. Only this copy of the metadata changes; the stored table's properties do not."""
    if table is None:
        return None
    properties = {**table.metadata.properties, _LIBRARY_RETRIES: "0"}
    table.metadata = table.metadata.model_copy(update={"properties": properties})
    return table
