"""The floor plan holds: imports across packages go through their public surface, the
gateway's import contract covers every models module, and no module grows past 500
lines. (The import direction itself is import-linter's, run by ``make lint``.)"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("core", "ingest", "models", "alerts", "app", "proxy", "sim")
# Modules other packages may import from; for the rest, only the package itself.
PUBLIC = {
    "core": {
        "core",
        "core.errors",
        "core.files",
        "core.logpush",
        "core.objectstore",
        "core.schema",
        "core.settings",
        "core.warehouse",
        "core.lake",
        # the lakehouse's modules that need the `lake` extra: imported on demand, so not
        # re-exported by core.lake
        "core.lake.filters",
        "core.lake.lake",
        "core.lake.ledger",
        "core.lake.ray_session",
        "core.lake.state",
        "core.lake.tables",
        "core.lake.compact",
        "core.lake.datafiles",
        "core.lake.maintain",
        "core.lake.writes",
    },
    # the gateway imports pricing alone, not the whole of models
    "models": {"models", "models.pricing", "models.request_pricing"},
}
GATEWAY_MAY_USE = {"models.pricing", "models.request_pricing", "models.errors"}
MAX_LINES = 500


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def test_imports_across_packages_use_their_public_surface() -> None:
    """``from models.cache import x`` in app bypasses ``models.__all__``: use ``models``."""
    bypasses = []
    for package in PACKAGES:
        for path in _modules(package):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom) or not node.module or node.level:
                    continue
                top = node.module.split(".")[0]
                outside = top in PACKAGES and top != package
                if outside and node.module not in PUBLIC.get(top, {top}):
                    bypasses.append(f"{path.relative_to(REPO)}:{node.lineno} {node.module}")
    assert bypasses == []


def test_the_gateway_contract_names_every_models_module_but_pricing() -> None:
    """A new models module must be forbidden to the gateway too (or allowed on purpose)."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c.get("source_modules") == ["proxy"])
    models = {
        f"models.{path.stem}" for path in (REPO / "models").glob("*.py") if path.stem != "__init__"
    }
    assert set(contract["forbidden_modules"]) >= models - GATEWAY_MAY_USE


def test_no_module_is_longer_than_500_lines() -> None:
    folders = (*PACKAGES, "tests", "bench", "sample_data", "tools")
    long = {
        str(path.relative_to(REPO)): lines
        for folder in folders
        for path in (REPO / folder).rglob("*.py")
        if not any(part.startswith(".venv") for part in path.relative_to(REPO).parts)
        and (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
