"""The service layer composes the stages once: ``ingest_and_refresh`` loads, checks and
rolls up (the committed Cloudflare samples give the demo's exact counts); a second run
finds nothing new and refreshes nothing."""

from __future__ import annotations

from pathlib import Path

from app.service import ingest_and_refresh
from ingest import IngestSettings, IngestSummary
from models import ModelsSettings
from tests.conftest import REPO


def test_ingest_and_refresh_loads_checks_and_rolls_up_once(tmp_path: Path) -> None:
    settings = IngestSettings(
        source=str(REPO / "sample_data" / "logs"), db_path=tmp_path / "aigw.duckdb"
    )
    seen: list[tuple[int, bool]] = []

    def on_loaded(summary: IngestSummary) -> None:
        # called after the load and its quality check, before the rollups refresh
        seen.append((summary.rows_loaded, summary.quality is not None))

    first = ingest_and_refresh(settings, ModelsSettings(), on_loaded=on_loaded)
    summary = first.summary
    assert (summary.objects_seen, summary.loaded, summary.skipped, summary.failed) == (9, 8, 1, 0)
    assert (summary.records, summary.rows_loaded, summary.duplicates, summary.rejected) == (
        1111,
        960,
        150,
        1,
    )
    assert summary.quality is not None
    assert (summary.quality.rows_checked, summary.quality.critical_failures) == (960, 0)
    assert (first.refreshed.full, first.refreshed.rows) == (True, 551)
    assert seen == [(960, True)]

    again = ingest_and_refresh(settings, ModelsSettings())
    assert (again.summary.unchanged, again.summary.rows_loaded) == (9, 0)  # the skipped one too
    assert (again.refreshed.full, again.refreshed.hours, again.refreshed.rows) == (False, 0, 0)
