"""The loopback S3 server the warehouse tests use serves pyarrow and DuckDB like a real store."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from tests.s3server import S3Server, duckdb_on

pytestmark = pytest.mark.slow


def test_pyarrow_writes_and_duckdb_reads_over_loopback(s3_server: S3Server) -> None:
    """A Parquet object written by pyarrow's S3FileSystem reads back in DuckDB via httpfs."""
    bucket = s3_server.create_bucket()
    env = s3_server.environ()
    fs = pafs.S3FileSystem(
        access_key=env["AWS_ACCESS_KEY_ID"],
        secret_key=env["AWS_SECRET_ACCESS_KEY"],
        endpoint_override=f"127.0.0.1:{s3_server.port}",
        scheme="http",
        region=env["AWS_REGION"],
    )
    pq.write_table(pa.table({"n": [1, 2, 3]}), f"{bucket}/p/x.parquet", filesystem=fs)
    con = duckdb_on(s3_server)
    assert con.execute(f"SELECT sum(n) FROM 's3://{bucket}/p/*.parquet'").fetchone() == (6,)
