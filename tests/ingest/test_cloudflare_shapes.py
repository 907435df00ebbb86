"""Cloudflare records as they really come (``fixtures/cloudflare_shapes.jsonl``, written
from Cloudflare's public logs API and Logpush field lists): REST-only fields in their own
columns, a repeated key's first value kept and named, encrypted Metadata without a key
counted, and both normalisation paths giving the same rows for every line."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest import IngestSettings, run_ingest
from ingest.engine import SqlEngine, read_object
from ingest.loader import ParsedBatch, parse_object
from ingest.records import ROW_FIELDS, normalize

Query = Callable[..., list[tuple[Any, ...]]]
FIXTURE = Path(__file__).parent / "fixtures" / "cloudflare_shapes.jsonl"
DUPLICATE = b'{"id":"first","created_at":"2026-11-20T09:05:00Z","model":"m","id":"second"}'


def _rows(batches: list[ParsedBatch]) -> list[dict[str, Any]]:
    return [row for b in batches if b.rows is not None for row in b.rows.to_pylist()]


@pytest.mark.parametrize("raw", [DUPLICATE, DUPLICATE.replace(b'":', b'" :')])
def test_a_repeated_key_keeps_its_first_value_and_is_named(raw: bytes) -> None:
    """Cloudflare's docs example repeats ``id``: the first value is the record's id."""
    row = dict(zip(ROW_FIELDS, normalize(orjson.loads(raw), raw), strict=True))
    assert (row["log_id"], row["duplicate_keys"]) == ("first", ["id"])


def test_a_record_without_repeats_names_none() -> None:
    """Keys that only look alike (nested, or inside strings) are no repeat."""
    raw = b'{"id":"a","created_at":"2026-11-20T09:05:00Z","metadata":"{\\"id\\":1}"}'
    row = dict(zip(ROW_FIELDS, normalize(orjson.loads(raw), raw), strict=True))
    assert (row["log_id"], row["duplicate_keys"]) == ("a", None)


@pytest.mark.parametrize(
    ("fields", "endpoint"),
    [
        ({"request_type": "embeddings"}, "embeddings"),
        ({"request_type": "chat"}, "chat/completions"),
        ({"request_type": "universal"}, None),  # may call anything: no endpoint guessed
        ({"request_type": "embeddings", "path": "v1/embeddings"}, "v1/embeddings"),
    ],
)
def test_a_rest_record_without_path_takes_its_endpoint_from_request_type(
    fields: dict[str, Any], endpoint: str | None
) -> None:
    """``path`` wins; without it, a request type that names one operation gives the endpoint,
    on both paths."""
    record = {"id": "e", "created_at": "2026-11-20T09:04:00Z", "model": "m", **fields}
    raw = orjson.dumps(record)
    row = dict(zip(ROW_FIELDS, normalize(record, raw), strict=True))
    assert row["endpoint"] == endpoint
    [fast] = _rows(list(read_object(io.BytesIO(raw), "obj", SqlEngine(min_lines=0))))
    assert fast["endpoint"] == endpoint


def test_both_paths_give_the_same_rows_for_the_fixture() -> None:
    """The SQL path and the Python path agree on every shape of the fixture."""
    data = FIXTURE.read_bytes()
    python = _rows(list(parse_object(io.BytesIO(data), "obj")))
    engine = _rows(list(read_object(io.BytesIO(data), "obj", SqlEngine(min_lines=0))))
    assert engine == python
    assert len(python) == 10


def test_the_fixture_loads_with_the_rest_fields_in_columns(
    tmp_path: Path, db_path: Path, query: Query
) -> None:
    """10 records, 10 rows: REST fields in columns, not in extra; one repeated key named;
    one encrypted Metadata counted in the summary and in a quality warning."""
    logs = tmp_path / "logs"
    logs.mkdir()
    shutil.copy(FIXTURE, logs / "cloudflare_shapes.jsonl")
    summary = run_ingest(IngestSettings(source=str(logs), db_path=db_path))
    assert (summary.rows_loaded, summary.rejected, summary.locked_metadata) == (10, 0, 1)
    rows = query(
        "SELECT log_id, custom_cost, model_type, request_type, request_content_type, "
        "response_content_type, duplicate_keys, extra FROM requests "
        "WHERE log_format = 'rest' ORDER BY ts"
    )
    assert [row[:2] for row in rows] == [
        ("01KBQ7Y0A1COMPATOPENAI0001", False),
        ("01KBQ7Y0A1WORKERSAI0000002", False),
        ("01KBQ7Y0A1GOOGLEAISTUDIO03", False),
        ("01KBQ7Y0A1CUSTOMCOST000004", True),
        ("01KBQ7Y0A1EMBEDDINGS000005", False),
        ("01KBQ7Y0A1DUPLICATEID00006", False),
    ]
    assert rows[0][2:] == (
        "chat", "universal", "application/json", "application/json", None, None
    )  # fmt: skip
    assert rows[4][2:4] == ("embeddings", "embeddings")
    assert query("SELECT endpoint FROM requests WHERE log_id = '01KBQ7Y0A1EMBEDDINGS000005'") == [
        ("embeddings",)
    ]  # no path in the record: from its request type
    assert rows[5][6] == ["id"]
    report = summary.quality
    assert report is not None
    failed = {o.name: o for o in report.outcomes if not o.success}
    assert sorted(failed) == [
        "metadata not encrypted (pass --private-key)",
        "no repeated JSON keys",
    ]
    assert failed["metadata not encrypted (pass --private-key)"].unexpected_count == 1
    [example] = failed["no repeated JSON keys"].examples
    assert example["repeated_keys"] == "id"
    assert example["log_id"] == "01KBQ7Y0A1DUPLICATEID00006"
