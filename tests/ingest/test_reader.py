"""Unit tests for ``ingest.reader``: an object's bytes in, numbered parsed records out."""

from __future__ import annotations

import gzip
import io

import orjson
import pytest

from core.errors import ObjectReadError
from ingest import reader
from ingest.reader import ParsedRecord, iter_records
from ingest.records import InvalidRecord

KEY = "logs/20260418/part-0.json"
ONE, TWO, THREE = {"n": 1}, {"n": 2}, {"n": 3}


def read_all(data: bytes, key: str = KEY) -> list[ParsedRecord]:
    """Every record of an object held in ``data``."""
    return list(iter_records(io.BytesIO(data), key))


def numbered(data: bytes, key: str = KEY) -> list[tuple[int, object]]:
    """(number, parsed value) of every record, raw bytes left out."""
    return [(number, value) for number, _, value in read_all(data, key)]


def ndjson(*records: object) -> bytes:
    """Records as NDJSON, one per line, with a final newline."""
    return b"".join(orjson.dumps(record) + b"\n" for record in records)


def test_line_numbers_count_skipped_blank_lines() -> None:
    """Record numbers are file line numbers: blank and whitespace-only lines count, yield none."""
    data = b'{"n":1}\n\n   \n{"n":2}\n\t\r\n{"n":3}\n\n'
    assert numbered(data) == [(1, ONE), (4, TWO), (6, THREE)]


def test_crlf_line_endings_parse() -> None:
    """Windows line endings do not break parsing or numbering."""
    assert numbered(b'{"n":1}\r\n{"n":2}\r\n\r\n{"n":3}\r\n') == [(1, ONE), (2, TWO), (4, THREE)]


def test_utf8_bom_on_first_line_is_ignored() -> None:
    """A UTF-8 byte-order mark before the first record is dropped, from the raw bytes too."""
    records = read_all(b'\xef\xbb\xbf{"n":1}\n{"n":2}\n')
    assert records == [(1, b'{"n":1}', ONE), (2, b'{"n":2}', TWO)]


def test_malformed_line_is_reported_and_reading_goes_on() -> None:
    """A bad line yields an InvalidRecord "bad JSON ..." at its line; later lines still load."""
    records = read_all(b'{"n":1}\n{"n":\n{"n":3}\n')
    assert [number for number, _, _ in records] == [1, 2, 3]
    number, raw, value = records[1]
    assert (number, raw) == (2, b'{"n":')
    assert isinstance(value, InvalidRecord)
    assert str(value).startswith("bad JSON")
    assert "\n" not in str(value)
    assert (records[0][2], records[2][2]) == (ONE, THREE)


@pytest.mark.parametrize("key", ["logs/part-0.json", "logs/part-0.log.gz", "logs/part-0"])
def test_gzip_is_detected_by_magic_bytes_whatever_the_name(key: str) -> None:
    """A gzip object reads the same as its plain text, whatever its name says."""
    data = ndjson(ONE, TWO, THREE)
    expected = [(1, ONE), (2, TWO), (3, THREE)]
    assert numbered(gzip.compress(data, mtime=0), key) == expected
    assert numbered(data, key) == expected


def test_multi_member_gzip_yields_every_record() -> None:
    """Concatenated gzip members (appended Logpush batches) are all read, numbered on."""
    data = gzip.compress(ndjson(ONE, TWO)) + gzip.compress(ndjson(THREE))
    assert numbered(data) == [(1, ONE), (2, TWO), (3, THREE)]


def test_gzip_member_boundary_inside_a_line_joins_the_line() -> None:
    """A record split across two gzip members comes out whole."""
    data = gzip.compress(b'{"n":1}\n{"n"') + gzip.compress(b':2}\n{"n":3}\n')
    assert numbered(data) == [(1, ONE), (2, TWO), (3, THREE)]


def _gzipped_sample() -> bytes:
    lines = ndjson(*({"n": n, "pad": "x" * (n % 50)} for n in range(300)))
    return gzip.compress(lines, mtime=0)


