"""The outbox channel in a tmp folder: one JSON file per alert id, rewritten on redelivery,
and which failures are transient."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from alerts.channels import OutboxChannel
from alerts.errors import DeliveryError
from alerts.message import Alert, alert_id

# --- outbox ---------------------------------------------------------------------------


def test_outbox_writes_one_json_file_per_alert(tmp_path: Path, alert: Alert) -> None:
    """``<created>-<alert_id>.json`` holds as_json(), and no temporary file is left."""
    folder = tmp_path / "outbox"

    OutboxChannel("outbox", folder).send(alert)

    (written,) = folder.iterdir()
    assert re.fullmatch(rf"\d{{8}}T\d{{12}}Z-{alert.alert_id}\.json", written.name)
    assert json.loads(written.read_text()) == alert.as_json()


def test_outbox_redelivery_rewrites_the_same_file(tmp_path: Path, alert: Alert) -> None:
    """The same alert id delivered again rewrites its file and adds none; other ids add one."""
    channel = OutboxChannel("outbox", tmp_path)
    channel.send(alert)
    first = channel.path_for(alert.alert_id)

    channel.send(dataclasses.replace(alert, spent_usd=900.0))
    channel.send(alert)
    assert sorted(tmp_path.iterdir()) == [first]
    assert first is not None
    assert json.loads(first.read_text()) == alert.as_json()

    other = dataclasses.replace(alert, alert_id=alert_id("other"))
    channel.send(other)
    assert len(list(tmp_path.iterdir())) == 2


def test_outbox_converges_on_one_file_per_id(tmp_path: Path, alert: Alert) -> None:
    """Files left by two racing writers collapse to the one whose name sorts first."""
    first = tmp_path / f"20261101T000000000000Z-{alert.alert_id}.json"
    second = tmp_path / f"20261101T000000000001Z-{alert.alert_id}.json"
    first.write_text("{}")
    second.write_text("{}")

    OutboxChannel("outbox", tmp_path).send(alert)

    assert list(tmp_path.iterdir()) == [first]
    assert json.loads(first.read_text()) == alert.as_json()


def test_outbox_rejects_ids_that_are_not_file_names(tmp_path: Path, alert: Alert) -> None:
    """An id with a path separator is a permanent error and writes nothing."""
    with pytest.raises(DeliveryError) as caught:
        OutboxChannel("outbox", tmp_path / "box").send(
            dataclasses.replace(alert, alert_id="../escape")
        )

    assert not caught.value.transient
    assert list(tmp_path.iterdir()) == []


def test_outbox_unwritable_folder_is_transient(tmp_path: Path, alert: Alert) -> None:
    """A folder that cannot be created (a file is in the way) is a transient error."""
    blocker = tmp_path / "outbox"
    blocker.write_text("not a folder")

    with pytest.raises(DeliveryError) as caught:
        OutboxChannel("outbox", blocker).send(alert)

    assert caught.value.transient
    assert blocker.read_text() == "not a folder"
