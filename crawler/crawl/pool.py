"""The worker pool: targets in, one row per target out.

Structure (anyio, structured concurrency only)::

    intake thread ──batches──▶ producer ──stream(bounded)──▶ workers × W ──▶ sink
                                                      │
                              capacity limiter (≤ concurrency in flight)
                              rate limiter (every request, retries included)

Reading, deduplicating and sharding the input runs in a worker thread in
batches, so a slow disk never stalls the event loop and a file of millions of
targets is never held in memory. There are more workers than request slots:
a worker that sleeps in backoff holds no slot, so a few failing targets do not
starve the healthy ones. The pool knows neither aiohttp (see
:mod:`crawler.http.client`) nor Parquet (see :mod:`crawler.output.sink`).
"""

from __future__ import annotations

import random
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Protocol

import anyio
import structlog
from anyio.abc import ObjectReceiveStream
from anyio.lowlevel import current_token
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from crawler.crawl.limits import RateLimiter, backoff_delay, parse_retry_after
from crawler.errors import (
    DEFINITIVE_KINDS,
    RETRYABLE_KINDS,
    AuthenticationFailed,
    ErrorKind,
    kind_for_status,
)
from crawler.http.client import Response, TransportError
from crawler.output.normalize import DecodeError, error_fields, tag_row
from crawler.run.stats import RunStats
from crawler.targets import InvalidTarget, SeenSet, Target, in_shard

log = structlog.get_logger("crawler")

INTAKE_BATCH = 2048
INTAKE_THREAD = "swr-crawler-intake"


class Fetcher(Protocol):
    """What the pool needs from the client."""

    async def fetch_tag(self, request_path: str) -> Response: ...


class Sink(Protocol):
    """What the pool needs from the output."""

    def add_tag(self, row: dict[str, object]) -> None: ...

    def add_error(self, row: dict[str, object]) -> None: ...

    async def wait_for_room(self) -> None: ...


class Recorded(Protocol):
    """What ``--resume`` knows is already recorded (see :mod:`crawler.output.checkpoint`)."""

    def holds(self, item: Target | InvalidTarget) -> bool: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a request (a target, or a list page) is retried."""

    max_attempts: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    def wait_before_retry(
        self, failure: Failure, spent: int, limiter: RateLimiter, rng: random.Random
    ) -> float:
        """Seconds until the next attempt after ``spent`` attempts ended in ``failure``.

        A 429 with ``Retry-After`` (capped by ``backoff_max``) pauses every
        request through the shared limiter, since the gateway's limit is per
        user: the caller then goes straight back to the limiter instead of
        sleeping. Otherwise the caller sleeps the full-jitter backoff, and a
        429 without ``Retry-After`` also lowers the shared rate.
        """
        if failure.retry_after is not None:
            delay = min(failure.retry_after, self.backoff_max)
            limiter.pause_for(delay)
            return delay
        if failure.kind is ErrorKind.THROTTLED:
            limiter.throttled()
        return backoff_delay(spent, self.backoff_initial, self.backoff_max, rng)


class RunControl:
    """Shared stop switch: set by a signal or by an authentication failure."""

    def __init__(self) -> None:
        self.stop_reason: str | None = None
        self._stopped = anyio.Event()
        self._scopes: list[anyio.CancelScope] = []

    def stopping(self) -> bool:
        """True once a stop was asked for: take no new target, send no new request."""
        return self.stop_reason is not None

    def stop(self, reason: str) -> None:
        """Ask every task to stop taking work (the first reason wins)."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self._stopped.set()
            for scope in self._scopes:
                scope.cancel()

    def cancel_on_stop(self, scope: anyio.CancelScope) -> anyio.CancelScope:
        """Have a stop cancel ``scope`` (for waits that must not outlast a stop)."""
        self._scopes.append(scope)
        if self.stopping():
            scope.cancel()
        return scope

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when a stop is asked for."""
        with anyio.move_on_after(seconds):
            await self._stopped.wait()


class Intake:
    """Filters the raw input: drops duplicates, other shards' and already-recorded targets.

    Runs in a worker thread; only the intake thread writes its counters.
    """

    def __init__(
        self,
        items: Iterable[Target | InvalidTarget],
        stats: RunStats,
        *,
        shard: tuple[int, int] = (0, 1),
        recorded: Recorded | None = None,
    ) -> None:
        self._items = iter(items)
        self._stats = stats
        self._shard = shard
        self._recorded = recorded
        self._seen = SeenSet()

    def admit(self, item: Target | InvalidTarget) -> bool:
        """Whether ``item`` is this run's to crawl (counting why not)."""
        index, count = self._shard
        key = item.key
        if count > 1 and not in_shard(key, index, count):
            self._stats.skipped_shard += 1
            return False
        if not self._seen.add(key):
            self._stats.duplicates += 1
            return False
        if self._recorded is not None and self._recorded.holds(item):
            self._stats.skipped_resume += 1
            return False
        return True

    def _admitted(self) -> Iterator[Target | InvalidTarget]:
        admit = self.admit
        for item in self._items:
            if admit(item):
                yield item

    def batches(self, size: int = INTAKE_BATCH) -> Iterator[list[Target | InvalidTarget]]:
        """Lists of admitted items, ``size`` at most each."""
        admitted = self._admitted()
        while batch := list(islice(admitted, size)):
            yield batch

    def open(self) -> AbstractAsyncContextManager[AsyncIterable[Batch | BaseException]]:
        """The admitted items as a stream of batches, read in a thread."""
        return _read_in_thread(self.batches())


