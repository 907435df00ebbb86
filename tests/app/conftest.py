"""Fixtures shared by the app tests: the ingest tests' moto S3 server, buckets and fake
credentials (CLI tests), the dashboard tests' session warehouse and the small what-if
warehouse (each built once)."""

from tests.app.dashboard_fixtures import dashboard_warehouse, sample_warehouse
from tests.app.whatif_fixtures import whatif_warehouse
from tests.ingest.conftest import aws_env, bucket, s3_server

__all__ = [
    "aws_env",
    "bucket",
    "dashboard_warehouse",
    "s3_server",
    "sample_warehouse",
    "whatif_warehouse",
]  # fixtures, for pytest
