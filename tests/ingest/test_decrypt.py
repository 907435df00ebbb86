"""Encrypted Logpush fields: round trip with the right key, kept with a reason for a wrong
key or a tampered value, usage taken from decrypted response bodies. Test vectors are
made here following Cloudflare's scheme (RSA-OAEP/SHA-256-wrapped AES-256-GCM key)."""

from __future__ import annotations

import base64
import os
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.warehouse import MIGRATIONS, SCHEMA_VERSION, open_warehouse
from ingest.decrypt import Decryptor
from ingest.records import ROW_FIELDS, normalize
from tests.conftest import logpush_record, run_aigw, write_ndjson

OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


@cache
def private_key(name: str) -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key per name (generated once per test run)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(name: str) -> bytes:
    return private_key(name).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def encrypted(
    value: Any, key_name: str = "gateway", aes_key: bytes | None = None
) -> dict[str, str]:
    """``value`` as Cloudflare writes an encrypted field for the gateway's public key."""
    aes_key = aes_key or AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    data = AESGCM(aes_key).encrypt(nonce, orjson.dumps(value), None)
    wrapped = private_key(key_name).public_key().encrypt(aes_key, OAEP)
    return {
        "type": "encrypted",
        "key": base64.b64encode(wrapped).decode(),
        "iv": base64.b64encode(nonce).decode(),
        "data": base64.b64encode(data).decode(),
    }


def sealed_record(key_name: str = "gateway", **fields: Any) -> dict[str, Any]:
    """A Logpush record whose metadata and bodies are encrypted (for ``key_name``'s key)
    and Metrics has no tokens."""
    aes_key = AESGCM.generate_key(bit_length=256)  # one fresh key per record, as Cloudflare does
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    response = {
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 80,
            "prompt_tokens_details": {"cached_tokens": 1000},
        }
    }
    record = logpush_record(
        Metadata=encrypted({"team": "search", "user": "ana"}, key_name, aes_key=aes_key),
        RequestBody=encrypted(body, key_name, aes_key=aes_key),
        ResponseBody=encrypted(response, key_name, aes_key=aes_key),
        Metrics={"cost": 0.0005, "durationMs": 700},
    )
    record.update(fields)
    return record


