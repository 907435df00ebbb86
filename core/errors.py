"""The aigw exception tree: every error aigw raises, drawn in one place.

``AigwError`` is the root. Every error carries a one-line, user-facing message in
``str(err)``; details for ``--verbose`` go in ``err.detail``. Whether retrying can help
is decided by type (``transient``), never by matching message text. Stage packages
re-export their branch from their own ``errors.py`` and may extend it only there::

    AigwError
    ├── ConfigError                 bad option or setting (permanent)
    ├── SourceError                 the log source could not be used
    │   ├── SourceUnreachable       endpoint down, DNS, timeout (transient)
    │   ├── SourceAuthError         bad or missing credentials
    │   └── SourceNotFound          missing bucket, unreadable folder
    ├── ObjectReadError             one object could not be read (corrupt gzip);
    │                               its run goes on, the object is marked failed
    ├── EngineError                 Ray lost an object's load through its retries (transient)
    ├── InvalidRecord               one log line that cannot be loaded (str: the reject reason)
    ├── DecryptError                an encrypted field could not be opened (str: the reason)
    ├── QualityGateError            the data-quality gate could not run (not a failed
    │                               expectation: those are results, not errors)
    ├── WarehouseError              the DuckDB warehouse could not be used
    │   ├── WarehouseLocked         another process holds the write lock (transient)
    │   └── SchemaTooNew            the file was written by a newer aigw
    ├── WarehouseBusy               a dashboard read found a writer through every retry
    ├── ModelsError                 a model could not be computed
    │   ├── PriceFileError          a user price file is unreadable or invalid
    │   └── InvoiceFileError        a provider cost export is unreadable or invalid
    ├── AlertsError                 alerts could not be evaluated or sent
    │   ├── BudgetConfigError       budgets.toml is invalid (file, budget, key); nothing sent
    │   └── DeliveryError           a channel could not deliver (``transient``: retry later)
    ├── ProxyError                  the gateway could not do something
    │   ├── GatewayConfigError      gateway.toml is invalid (also a ConfigError)
    │   ├── UpstreamError           a provider call failed (transient: try the next one)
    │   ├── StoreError              the cache, rate-limit or spend store failed (transient)
    │   ├── LogSinkError            a log batch could not be written or uploaded (transient)
    │   └── RequestRefused          a client request the gateway answers with an HTTP error
    │       └── BodyTooLarge        the request body passed the size limit (413)
    └── SimulationError             the simulated provider refuses a request
        └── InvalidSimRequest       a body the real API would refuse with 400

Errors the gateway's client sees (401, 429, guardrail and DLP blocks) are
``RequestRefused`` raised inside the gateway and turned into HTTP responses in the API's
error shape at its edge; they never reach a CLI.
"""

from __future__ import annotations

__all__ = [
    "AigwError",
    "AlertsError",
    "BodyTooLarge",
    "BudgetConfigError",
    "ConfigError",
    "DecryptError",
    "DeliveryError",
    "EngineError",
    "GatewayConfigError",
    "InvalidRecord",
    "InvalidSimRequest",
    "InvoiceFileError",
    "LogSinkError",
    "ModelsError",
    "ObjectReadError",
    "PriceFileError",
    "ProxyError",
    "QualityGateError",
    "RequestRefused",
    "SchemaTooNew",
    "SimulationError",
    "SourceAuthError",
    "SourceError",
    "SourceNotFound",
    "SourceUnreachable",
    "StoreError",
    "UpstreamError",
    "WarehouseBusy",
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


# -- ingest: sources, objects, records --------------------------------------------------


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


class EngineError(AigwError):
    """The per-object engine's cluster (Ray) could not run an object's load, its retries
    included (workers or nodes lost): nothing of that object is stored, a rerun loads it."""

    transient = True


class InvalidRecord(AigwError):
    """A record that cannot be loaded; ``str()`` is the reject reason."""


class DecryptError(AigwError):
    """An encrypted field could not be decrypted; ``str()`` is the reason."""


class QualityGateError(AigwError):
    """Great Expectations could not be loaded or could not evaluate the suite."""


# -- the warehouse -----------------------------------------------------------------------


class WarehouseError(AigwError):
    """The DuckDB warehouse file could not be opened or written."""

    def __init__(self, message: str, *, path: str, detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.path = path


class WarehouseLocked(WarehouseError):
    """Another process has the warehouse open for writing."""

    transient = True


class WarehouseBusy(AigwError):
    """A dashboard reader: a writer held the warehouse through every retry and no earlier
    result exists (not a ``WarehouseError``: the file is fine, only busy)."""


class SchemaTooNew(WarehouseError):
    """The warehouse schema is newer than this aigw understands."""


# -- models --------------------------------------------------------------------------------


class ModelsError(AigwError):
    """A model could not be computed."""


class PriceFileError(ModelsError):
    """A user price file is unreadable or has an invalid entry."""

    def __init__(self, message: str, *, path: str, detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.path = path


class InvoiceFileError(ModelsError):
    """A provider cost export (invoice file) is unreadable or has an invalid entry."""

    def __init__(self, message: str, *, path: str, detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.path = path


# -- alerts --------------------------------------------------------------------------------


class AlertsError(AigwError):
    """Alerts could not be evaluated or sent."""


class BudgetConfigError(AlertsError):
    """The budgets file is invalid; carries the file, the budget and the key."""

    def __init__(
        self, message: str, *, path: str, budget: str | None = None, key: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.budget = budget
        self.key = key


class DeliveryError(AlertsError):
    """A channel did not accept an alert. ``transient`` errors are retried (next run too)."""

    def __init__(self, message: str, *, channel: str, transient: bool = True) -> None:
        super().__init__(message)
        self.channel = channel
        self.transient = transient


# -- the gateway ---------------------------------------------------------------------------


class ProxyError(AigwError):
    """Something the gateway could not do."""


class GatewayConfigError(ProxyError, ConfigError):
    """``gateway.toml`` is invalid; ``str()`` names the file, the key and the reason."""


class UpstreamError(ProxyError):
    """A provider call failed: connection refused, timeout, reset (worth the next provider)."""

    transient = True


class StoreError(ProxyError):
    """The response cache, rate-limit or spend store (SQLite, Redis) could not be used.

    ``str()`` names the store and its URL without credentials; the gateway decides whether to
    fail open (cache: treat as a miss) or closed.
    """

    transient = True


class LogSinkError(ProxyError):
    """A batch of log records could not be written or uploaded (retried, then spooled)."""

    transient = True


class RequestRefused(ProxyError):
    """A request the gateway refuses: HTTP ``status``, API error ``kind``, one line.

    ``headers`` are added to the error response (``retry-after`` on a 429).
    """

    def __init__(self, status: int, message: str, kind: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.code = code
        self.headers: list[tuple[str, str]] = []


class BodyTooLarge(RequestRefused):
    """The request body passed the gateway's size limit."""

    def __init__(self, message: str = "request body too large") -> None:
        super().__init__(413, message, "invalid_request_error", "request_too_large")


# -- simulation equipment ------------------------------------------------------------------


class SimulationError(AigwError):
    """The simulated provider or traffic generator could not do something."""


class InvalidSimRequest(SimulationError):
    """A request body the real API would refuse with 400; ``str()`` is the message sent."""