def test_truncated_gzip_raises_object_read_error() -> None:
    """A gzip object cut short is refused as a whole, naming the object, never half-loaded."""
    data = _gzipped_sample()
    with pytest.raises(ObjectReadError, match=r"truncated|corrupt") as info:
        read_all(data[: len(data) // 2])
    assert KEY in str(info.value)


def test_garbage_after_gzip_header_raises_object_read_error() -> None:
    """Bytes that start like gzip but hold no valid deflate data are refused as corrupt."""
    header = _gzipped_sample()[:10]
    with pytest.raises(ObjectReadError, match=r"truncated|corrupt") as info:
        read_all(header + b"\xff" * 64)
    assert KEY in str(info.value)


def test_garbage_after_complete_gzip_member_raises_object_read_error() -> None:
    """Trailing junk after a valid gzip member is refused rather than silently ignored."""
    with pytest.raises(ObjectReadError, match="corrupt"):
        read_all(_gzipped_sample() + b"not gzip at all")


@pytest.mark.parametrize("indent", [False, True])
def test_json_array_document_yields_elements_numbered_from_one(indent: bool) -> None:
    """A JSON array of logs, compact or pretty-printed, yields its elements numbered 1..n."""
    data = orjson.dumps([ONE, TWO, THREE], option=orjson.OPT_INDENT_2 if indent else None)
    assert (b"\n" in data) is indent
    records = read_all(data)
    assert records == [
        (1, b'{"n":1}', ONE),
        (2, b'{"n":2}', TWO),
        (3, b'{"n":3}', THREE),
    ]


def _api_page(*records: object) -> dict[str, object]:
    return {
        "success": True,
        "errors": [],
        "messages": [],
        "result": list(records),
        "result_info": {"page": 1, "per_page": 50, "count": len(records), "total_count": 3},
    }


def test_pretty_printed_api_page_yields_result_elements() -> None:
    """A saved Cloudflare API response, pretty-printed, yields the logs in its result."""
    data = orjson.dumps(_api_page(ONE, TWO, THREE), option=orjson.OPT_INDENT_2)
    assert data.startswith(b"{\n")
    assert numbered(data) == [(1, ONE), (2, TWO), (3, THREE)]


def test_pretty_printed_api_page_with_bom_and_crlf() -> None:
    """A pretty API page saved on Windows (BOM, CRLF) still yields the logs in its result."""
    pretty = orjson.dumps(_api_page(ONE, TWO), option=orjson.OPT_INDENT_2)
    data = b"\xef\xbb\xbf" + pretty.replace(b"\n", b"\r\n")
    assert numbered(data) == [(1, ONE), (2, TWO)]


def test_compact_api_pages_on_ndjson_lines_yield_their_elements() -> None:
    """One compact API page per line yields each page's logs under that page's line number."""
    data = b"\n" + ndjson(_api_page(ONE, TWO), _api_page(THREE))
    assert read_all(data) == [
        (2, b'{"n":1}', ONE),
        (2, b'{"n":2}', TWO),
        (3, b'{"n":3}', THREE),
    ]


def _big_ndjson(min_bytes: int) -> tuple[bytes, list[dict[str, object]]]:
    records: list[dict[str, object]] = []
    size = 0
    while size < min_bytes:
        n = len(records)
        record = {"n": n, "pad": "abcdefghij" * (n % 61)}  # 0..600 bytes of padding
        records.append(record)
        size += len(orjson.dumps(record)) + 1
    return ndjson(*records), records


@pytest.mark.parametrize("gz", [False, True])
def test_object_bigger_than_a_chunk_yields_every_record_once(gz: bool) -> None:
    """A ~10 MiB object streams in 4 MiB chunks with no record lost, doubled or cut in two."""
    assert reader.CHUNK_BYTES == 4 * 1024 * 1024
    data, records = _big_ndjson(10 * 1024 * 1024)
    # Records straddle both chunk boundaries: the chunks do not end on a newline.
    assert data[reader.CHUNK_BYTES - 1] != ord("\n")
    assert data[2 * reader.CHUNK_BYTES - 1] != ord("\n")
    got = numbered(gzip.compress(data, mtime=0, compresslevel=1) if gz else data)
    assert len(got) == len(records)
    assert got == list(enumerate(records, start=1))


def test_single_record_bigger_than_a_chunk_is_intact() -> None:
    """One record larger than a whole chunk is read in full, between its neighbours."""
    huge = {"n": 2, "blob": "z" * (reader.CHUNK_BYTES + 12345)}
    data = ndjson(ONE, huge, THREE)
    assert numbered(data) == [(1, ONE), (2, huge), (3, THREE)]