def _ingest(
    tmp_path: Path,
    db_path: Path,
    records: list[dict[str, Any]],
    *args: str,
    env: dict[str, str] | None = None,
) -> str:
    write_ndjson(tmp_path / "logs" / "a.log.gz", records)
    # the gate is not what these tests check: off spares importing GX (about 6 s of CPU)
    result = run_aigw(
        "ingest", str(tmp_path / "logs"), "--db", str(db_path), "--quality", "off", *args, env=env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _rows(db_path: Path) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute(
            "SELECT metadata->>'team', tokens_in, tokens_out, cache_read_tokens, request_body, "
            "response_body, decrypt_error FROM requests ORDER BY ts"
        ).fetchall()
    finally:
        con.close()


def test_the_right_key_opens_metadata_and_takes_usage_from_the_response(
    tmp_path: Path, db_path: Path
) -> None:
    """With --private-key, metadata is queryable, tokens come from the body, bodies are dropped."""
    key_file = tmp_path / "gateway.pem"
    key_file.write_bytes(pem("gateway"))
    out = _ingest(tmp_path, db_path, [sealed_record()], "--private-key", str(key_file))
    assert "decryption" not in out
    assert _rows(db_path) == [("search", 1200, 80, 1000, None, None, None)]
    report = run_aigw("report", "cost", "--by", "team", "--db", str(db_path), "--format", "csv")
    assert report.stdout.splitlines()[1].startswith("search,1,")


def test_the_key_can_come_from_the_environment(tmp_path: Path, db_path: Path) -> None:
    """AIGW_PRIVATE_KEY holding the PEM works like --private-key."""
    _ingest(tmp_path, db_path, [sealed_record()], env={"AIGW_PRIVATE_KEY": pem("gateway").decode()})
    assert _rows(db_path)[0][0] == "search"


def test_a_wrong_key_keeps_the_record_with_a_reason(tmp_path: Path, db_path: Path) -> None:
    """Another gateway's key opens nothing: the record is loaded, encrypted, with decrypt_error."""
    key_file = tmp_path / "other.pem"
    key_file.write_bytes(pem("other"))
    out = _ingest(
        tmp_path, db_path, [sealed_record(), sealed_record()], "--private-key", str(key_file)
    )
    assert "decryption: 2 rows kept with a field that did not open" in out
    rows = _rows(db_path)
    assert [row[6] for row in rows] == [
        "Metadata: encrypted field's key does not open with this private key"
    ] * 2
    assert rows[0][0] is None and rows[0][1] is None  # no metadata, no tokens
    assert orjson.loads(rows[0][5])["type"] == "encrypted"  # kept as it came


def test_a_tampered_value_fails_authentication(tmp_path: Path, db_path: Path) -> None:
    """One flipped byte in the ciphertext of the response body: that field stays encrypted."""
    record = sealed_record()
    data = bytearray(base64.b64decode(record["ResponseBody"]["data"]))
    data[3] ^= 0x01
    record["ResponseBody"]["data"] = base64.b64encode(bytes(data)).decode()
    key_file = tmp_path / "gateway.pem"
    key_file.write_bytes(pem("gateway"))
    _ingest(tmp_path, db_path, [record], "--private-key", str(key_file))
    [row] = _rows(db_path)
    assert row[0] == "search"  # metadata opened
    assert row[1] is None  # no usage: the response body did not open
    assert row[6] == "ResponseBody: encrypted field failed authentication (tampered or wrong key)"


def test_without_a_key_encrypted_fields_are_kept_as_they_are(tmp_path: Path, db_path: Path) -> None:
    """No key: nothing is decrypted and nothing is reported as an error."""
    _ingest(tmp_path, db_path, [sealed_record()])
    [row] = _rows(db_path)
    assert row[0] is None and row[6] is None
    assert orjson.loads(row[4])["type"] == "encrypted"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            {
                "usage": {
                    "input_tokens": 100,
                    "output_tokens": 20,
                    "cache_read_input_tokens": 900,
                    "cache_creation_input_tokens": 50,
                }
            },
            (1050, 20, 900, 50),
        ),
        (
            {
                "usageMetadata": {
                    "promptTokenCount": 300,
                    "candidatesTokenCount": 40,
                    "cachedContentTokenCount": 200,
                }
            },
            (300, 40, 200, None),
        ),
        (
            {"result": {"response": "hi"}, "usage": {"prompt_tokens": 7, "completion_tokens": 3}},
            (7, 3, None, None),
        ),
    ],
    ids=["anthropic", "google", "workers-ai"],
)
def test_usage_shapes_of_each_provider_are_read_from_the_response_body(
    response: dict[str, Any], expected: tuple[int | None, ...]
) -> None:
    """Anthropic (cache tokens added to input), Google and Workers AI usage, read when
    Metrics has none."""
    record = logpush_record(ResponseBody=encrypted(response), Metrics={"durationMs": 5})
    row = dict(
        zip(
            ROW_FIELDS,
            normalize(record, orjson.dumps(record), Decryptor(private_key("gateway"))),
            strict=True,
        )
    )
    assert (
        row["tokens_in"],
        row["tokens_out"],
        row["cache_read_tokens"],
        row["cache_write_tokens"],
    ) == expected


def test_anthropic_cache_writes_by_ttl_are_read_from_the_response_body() -> None:
    """Anthropic's ``cache_creation`` splits the 50 writes: 20 with a 5-minute TTL, 30 with
    a 1-hour one; the row keeps the total and the 1-hour part."""
    usage = {
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_creation_input_tokens": 50,
        "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 30},
    }
    record = logpush_record(ResponseBody=encrypted({"usage": usage}), Metrics={"durationMs": 5})
    decryptor = Decryptor(private_key("gateway"))
    row = dict(zip(ROW_FIELDS, normalize(record, orjson.dumps(record), decryptor), strict=True))
    assert (row["tokens_in"], row["cache_write_tokens"], row["cache_write_1h_tokens"]) == (
        150,
        50,
        30,
    )


def test_a_version_1_warehouse_is_migrated_to_hold_decrypt_errors(db_path: Path) -> None:
    """A warehouse written before decryption existed gains the column on the next open."""
    db_path.parent.mkdir(parents=True)
    con = duckdb.connect(str(db_path))
    con.execute(MIGRATIONS[1])
    con.execute("INSERT INTO schema_migrations VALUES (1, now())")
    con.close()
    with open_warehouse(db_path) as warehouse:
        versions = warehouse.con.execute("SELECT version FROM schema_migrations ORDER BY 1")
        assert versions.fetchall() == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
        columns = [row[0] for row in warehouse.con.execute("DESCRIBE requests").fetchall()]
    assert "decrypt_error" in columns
