"""Shared fixtures. Async tests run on anyio's pytest plugin, pinned to asyncio."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import settings

from tests.s3server import S3Server, running_s3_server

# Deterministic and load-proof property tests: the same examples on every run (a
# failure reproduces), and no per-example deadline, which a loaded 2-core CI box
# would turn into a flaky failure unrelated to the code.
settings.register_profile("swr", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("swr")


@pytest.fixture
def anyio_backend() -> str:
    """All async tests run on asyncio (aiohttp needs it)."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_silent_process_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test must never end the test process (os._exit would silently skip every later
    test and leave pytest's exit status at the CLI's): make it a loud failure instead."""

    def refuse(code: int) -> None:
        raise AssertionError(f"os._exit({code}) called inside the test process")

    monkeypatch.setattr(os, "_exit", refuse)


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """A command run in-process (CliRunner) configures structlog for the process, e.g. at
    WARNING for the demo; without a reset, a later test's ``capture_logs`` sees nothing."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server (moto's, a subprocess) on 127.0.0.1 for the whole session."""
    with running_s3_server(tmp_path_factory.mktemp("s3") / "moto.log") as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Each test starts with structlog's defaults (every level kept): a CLI test that
    configured logging at info must not hide another test's debug events."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable of the machine's own environment is in the way (either case)."""
    for name in ("http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def trusted_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for 127.0.0.1, which the
    transport trusts through SSL_CERT_FILE."""
    from tests.test_hostile import self_signed_context

    context = self_signed_context(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    return context
