"""The Iceberg side of a lakehouse warehouse: the catalog, the fact tables' schemas, and
how their data files are read.

Facts (``requests``, ``rejects``, ``quality_runs``, ``request_costs`` and the rollups) are
Iceberg tables in one namespace. Their columns are the DuckDB warehouse's (``requests``
from ``core.schema``); JSON columns are Iceberg strings. ``requests`` and
``request_costs`` are partitioned by the UTC day of ``ts``. Writers conform an Arrow
table to the Iceberg schema (``conform``) before appending.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlparse

import orjson
import pyarrow as pa

from core.errors import WarehouseError
from core.lake.extra import require
from core.lake.spec import LakeSpec, make_sqlite_folder
from core.schema import REQUEST_COLUMNS

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = [
    "DAY_PARTITIONED",
    "FACT_SCHEMAS",
    "OBJECTS_SUMMARY",
    "catalog_properties",
    "conform",
    "file_system",
    "load_catalog",
    "location_uri",
    "snapshot_objects",
    "storage_properties",
]

_TS: Final = pa.timestamp("us", tz="UTC")
_CATALOG_LOCK: Final = 0x616967770002  # PostgreSQL advisory lock key: "aigw" and 2


def _field(name: str, kind: pa.DataType, required: bool = False) -> pa.Field:
    return pa.field(name, kind, nullable=not required)


_REQUESTS: Final = pa.schema(
    [_field(c.name, c.arrow, "NOT NULL" in c.ddl) for c in REQUEST_COLUMNS]
)
_REJECTS: Final = pa.schema(
    [
        _field("source_file", pa.string(), True),
        _field("line_number", pa.int32(), True),
        _field("raw_line", pa.string(), True),
        _field("raw_truncated", pa.bool_(), True),
        _field("reason", pa.string(), True),
        _field("rejected_at", _TS, True),
    ]
)
_QUALITY_RUNS: Final = pa.schema(
    [
        _field("run_id", pa.string(), True),
        _field("started_at", _TS, True),
        _field("finished_at", _TS, True),
        _field("source", pa.string(), True),
        _field("object_keys", pa.list_(pa.string()), True),
        _field("rows_checked", pa.int64(), True),
        _field("on_failure", pa.string(), True),
        _field("success", pa.bool_(), True),
        _field("critical_failures", pa.int32(), True),
        _field("warnings", pa.int32(), True),
        _field("results", pa.string(), True),
    ]
)
_REQUEST_COSTS: Final = pa.schema(
    [
        _field("log_id", pa.string(), True),
        _field("ts", _TS, True),
        _field("effective_cost_usd", pa.float64()),
        _field("saved_usd", pa.float64()),
        _field("cost_source", pa.string(), True),
    ]
)

# The fact tables with a fixed schema (the rollups' columns follow the configured
# dimensions: they are created from the frame a full refresh computes).
FACT_SCHEMAS: Final[Mapping[str, pa.Schema]] = {
    "requests": _REQUESTS,
    "rejects": _REJECTS,
    "quality_runs": _QUALITY_RUNS,
    "request_costs": _REQUEST_COSTS,
}
DAY_PARTITIONED: Final = frozenset({"requests", "request_costs"})  # by day(ts)
# The snapshot summary property of a ``requests`` commit that names the objects it stored
# (``ingest.lake_commit``): ``{"started": iso, "objects": [[key, etag, records, loaded,
# duplicates, rejected, undecrypted], ...]}``.
OBJECTS_SUMMARY: Final = "aigw.objects"


def snapshot_objects(snapshot: Any) -> list[tuple[str, str, int, int, int, int, int]]:
    """The objects a snapshot's summary names (``OBJECTS_SUMMARY``); none for the
    snapshots of other commits (rejects, rollups, compaction)."""
    summary = snapshot.summary
    text = (summary.additional_properties or {}).get(OBJECTS_SUMMARY) if summary else None
    if not text:
        return []
    return [tuple(item) for item in orjson.loads(text)["objects"]]


def location_uri(location: str) -> str:
    """``location`` as a URI PyIceberg understands: ``s3://…`` as is, a folder as
    ``file://`` and its path as written: PyIceberg does not decode a URI's path, so a
    percent-encoded one (``Path.as_uri``) put a folder ``a b`` in a folder ``a%20b``."""
    if "://" in location:
        return location
    return f"file://{Path(location).resolve()}"


def catalog_properties(spec: LakeSpec, environ: Mapping[str, str]) -> dict[str, str]:
    """PyIceberg catalog properties for ``spec``: its catalog table, the warehouse location,
    and the object store's settings (keys read from the variables the spec names)."""
    props = {k: v for k, v in spec.catalog.items() if k not in {"name", "token_env"}}
    token_env = spec.catalog.get("token_env")
    if token_env:
        token = environ.get(token_env)
        if not token:
            raise WarehouseError(
                f"{spec.describe()}: the catalog token variable {token_env} is not set",
                path=spec.location,
            )
        props["token"] = token
    if props.get("type") == "sql":
        props.setdefault("warehouse", location_uri(spec.location))
        make_sqlite_folder(props["uri"])
    props.update(storage_properties(spec, environ))
    return props