class Source(Protocol):
    """Where the pool's targets come from: a file (:class:`Intake`) or discovery."""

    def open(self) -> AbstractAsyncContextManager[AsyncIterable[Batch | BaseException]]: ...


Batch = list[Target | InvalidTarget]


@asynccontextmanager
async def _read_in_thread(
    batches: Iterator[Batch],
) -> AsyncIterator[ObjectReceiveStream[Batch | BaseException]]:
    """Read ``batches`` in a daemon thread; yield a stream of them, or of the error that ended them.

    Not an anyio worker thread: a read that never returns (stdin from a pipe
    whose writer stays open) must neither hold up a stop nor keep the process
    alive at exit, and a worker thread can be neither abandoned nor killed.
    """
    send, receive = anyio.create_memory_object_stream[Batch | BaseException](1)
    token = current_token()
    gone = (anyio.RunFinishedError, anyio.BrokenResourceError, anyio.ClosedResourceError)

    def pump() -> None:
        try:
            for batch in batches:
                anyio.from_thread.run(send.send, batch, token=token)
        except gone:
            pass
        except BaseException as exc:  # handed to the event loop, raised there
            with suppress(*gone):
                anyio.from_thread.run(send.send, exc, token=token)
        finally:
            with suppress(*gone):
                anyio.from_thread.run_sync(send.close, token=token)

    threading.Thread(target=pump, name=INTAKE_THREAD, daemon=True).start()
    with send, receive:  # closed here too: the thread may outlive the event loop
        yield receive


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one attempt at a target produced no row."""

    kind: ErrorKind
    http_status: int | None = None
    error_code: str | None = None
    error_msg: str | None = None
    retry_after: float | None = None
    """Seconds the server asked to wait (a 429's ``Retry-After``), if it did."""


def classify(
    outcome: Response | Failure, target: Target, attempts: int, now: datetime
) -> dict[str, object] | Failure:
    """The ``tags`` row an answer makes, or the failure it is. Pure: DESIGN.md's fault table."""
    if isinstance(outcome, Failure):
        return outcome
    status = outcome.status
    if status == 200:
        try:
            return tag_row(
                target.namespace, target.repository, target.tag, outcome.body, now, attempts
            )
        except DecodeError as exc:
            return Failure(ErrorKind.DECODE, 200, None, str(exc)[:300])
    return failure_of(outcome, now)


def failure_of(response: Response, now: datetime) -> Failure:
    """The failure a non-200 answer is: its kind, the Huawei code and message from
    the body, and for a 429 the ``Retry-After`` in seconds. Pure."""
    kind = kind_for_status(response.status)
    assert kind is not None  # only 200 has no kind
    code, msg = error_fields(response.body)
    retry_after = (
        parse_retry_after(response.retry_after, now) if kind is ErrorKind.THROTTLED else None
    )
    return Failure(kind, response.status, code, msg, retry_after)


class Crawler:
    """Runs the pool for one run; see the module docstring."""

    def __init__(
        self,
        *,
        fetcher: Fetcher,
        sink: Sink,
        limiter: RateLimiter,
        policy: RetryPolicy,
        concurrency: int,
        stats: RunStats,
        control: RunControl,
        rng: random.Random | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._sink = sink
        self._limiter = limiter
        self._policy = policy
        self._concurrency = concurrency
        self._stats = stats
        self._control = control
        self._rng = rng or random.Random()
        # fast_acquire: a free slot is taken without a trip round the event loop
        # (the request that follows yields anyway); only a wait is a checkpoint.
        self._slots = anyio.Semaphore(concurrency, fast_acquire=True)

    async def run(self, source: Source) -> None:
        """Crawl every admitted target; returns when done or stopped."""
        send, receive = anyio.create_memory_object_stream[Target](self._concurrency * 4)
        workers = self._concurrency * 2
        async with anyio.create_task_group() as tg:
            async with receive:
                for _ in range(workers):
                    tg.start_soon(self._worker, receive.clone())
            tg.start_soon(self._produce, source, send)

    async def _produce(self, source: Source, send: MemoryObjectSendStream[Target]) -> None:
        async with send, source.open() as batches:
            # A stop ends the wait for input (or for a free worker) at once.
            with self._control.cancel_on_stop(anyio.CancelScope()):
                async for batch in batches:
                    if isinstance(batch, BaseException):
                        raise batch
                    for item in batch:
                        if self._control.stopping():
                            return
                        self._stats.targets += 1
                        if isinstance(item, InvalidTarget):
                            self._record_invalid(item)
                        else:
                            try:  # no checkpoint per target while the stream has room
                                send.send_nowait(item)
                            except anyio.WouldBlock:
                                await send.send(item)

    def _record_invalid(self, item: InvalidTarget) -> None:
        self._stats.errors[ErrorKind.INVALID_TARGET] += 1
        self._sink.add_error(
            {
                "namespace": item.namespace,
                "repository": item.repository,
                "tag": item.tag,
                "error_kind": ErrorKind.INVALID_TARGET.value,
                "http_status": None,
                "error_code": None,
                "error_msg": item.reason,
                "attempts": 0,
                "failed_at": _now(),
            }
        )
        log.info("crawl.target_invalid", source=item.source, reason=item.reason)

    async def _worker(self, receive: MemoryObjectReceiveStream[Target]) -> None:
        async with receive:
            while True:
                # receive_nowait first: every target awaits a request anyway, so the
                # checkpoint receive() takes before each item would only cost time.
                try:
                    target = receive.receive_nowait()
                except anyio.WouldBlock:
                    try:
                        target = await receive.receive()
                    except anyio.EndOfStream:
                        return
                except anyio.EndOfStream:
                    return
                if self._control.stopping():
                    return  # left unrecorded: --resume takes it up
                await self._crawl_one(target)
                await self._sink.wait_for_room()

    async def _crawl_one(self, target: Target) -> None:
        """Request one target until it has a row, its attempts run out, or the run stops."""
        stats = self._stats
        attempts = 0
        tries = 0  # fetch calls: bounds the retries even when no request could be sent
        while True:
            tries += 1
            async with self._slots:
                await self._limiter.acquire()
                if self._control.stopping():
                    return
                stats.in_flight += 1
                outcome: Response | Failure
                try:
                    response = await self._fetcher.fetch_tag(target.request_path)
                except TransportError as exc:
                    sent, outcome = exc.requests, Failure(exc.kind, error_msg=exc.message)
                except AuthenticationFailed as exc:
                    # The credential could not even be obtained (IAM login refused).
                    sent, outcome = 0, Failure(ErrorKind.UNAUTHORIZED, error_msg=str(exc)[:300])
                else:
                    sent, outcome = response.requests, response
                finally:
                    stats.in_flight -= 1
            attempts += sent
            stats.requests += sent
            result = classify(outcome, target, attempts, _now())
            if not isinstance(result, Failure):
                self._sink.add_tag(result)
                stats.ok += 1
                self._limiter.succeeded()
                return
            if not await self._after_failure(target, result, attempts, max(attempts, tries)):
                return

    async def _after_failure(
        self, target: Target, failure: Failure, attempts: int, spent: int
    ) -> bool:
        """Record the failure, or wait out its backoff: True = try again."""
        kind = failure.kind
        if kind is ErrorKind.THROTTLED:
            self._stats.throttled += 1
        if kind not in RETRYABLE_KINDS or spent >= self._policy.max_attempts:
            self._record_error(target, failure, attempts)
            if kind is ErrorKind.UNAUTHORIZED:
                # A refused credential fails every other request too: stop the run.
                self._control.stop("unauthorized")
            return False
        delay = self._policy.wait_before_retry(failure, spent, self._limiter, self._rng)
        self._stats.retries += 1
        log.info(
            "crawl.retry_scheduled",
            target=target.key,
            attempt=attempts,
            reason=kind.value,
            http_status=failure.http_status,
            error_code=failure.error_code,
            delay=round(delay, 3),
        )
        if failure.retry_after is None:
            await self._control.sleep(delay)
        return not self._control.stopping()

    def _record_error(self, target: Target, failure: Failure, attempts: int) -> None:
        kind = failure.kind
        self._stats.errors[kind] += 1
        self._sink.add_error(
            {
                "namespace": target.namespace,
                "repository": target.repository,
                "tag": target.tag,
                "error_kind": kind.value,
                "http_status": failure.http_status,
                "error_code": failure.error_code,
                "error_msg": failure.error_msg,
                "attempts": attempts,
                "failed_at": _now(),
            }
        )
        level = log.info if kind in DEFINITIVE_KINDS else log.warning
        level(
            "crawl.target_failed",
            target=target.key,
            error_kind=kind.value,
            http_status=failure.http_status,
            error_code=failure.error_code,
            error_msg=failure.error_msg,
            attempts=attempts,
        )
