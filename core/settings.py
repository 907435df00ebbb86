"""Reading settings files: the one TOML reader, the unknown-key check, and where the
default files are looked for.

Settings objects are built once, at the edge (the CLI, the dashboard's entry script),
from flags, then the environment, then the file, and passed down; nothing reads the
environment at import time. Every error names the file (and the key) in one line.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from core.errors import AigwError, ConfigError

__all__ = [
    "BUDGETS_ENV",
    "CONFIG_ENV",
    "DEFAULT_BUDGETS",
    "DEFAULT_CONFIG",
    "budgets_file",
    "check_keys",
    "config_file",
    "read_toml",
    "table",
    "unknown_key",
]

DEFAULT_CONFIG: Final = Path("aigw.toml")
DEFAULT_BUDGETS: Final = Path("budgets.toml")
CONFIG_ENV: Final = "AIGW_CONFIG"
BUDGETS_ENV: Final = "AIGW_BUDGETS"

ErrorFactory = Callable[[str], AigwError]


def read_toml(
    path: Path, *, label: str = "config", error: ErrorFactory = ConfigError
) -> dict[str, Any]:
    """The TOML document at ``path``; ``error("cannot read {label} {path}: …")`` otherwise.

    ``label`` names the kind of file in messages ("config", "budgets file"; "" for none).
    """
    name = f"{label} {path}" if label else str(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as err:
        raise error(f"cannot read {name}: {err.strerror}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise error(f"{name} is not valid TOML: {err}") from err


def unknown_key(document: Mapping[str, Any], allowed: Iterable[str]) -> str | None:
    """The first key of ``document`` (sorted) that is not in ``allowed``, or None."""
    known = set(allowed)
    return next((key for key in sorted(document) if key not in known), None)


def table(
    path: Path | str, document: Mapping[str, Any], key: str, *, error: ErrorFactory = ConfigError
) -> dict[str, Any]:
    """``document[key]`` as a table (empty when absent); ``error`` naming ``[key]`` otherwise."""
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise error(f"{path}: [{key}] must be a table")
    return value


def check_keys(
    path: Path | str,
    table: Mapping[str, Any],
    allowed: Iterable[str],
    *,
    where: str = "",
    error: ErrorFactory = ConfigError,
) -> None:
    """Refuse a key of ``table`` not in ``allowed``: a misspelt key must not silently mean
    the default (``splitby = "agent"`` is not ``split_by``). ``where`` names the table."""
    known = sorted(set(allowed))
    unknown = unknown_key(table, known)
    if unknown is not None:
        place = f"{path}: {where}: " if where else f"{path}: "
        raise error(f"{place}unknown key {unknown!r} (known: {', '.join(known)})")


def config_file(flag: Path | None, environ: Mapping[str, str]) -> Path | None:
    """``aigw.toml`` to read: ``--config``, else ``$AIGW_CONFIG``, else ``./aigw.toml`` when
    it exists, else None (built-in defaults)."""
    return _file(flag, environ.get(CONFIG_ENV), DEFAULT_CONFIG)


def budgets_file(flag: Path | None, environ: Mapping[str, str]) -> Path | None:
    """``budgets.toml`` to read: ``--budgets``, else ``$AIGW_BUDGETS``, else
    ``./budgets.toml`` when it exists, else None (no budgets)."""
    return _file(flag, environ.get(BUDGETS_ENV), DEFAULT_BUDGETS)


def _file(flag: Path | None, variable: str | None, default: Path) -> Path | None:
    if flag is not None:
        return flag
    if variable:
        return Path(variable)
    return default if default.exists() else None
