"""The one attempt loop: every request of a run (tag details and list pages) goes through it.

One call of :meth:`Attempts.run` is one logical request, tried until it gives
a result, its attempts run out, or the run stops::

    slot (≤ --concurrency in flight) -> rate limiter -> send -> judge
        result  -> limiter.succeeded(), return Done
        failure -> RetryPolicy.decide -> Sleep | PauseEveryone | GiveUp

A request waiting out a backoff holds no slot, so a few failing requests do
not starve the healthy ones; the sleep is the run's stop-aware sleep. The
counters (requests actually sent, per API; retries; 429s; in flight) are
kept here, so a tag request and a list page are counted alike.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio
import structlog

from crawler.crawl.control import RunControl
from crawler.crawl.limits import RateLimiter
from crawler.crawl.retry import Failure, GiveUp, PauseEveryone, RetryPolicy
from crawler.errors import AuthenticationFailed, ErrorKind, TransportError
from crawler.http.response import Response
from crawler.run.stats import RunStats

log = structlog.get_logger("crawler")

T = TypeVar("T")

#: The status a request is counted under when no HTTP answer came (timeout, network).
NO_ANSWER = "error"


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    """The request gave its result after ``attempts`` HTTP requests."""

    value: T
    attempts: int


@dataclass(frozen=True, slots=True)
class Failed:
    """The request failed for good (definitive answer, or attempts ran out)."""

    failure: Failure
    attempts: int


@dataclass(frozen=True, slots=True)
class Stopped:
    """The run stopped before the request had an outcome (``--resume`` takes it up)."""

    attempts: int


class Attempts:
    """The run's request slots, limiter, retry policy and counters, in one loop."""

    def __init__(
        self,
        *,
        limiter: RateLimiter,
        policy: RetryPolicy,
        concurrency: int,
        stats: RunStats,
        control: RunControl,
        rng: random.Random | None = None,
    ) -> None:
        self._limiter = limiter
        self._policy = policy
        self._stats = stats
        self._control = control
        self._rng = rng or random.Random()
        # fast_acquire: a free slot is taken without a trip round the event loop
        # (the request that follows yields anyway); only a wait is a checkpoint.
        self._slots = anyio.Semaphore(concurrency, fast_acquire=True)

    @property
    def control(self) -> RunControl:
        """The run's stop switch."""
        return self._control

    async def run(
        self,
        api: str,
        label: str,
        send: Callable[[], Awaitable[Response]],
        judge: Callable[[Response | Failure, int], T | Failure],
    ) -> Done[T] | Failed | Stopped:
        """Send until ``judge`` gives a result, the policy gives up, or the run stops.

        ``api`` names the counter the requests go to (``tag_details``,
        ``tag_pages``...); ``label`` names the request in logs.
        """
        stats = self._stats
        attempts = 0
        tries = 0  # send calls: bounds the retries even when no request could be sent
        while True:
            tries += 1
            async with self._slots:
                await self._limiter.acquire()
                if self._control.stopping():
                    return Stopped(attempts)
                stats.in_flight += 1
                outcome: Response | Failure
                code = NO_ANSWER
                try:
                    response = await send()
                except TransportError as exc:
                    sent, outcome = exc.requests, Failure(exc.kind, error_msg=exc.message)
                except AuthenticationFailed as exc:
                    # The credential could not even be obtained (IAM login refused).
                    sent, outcome = 0, Failure(ErrorKind.UNAUTHORIZED, error_msg=str(exc)[:300])
                else:
                    sent, outcome, code = response.requests, response, str(response.status)
                finally:
                    stats.in_flight -= 1
            attempts += sent
            stats.count_requests(api, sent, code)
            if sent:
                self._control.note_request(answered=code != NO_ANSWER)
            result = judge(outcome, attempts)
            if not isinstance(result, Failure):
                self._limiter.succeeded()
                return Done(result, attempts)
            if result.kind is ErrorKind.THROTTLED:
                stats.throttled += 1
            decision = self._policy.decide(result, max(attempts, tries), self._rng)
            if isinstance(decision, GiveUp):
                return Failed(result, attempts)
            stats.retries += 1
            log.debug(  # the run's periodic activity line sums these up at info
                "crawl.retry_scheduled",
                target=label,
                attempt=attempts,
                reason=result.kind.value,
                http_status=result.http_status,
                error_code=result.error_code,
                delay=round(decision.seconds, 3),
            )
            if isinstance(decision, PauseEveryone):
                # The gateway's limit is per user: everyone waits, this request
                # in the limiter with the others.
                if self._limiter.pause_for(decision.seconds):
                    log.info(
                        "crawl.paused", seconds=round(decision.seconds, 3), reason="Retry-After"
                    )
            else:
                if decision.lower_rate:
                    before = self._limiter.current_rate
                    self._limiter.throttled(result.error_msg)
                    if self._limiter.current_rate != before:
                        log.info(
                            "crawl.rate_changed",
                            rate=round(self._limiter.current_rate, 3),
                            previous=round(before, 3),
                            reason="429 without Retry-After",
                        )
                await self._control.sleep(decision.seconds)
            if self._control.stopping():
                return Stopped(attempts)
