"""The one column table of ``requests``: the warehouse, the loader's Arrow schema and the
docs' schema table all follow it."""

from __future__ import annotations

from pathlib import Path

import duckdb

from core.schema import RECORD_FIELDS, REQUEST_COLUMNS, arrow_schema, schema_markdown
from core.warehouse import open_warehouse
from core.warehouse.migrations import SCHEMA_VERSION, create_schema, migrate
from tests.conftest import REPO

START = "<!-- schema:requests:start -->"
END = "<!-- schema:requests:end -->"


def test_a_new_warehouse_has_the_columns_of_the_table_in_order(tmp_path: Path) -> None:
    """Created by the numbered migrations, ``requests`` has exactly the table's columns."""
    with open_warehouse(tmp_path / "w.duckdb") as warehouse:
        described = warehouse.con.execute("DESCRIBE requests").fetchall()
    canonical = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}  # how DESCRIBE spells it
    assert [(row[0], row[1]) for row in described] == [
        (c.name, canonical.get(c.duckdb_type, c.duckdb_type)) for c in REQUEST_COLUMNS
    ]


def test_the_record_fields_are_the_columns_a_record_gives() -> None:
    """``normalize`` returns every column but the three the loader adds, ts as ts_us."""
    assert len(RECORD_FIELDS) == len(REQUEST_COLUMNS) - 3
    assert RECORD_FIELDS[:2] == ("log_id", "ts_us")
    assert {"source_file", "source_line", "ingested_at"}.isdisjoint(RECORD_FIELDS)
    schema = arrow_schema(RECORD_FIELDS)
    assert str(schema.field("ts_us").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("dlp_categories").type) == "list<item: string>"


def test_the_docs_schema_table_matches_the_code() -> None:
    """docs/schema.md shows the table generated from ``core.schema`` (regenerate it with
    ``python -c 'from core.schema import schema_markdown; print(schema_markdown())'``)."""
    text = (REPO / "docs" / "schema.md").read_text()
    assert START in text and END in text, "docs/schema.md lost its schema markers"
    documented = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert documented == schema_markdown().strip()


def test_the_one_transaction_schema_equals_the_migrations_applied_one_by_one() -> None:
    """Iceberg readers build their in-memory schema with ``create_schema``: it must give the
    same tables, columns, views and recorded versions as migrating a new file."""
    by_version, at_once = duckdb.connect(), duckdb.connect()
    migrate(by_version, 0)
    create_schema(at_once)
    queries = (
        "SELECT table_name, column_name, data_type FROM information_schema.columns ORDER BY ALL",
        "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY ALL",
        "SELECT version FROM schema_migrations ORDER BY version",
    )
    for query in queries:
        assert at_once.execute(query).fetchall() == by_version.execute(query).fetchall()
    versions = at_once.execute(queries[2]).fetchall()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_the_docs_name_the_schema_version_and_every_table() -> None:
    """docs/schema.md states the current schema version and documents each table the
    migrations create (a table added without its docs fails here)."""
    text = (REPO / "docs" / "schema.md").read_text()
    assert f"(schema v{SCHEMA_VERSION})" in text.splitlines()[0]
    assert f"(v1 to v{SCHEMA_VERSION})" in text
    con = duckdb.connect()
    create_schema(con)
    tables = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
    ).fetchall()
    missing = [name for (name,) in tables if f"`{name}`" not in text]
    assert missing == []
