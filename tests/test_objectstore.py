"""Output locations: local paths and s3:// URIs, configured from the standard AWS variables;
the lease lock's records (on a local file system: the same code as on S3)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import orjson
import pyarrow.fs as pafs
import pytest
from structlog.testing import capture_logs

from crawler.errors import ConfigError
from crawler.output.lock import OutputLocked
from crawler.output.objectstore import LEASE_SECONDS, ObjectRunLock, ObjectStorage, open_location

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


NOW = 1_800_000_000.0
#: A lease of a live process of this host (this test's parent), started at a known time.
LIVE = {"pid": os.getppid(), "host": socket.gethostname(), "started_at": "2027-01-15T08:00:00"}


def lease_lock(tmp_path: Path, record: object | bytes) -> tuple[ObjectRunLock, Path]:
    """A lease lock whose object already holds ``record`` (JSON-encoded unless bytes)."""
    path = tmp_path / ".lock"
    path.write_bytes(record if isinstance(record, bytes) else orjson.dumps(record))
    storage = ObjectStorage(pafs.LocalFileSystem())
    return ObjectRunLock(storage, [str(path)], clock=lambda: NOW), path


def test_a_live_lease_is_refused_naming_its_holder(tmp_path: Path) -> None:
    """An unexpired lease of a live process refuses the run, naming pid, host and start;
    the lease is left as it was."""
    lock, path = lease_lock(tmp_path, {**LIVE, "expires": NOW + 30})
    before = path.read_bytes()
    holder = f"pid {LIVE['pid']} on host {LIVE['host']} since {LIVE['started_at']}"
    with pytest.raises(OutputLocked, match=f"another crawl is writing here \\({holder};"):
        lock.acquire()
    assert path.read_bytes() == before


def test_an_expired_lease_is_taken_over_and_released(tmp_path: Path) -> None:
    """An expired lease is taken over (a warning names the old holder), then holds this run's
    own record until release deletes it."""
    lock, path = lease_lock(tmp_path, {**LIVE, "expires": NOW - 1})
    with capture_logs() as logs:
        lock.acquire()
    try:
        record = orjson.loads(path.read_bytes())
        assert (record["pid"], record["expires"]) == (os.getpid(), NOW + LEASE_SECONDS)
    finally:
        lock.release()
    (warning,) = [e for e in logs if e["event"] == "crawl.stale_lock_taken_over"]
    assert warning["previous"].startswith(f"pid {LIVE['pid']} on host")
    assert not path.exists()


@pytest.mark.parametrize("record", [b"not json", b"[1, 2]", b"{}"], ids=["text", "list", "empty"])
def test_a_lease_that_is_no_record_holds_nothing(tmp_path: Path, record: bytes) -> None:
    """A lock object that is not a JSON object with fields names no holder: it is taken
    without a takeover warning."""
    lock, path = lease_lock(tmp_path, record)
    with capture_logs() as logs:
        lock.acquire()
    lock.release()
    assert [e for e in logs if e["event"] == "crawl.stale_lock_taken_over"] == []
    assert not path.exists()
