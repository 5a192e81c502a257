"""The attempt loop a run's settings ask for, built the one way every command builds it.

It lives here, not in :mod:`crawler.crawl.attempt`: the pool imports that
module, and the configuration reaches the HTTP transport, which the pool must
not import (``tests/test_http_seam.py`` checks).
"""

from __future__ import annotations

import random

from crawler.config import CrawlConfig
from crawler.crawl.attempt import Attempts
from crawler.crawl.control import RunControl
from crawler.crawl.limits import RateLimiter
from crawler.crawl.retry import RetryPolicy
from crawler.run.stats import RunStats


def attempts_for(
    config: CrawlConfig,
    *,
    stats: RunStats,
    control: RunControl,
    limiter: RateLimiter | None = None,
) -> Attempts:
    """Slots, limiter, retries and seed from ``config`` (``--concurrency``, ``--rate``,
    ``--burst``, ``--max-attempts``, the backoff, ``--seed``); ``limiter`` when the
    caller needs its own handle on it."""
    return Attempts(
        limiter=limiter or RateLimiter(config.rate, config.burst),
        policy=RetryPolicy(config.max_attempts, config.backoff_initial, config.backoff_max),
        concurrency=config.concurrency,
        stats=stats,
        control=control,
        rng=random.Random(config.seed),
    )
