"""A local outbox folder: one JSON file per alert (the demo's default channel).

Files are named ``<created>-<alert_id>.json``, ``<created>`` being the UTC time
of the first delivery (``20261120T130000123456Z``), so ``ls`` lists alerts in
the order they fired. Delivery is idempotent: re-delivering an alert id rewrites
the file that already carries that id, keeping its name, and never adds a
second one. Each file is written to a hidden temporary file in the same folder,
flushed to disk, then renamed over its final name (``os.replace``), so a reader
sees either no file or a complete one.

Two processes delivering the same id at the same instant may both create a
file; each then removes every file of that id but the one whose name sorts
first, so they converge on one.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from alerts.errors import DeliveryError
from alerts.message import Alert
from core.files import write_atomic

__all__ = ["OutboxChannel"]

# Alert ids become file names: no separators, no dot-files, no glob characters.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class OutboxChannel:
    """Writes each alert as ``<folder>/<created>-<alert_id>.json`` (JSON of ``as_json()``).

    The folder is created on first use. Failing writes (disk full, permissions)
    are transient: the alert is kept and retried on the next run. Safe to use
    from several threads and processes.
    """

    __slots__ = ("folder", "name")

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"OutboxChannel(name={self.name!r}, folder={str(self.folder)!r})"

    def path_for(self, alert_id: str) -> Path | None:
        """The file that holds ``alert_id``, or None if it was never delivered here."""
        existing = self._files_of(alert_id)
        return existing[0] if existing else None

    def send(self, alert: Alert) -> None:
        """Write (or rewrite) the alert's file; raise ``DeliveryError`` if that failed."""
        if not _SAFE_ID.fullmatch(alert.alert_id):
            raise DeliveryError(
                f"channel {self.name}: alert id {alert.alert_id!r} cannot be a file name",
                channel=self.name,
                transient=False,
            )
        body = json.dumps(alert.as_json(), indent=2, ensure_ascii=False).encode() + b"\n"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            target = self.path_for(alert.alert_id)
            if target is None:
                created = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
                target = self.folder / f"{created}-{alert.alert_id}.json"
            write_atomic(target, body, mode=0o600)  # owner only, as before
            # Converge if another process created its own file for this id meanwhile.
            for extra in self._files_of(alert.alert_id)[1:]:
                extra.unlink(missing_ok=True)
        except OSError as err:
            raise DeliveryError(
                f"channel {self.name}: could not write to {self.folder}: "
                f"{err.strerror or type(err).__name__}",
                channel=self.name,
                transient=True,
            ) from err

    def _files_of(self, alert_id: str) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(f"*-{alert_id}.json"))
