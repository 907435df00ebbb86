"""S3-compatible object stores (S3, R2, MinIO) and SQS: making boto3 clients, and the one
place where ``botocore`` errors become aigw errors.

``source_errors`` serves readers (ingest's bucket listing and reads, the SQS queue of its
notifications), ``upload_errors`` writers (the gateway's log sink), ``read_errors`` one
object's body stream. Messages never quote a botocore message, which can carry request
headers: they name the place and the error code or class.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from core.errors import (
    LogSinkError,
    ObjectReadError,
    SourceAuthError,
    SourceError,
    SourceNotFound,
    SourceUnreachable,
)

__all__ = ["make_client", "read_errors", "source_errors", "upload_errors"]

_AUTH_CODES: Final = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AuthorizationHeaderMalformed",
    "403",
}
_QUEUE_MISSING: Final = {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}


def make_client(
    service: str,
    *,
    endpoint_url: str | None,
    region: str | None = None,
    read_timeout: float = 60,
    max_attempts: int = 3,
) -> Any:
    """A boto3 client (thread-safe) with a 5 s connect timeout and standard retries.
    Without ``endpoint_url`` boto3 still honours ``AWS_ENDPOINT_URL``."""
    config = Config(
        connect_timeout=5,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
    )
    return boto3.client(service, endpoint_url=endpoint_url, region_name=region, config=config)


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


@contextmanager
def source_errors(uri: str) -> Iterator[None]:
    """Translate botocore errors raised inside the block into ``SourceError``s naming
    ``uri`` (a bucket, or the SQS queue of its notifications)."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as err:
        raise SourceAuthError(
            f"no usable AWS credentials for {uri}; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY or a profile",
            source=uri,
            detail=str(err),
        ) from err
    except BotoConnectionError as err:
        raise SourceUnreachable(
            f"cannot reach the storage endpoint for {uri}; check --endpoint-url and the network",
            source=uri,
            detail=str(err),
        ) from err
    except ClientError as err:
        code = _code(err)
        if code in _QUEUE_MISSING:
            raise SourceNotFound(
                f"queue {uri} does not exist", source=uri, detail=str(err)
            ) from err
        if code in {"NoSuchBucket", "404"}:
            raise SourceNotFound(
                f"bucket for {uri} does not exist", source=uri, detail=str(err)
            ) from err
        if code in _AUTH_CODES:
            raise SourceAuthError(
                f"access to {uri} denied ({code}); check the credentials",
                source=uri,
                detail=str(err),
            ) from err
        raise SourceError(f"S3 error on {uri}: {code}", source=uri, detail=str(err)) from err


@contextmanager
def read_errors(key: str) -> Iterator[None]:
    """Translate a failed read of one object's body into ``ObjectReadError``."""
    try:
        yield
    except (BotoCoreError, OSError) as err:
        raise ObjectReadError(f"{key}: read failed ({err})", key=key) from err


@contextmanager
def upload_errors(where: str) -> Iterator[None]:
    """Translate a failed upload to ``where`` into ``LogSinkError`` (transient)."""
    try:
        yield
    except ClientError as err:
        # The code (NoSuchBucket, AccessDenied, SlowDown...) says what to fix; the
        # message text is left out: it can quote request headers.
        code = _code(err) or "unknown"
        raise LogSinkError(f"upload of {where} failed ({code})", detail=code) from err
    except BotoCoreError as err:
        # Connection, timeout and credential errors: the class name is the reason.
        reason = type(err).__name__
        raise LogSinkError(f"upload of {where} failed ({reason})", detail=reason) from err
