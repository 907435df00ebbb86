"""The gateway's logs: one Logpush-shaped record per attempt (``record``), batched into
gzip NDJSON objects off the request path (``writer``) and stored in a local folder or an
S3-compatible bucket (``sinks``), in the layout ``aigw ingest`` reads.

Two kinds of sink: a ``RecordSink`` takes records one at a time (the ``LogWriter`` is the
gateway's); a ``LogSink`` stores finished objects (``LocalFolderSink``, ``S3Sink``).
"""

from proxy.logs.record import RecordSink, RefusalGate, RequestLog, new_log_id
from proxy.logs.sinks import LocalFolderSink, LogSink, S3Sink, open_sink
from proxy.logs.writer import LogWriter, WriterSettings, WriterStats, batch_key

__all__ = [
    "LocalFolderSink",
    "LogSink",
    "LogWriter",
    "RecordSink",
    "RefusalGate",
    "RequestLog",
    "S3Sink",
    "WriterSettings",
    "WriterStats",
    "batch_key",
    "new_log_id",
    "open_sink",
]
