"""A real S3-compatible server on loopback for the tests: moto's standalone server.

It runs as a subprocess (``python -m moto.server -H 127.0.0.1 -p 0``), so the
crawler and DuckDB talk S3 to it over a socket, exactly as they would to MinIO
or Huawei OBS; nothing in the client is mocked. The port is the one the
server reports it bound (no free-port guess that another process could take).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

#: How long the server may take to start before the tests give up on it.
START_TIMEOUT = 30.0
_LISTENING = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")

#: Keys the tests use. The secret is long and random so that a test can search
#: every output for it and never match by chance.
ACCESS_KEY = "AKIDWAREHOUSETEST"
SECRET_KEY = "s3-secret-" + secrets.token_hex(16)
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    """A running server: where it listens."""

    port: int

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``, as ``AWS_ENDPOINT_URL`` takes it."""
        return f"http://127.0.0.1:{self.port}"

    def environ(self) -> dict[str, str]:
        """The standard AWS variables that point a client at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def create_bucket(self) -> str:
        """A new, empty bucket (one a test, so tests never see each other's objects)."""
        name = f"t-{secrets.token_hex(6)}"
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        return name


@contextlib.contextmanager
def running_s3_server(log: Path) -> Iterator[S3Server]:
    """Start moto's server on 127.0.0.1, wait (bounded) until it serves, kill it after."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield S3Server(_wait_until_serving(process, log))
    finally:
        process.kill()
        process.wait(timeout=10)


def _wait_until_serving(process: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}: {log.read_text()}")
        match = _LISTENING.search(log.read_text(errors="replace"))
        if match:
            port = int(match[1])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=2):
                    return port
            except OSError:
                pass
        time.sleep(0.05)  # polling a child's start-up: there is nothing to wait on
    raise RuntimeError(f"moto server did not start within {START_TIMEOUT} s: {log.read_text()}")


def httpfs_extension() -> Path:
    """DuckDB's httpfs extension as shipped by the ``duckdb-extension-httpfs`` wheel."""
    import duckdb

    path = resources.files("duckdb_extension_httpfs").joinpath(
        "extensions", f"v{duckdb.__version__}", "httpfs.duckdb_extension"
    )
    return Path(str(path))


def duckdb_on(server: S3Server) -> Any:
    """A DuckDB connection that reads ``s3://`` from ``server``; nothing is downloaded."""
    import duckdb

    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute(f"LOAD '{httpfs_extension()}'")
    con.execute(
        "CREATE SECRET s3_test (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, "
        "URL_STYLE 'path', USE_SSL false)",
        [ACCESS_KEY, SECRET_KEY, REGION, f"127.0.0.1:{server.port}"],
    )
    return con
