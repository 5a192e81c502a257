"""Shared fixtures. Async tests run on anyio's pytest plugin, pinned to asyncio."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """All async tests run on asyncio (aiohttp needs it)."""
    return "asyncio"
