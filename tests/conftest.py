"""Shared fixtures. Async tests run on anyio's pytest plugin, pinned to asyncio."""

from __future__ import annotations

import os

import pytest


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
