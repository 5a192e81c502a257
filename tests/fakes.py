"""What the crawl's unit and socket tests share: a sink kept in lists, the attempt loop
without limits, and a client of a running sandbox."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from crawler.crawl.attempt import Attempts
from crawler.crawl.control import RunControl
from crawler.crawl.limits import RateLimiter
from crawler.crawl.retry import RetryPolicy
from crawler.http.client import SwrClient
from crawler.http.credentials import StaticToken
from crawler.http.endpoint import parse_endpoint
from crawler.http.transport import Transport
from crawler.output.rows import ErrorRow, TagRow
from crawler.run.stats import RunStats


class ListSink:
    """The pool's output, kept in lists."""

    def __init__(self) -> None:
        self.tags: list[dict[str, object]] = []
        self.errors: list[dict[str, object]] = []

    def add_tag(self, row: TagRow) -> None:
        self.tags.append(row._asdict())

    def add_error(self, row: ErrorRow) -> None:
        self.errors.append(row._asdict())

    async def wait_for_room(self) -> None:
        return None


def unlimited_attempts(
    stats: RunStats,
    control: RunControl | None = None,
    *,
    concurrency: int = 4,
    max_attempts: int = 3,
    backoff: float = 0.0,
) -> Attempts:
    """The run's attempt loop with no rate limit and (unless asked) no backoff, seeded."""
    return Attempts(
        limiter=RateLimiter(0),
        policy=RetryPolicy(max_attempts, backoff, backoff * 4),
        concurrency=concurrency,
        stats=stats,
        control=control or RunControl(),
        rng=random.Random(0),
    )


@asynccontextmanager
async def sandbox_client(
    url: str, token: str, *, max_connections: int = 4
) -> AsyncIterator[SwrClient]:
    """A real client of the sandbox at ``url``; its connections closed at the end."""
    async with Transport(timeout=5, max_connections=max_connections) as transport:
        yield SwrClient(parse_endpoint(url), StaticToken(token), transport)
