"""`aigw proxy` killed with SIGKILL (no flush: the test config holds batches for an hour):
every answered request's record is already in the journal on disk, and the next start
uploads it once, under the same object key, so `aigw ingest` counts each request once."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.conftest import run_aigw
from tests.proxy.gateway_fixtures import (
    GATEWAY_KEYS,
    providers,
    read_records,
    request,
    write_config,
)
from tests.proxy.test_gateway_process import CHAT_BODY, free_port, start_proxy


def _journal_lines(journal: Path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in journal.glob("*.ndjson"))


def test_sigkill_loses_no_answered_request(tmp_path: Path, db_path: Path) -> None:
    port = free_port()
    logs, journal = tmp_path / "logs", tmp_path / "spool" / "journal"
    with providers() as urls:
        config = write_config(tmp_path, urls, "")
        process = start_proxy(config, port)
        url = f"http://127.0.0.1:{port}"
        statuses = []
        for n in range(20):
            headers = {
                "authorization": f"Bearer {GATEWAY_KEYS['team-a']}",
                "content-type": "application/json",
                "cf-aig-event-id": f"kill-{n:02d}",
            }
            statuses.append(request(url, "POST", "/v1/chat/completions", CHAT_BODY, headers).status)
        deadline = time.monotonic() + 10  # the journal is synced within 0.2 s; a busy CI waits
        while _journal_lines(journal) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        assert read_records(logs) == []  # nothing was uploaded before the kill
        assert _journal_lines(journal) == 20

        for _ in range(2):  # the next start recovers the journal; the one after finds nothing
            process = start_proxy(config, port)
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
            assert process.returncode == 0, stderr
    assert statuses == [200] * 20
    records = read_records(logs)
    assert sorted(r["EventId"] for r in records) == [f"kill-{n:02d}" for n in range(20)]
    assert len(list(logs.rglob("*.log.gz"))) == 1
    assert list(journal.glob("*.ndjson")) == []
    result = run_aigw("ingest", str(logs), "--db", str(db_path))
    assert result.returncode == 0, result.stderr
    assert "rows: 20 loaded, 0 duplicates, 0 rejected of 20 records" in result.stdout


def test_a_batch_recovered_twice_is_the_same_object(tmp_path: Path) -> None:
    """A crash after the upload but before the journal file was deleted: recovering it again
    writes the same object key (an overwrite), never a second copy."""
    port = free_port()
    logs, journal = tmp_path / "logs", tmp_path / "spool" / "journal"
    with providers() as urls:
        config = write_config(tmp_path, urls, "")
        process = start_proxy(config, port)
        headers = {"authorization": f"Bearer {GATEWAY_KEYS['team-a']}"}
        url = f"http://127.0.0.1:{port}"
        assert request(url, "POST", "/v1/chat/completions", CHAT_BODY, headers).status == 200
        deadline = time.monotonic() + 10
        while _journal_lines(journal) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        [kept] = list(journal.glob("*.ndjson"))
        saved = kept.read_bytes()
        for _ in range(2):  # recover, then put the journal file back as if the delete was lost
            process = start_proxy(config, port)
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)
            kept.write_bytes(saved)
        kept.unlink()
    objects = list(logs.rglob("*.log.gz"))
    assert len(objects) == 1
    assert objects[0].name.endswith(f"_{kept.stem}.log.gz")
    assert len(read_records(logs)) == 1
