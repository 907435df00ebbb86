"""The aigw exception tree.

``AigwError`` is the root for every package (ingest is the base package, so the
root lives here). Every error carries a one-line, user-facing message in
``str(err)``; details for ``--verbose`` go in ``err.detail``. Whether retrying
can help is decided by type (``transient``), never by matching message text::

    AigwError
    ├── ConfigError                 bad option or setting (permanent)
    ├── SourceError                 the log source could not be used
    │   ├── SourceUnreachable       endpoint down, DNS, timeout (transient)
    │   ├── SourceAuthError         bad or missing credentials
    │   └── SourceNotFound          missing bucket, unreadable folder
    ├── ObjectReadError             one object could not be read (corrupt gzip);
    │                               its run goes on, the object is marked failed
    ├── QualityGateError            the data-quality gate could not run (not a failed
    │                               expectation: those are results, not errors)
    └── WarehouseError              the DuckDB warehouse could not be used
        ├── WarehouseLocked         another process holds the write lock (transient)
        └── SchemaTooNew            the file was written by a newer aigw
"""

from __future__ import annotations

__all__ = [
    "AigwError",
    "ConfigError",
    "ObjectReadError",
    "QualityGateError",
    "SchemaTooNew",
    "SourceAuthError",
    "SourceError",
    "SourceNotFound",
    "SourceUnreachable",
    "WarehouseError",
    "WarehouseLocked",
]


class AigwError(Exception):
    """Root of aigw's errors: ``str()`` is one line for the user, ``detail`` the rest."""

    transient: bool = False

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class ConfigError(AigwError):
    """A setting or option is invalid."""


class SourceError(AigwError):
    """The log source (folder or bucket) could not be used."""

    def __init__(self, message: str, *, source: str, detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.source = source


class SourceUnreachable(SourceError):
    """The storage endpoint did not answer."""

    transient = True


class SourceAuthError(SourceError):
    """Credentials are missing, wrong, or lack permission."""


class SourceNotFound(SourceError):
    """The bucket or folder does not exist or cannot be read."""


class ObjectReadError(AigwError):
    """One object could not be read to its end (corrupt or truncated gzip, I/O)."""

    transient = True

    def __init__(self, message: str, *, key: str, detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.key = key


class QualityGateError(AigwError):
    """Great Expectations could not be loaded or could not evaluate the suite."""


class WarehouseError(AigwError):
    """The DuckDB warehouse file could not be opened or written."""

    def __init__(self, message: str, *, path: str, detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.path = path


class WarehouseLocked(WarehouseError):
    """Another process has the warehouse open for writing."""

    transient = True


class SchemaTooNew(WarehouseError):
    """The warehouse schema is newer than this aigw understands."""
