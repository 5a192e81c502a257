"""The SWR client a run's settings ask for, built the one way every command builds it.

``crawl``, ``discover`` and the dry run each need one transport (``--timeout``,
``--concurrency`` connections, ``--max-body-bytes``), the credential the
environment names (an IAM login goes through the same transport) and the
endpoint (``--endpoint`` or ``--region``). Both are closed when ``stack`` closes,
shielded from cancellation, so a run stopped by a signal still releases them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack

import anyio

from crawler.config import CrawlConfig, effective_endpoint
from crawler.http.client import SwrClient
from crawler.http.credentials import auth_from_env
from crawler.http.endpoint import parse_endpoint
from crawler.http.transport import Transport


async def open_client(
    config: CrawlConfig, environ: Mapping[str, str], stack: AsyncExitStack
) -> SwrClient:
    """The client for ``config``'s endpoint and the environment's credential; raises
    :class:`~crawler.errors.ConfigError` (before any request) when there is none."""
    transport = Transport(
        timeout=config.timeout,
        max_connections=config.concurrency,
        max_body_bytes=config.max_body_bytes,
    )
    stack.push_async_callback(shielded, transport.aclose)
    auth = auth_from_env(environ, region=config.region, transport=transport)
    stack.push_async_callback(shielded, auth.aclose)
    return SwrClient(parse_endpoint(effective_endpoint(config)), auth, transport)


async def shielded(close: Callable[[], Awaitable[object]]) -> None:
    """Run an async clean-up even while the run is being cancelled."""
    with anyio.CancelScope(shield=True):
        await close()
