"""The CLI tests reuse the ingest tests' moto S3 server, buckets and fake credentials."""

from tests.ingest.conftest import aws_env, bucket, s3_server

__all__ = ["aws_env", "bucket", "s3_server"]  # fixtures, found by pytest through this module
