"""Output locations: local paths and s3:// URIs, configured from the standard AWS variables."""

from __future__ import annotations

import pyarrow.fs as pafs
import pytest

from crawler.errors import ConfigError
from crawler.output.objectstore import open_location

ENV = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_REGION": "cn-north-4"}


def test_a_local_path_is_the_local_filesystem() -> None:
    """A plain path opens on the local file system, unchanged."""
    fs, path = open_location("/data/swr", {})
    assert isinstance(fs, pafs.LocalFileSystem)
    assert path == "/data/swr"


def test_an_s3_uri_is_bucket_and_prefix_on_the_configured_endpoint() -> None:
    """s3://bucket/prefix/ -> bucket/prefix on an S3FileSystem with AWS_REGION's region."""
    fs, path = open_location("s3://swr-data/daily/", ENV)
    assert isinstance(fs, pafs.S3FileSystem)
    assert path == "swr-data/daily"
    assert fs.region == "cn-north-4"


@pytest.mark.parametrize(
    ("location", "environ", "message"),
    [
        ("s3://AK:SK@bucket/p", ENV, "never in the URI"),
        ("s3:///p", ENV, "no bucket"),
        ("gs://bucket/p", ENV, "only local paths and s3://"),
        ("s3://b/p", {"AWS_ENDPOINT_URL": "ftp://h"}, "http(s)://host"),
        ("s3://b/p", {"AWS_ENDPOINT_URL": "http://h:1/path"}, "without a path"),
        ("s3://b/p", {"AWS_ENDPOINT_URL": "http://u:p@h:1"}, "user info"),
        ("s3://b/p", {"AWS_ACCESS_KEY_ID": "AK"}, "both AWS_ACCESS_KEY_ID"),
    ],
)
def test_bad_locations_are_config_errors(
    location: str, environ: dict[str, str], message: str
) -> None:
    """A malformed URI or endpoint, or half a key pair, is a one-line ConfigError."""
    with pytest.raises(ConfigError) as caught:
        open_location(location, environ)
    assert message in str(caught.value)
    assert "AK:SK" not in str(caught.value)