def load_catalog(spec: LakeSpec, environ: Mapping[str, str] | None = None) -> Any:
    """The PyIceberg catalog of ``spec``, its namespace created if missing."""
    catalog_module = require("pyiceberg.catalog", extra="lake", feature="the iceberg warehouse")
    props = catalog_properties(spec, os.environ if environ is None else environ)
    name = spec.catalog.get("name", "aigw")
    try:
        with _one_opener(props):
            catalog = catalog_module.load_catalog(name, **props)
            catalog.create_namespace_if_not_exists(spec.namespace)
    except Exception as err:  # the catalog's client raises many kinds (HTTP, SQL, OS)
        raise WarehouseError(
            f"{spec.describe()}: cannot open the catalog ({type(err).__name__}); check "
            "[warehouse] catalog in aigw.toml",
            path=spec.location,
            detail=str(err),
        ) from err
    return catalog


@contextmanager
def _one_opener(props: Mapping[str, str]) -> Iterator[None]:
    """For a SQL catalog on PostgreSQL, a transaction holding an advisory lock: one process
    at a time opens the catalog. Opening a new one creates its tables and the namespace,
    and two drivers (on several machines) doing it at once would collide."""
    uri = props.get("uri", "")
    if props.get("type") != "sql" or not uri.startswith("postgresql"):
        yield
        return
    sa = require("sqlalchemy", extra="lake", feature="the iceberg warehouse")
    engine = sa.create_engine(uri, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as con:
            con.execute(sa.select(sa.func.pg_advisory_xact_lock(_CATALOG_LOCK)))
            yield
    finally:
        engine.dispose()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table``'s columns of ``schema``, in its order and types (nullability included)."""
    return table.select(schema.names).cast(schema)


def file_system(
    spec: LakeSpec, environ: Mapping[str, str] | None = None
) -> tuple[pafs.FileSystem, str]:
    """A PyArrow file system for the data files, and the URI prefix its paths drop."""
    import pyarrow.fs as pafs  # noqa: PLC0415 - only readers of data files need it

    environ = os.environ if environ is None else environ
    uri = location_uri(spec.location)
    if uri.startswith("file://"):
        return pafs.LocalFileSystem(), "file://"
    if uri.startswith(("s3://", "s3a://")):
        props = storage_properties(spec, environ)
        endpoint = props.get("s3.endpoint")
        options: dict[str, Any] = {"region": props.get("s3.region", "us-east-1")}
        if "s3.access-key-id" in props:
            options["access_key"] = props["s3.access-key-id"]
            options["secret_key"] = props["s3.secret-access-key"]
        if endpoint:
            parsed = urlparse(endpoint)
            options["endpoint_override"] = parsed.netloc or endpoint
            options["scheme"] = parsed.scheme or "https"
        return pafs.S3FileSystem(**options), uri.split("://", 1)[0] + "://"
    raise WarehouseError(
        f"{spec.describe()}: unsupported location (use a folder or s3://)", path=spec.location
    )


def storage_properties(spec: LakeSpec, environ: Mapping[str, str]) -> dict[str, str]:
    """PyIceberg file IO properties of ``spec``'s object store: endpoint, region, and the
    keys read from the variables ``[warehouse] s3`` names (none for a folder)."""
    props: dict[str, str] = {}
    if "endpoint" in spec.s3:
        props["s3.endpoint"] = spec.s3["endpoint"]
    region = spec.s3.get("region") or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        props["s3.region"] = region
    key = environ.get(spec.s3.get("access_key_env", "AWS_ACCESS_KEY_ID"))
    secret = environ.get(spec.s3.get("secret_key_env", "AWS_SECRET_ACCESS_KEY"))
    if key and secret:
        props["s3.access-key-id"] = key
        props["s3.secret-access-key"] = secret
    return props
