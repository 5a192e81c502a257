"""The worker pool: targets in, one row per target out.

Structure (anyio, structured concurrency only)::

    source ──batches──▶ producer ──stream(bounded)──▶ workers × W ──▶ sink
                           └─ rows and errors a listing already made ──▶ sink
                                                         │
                              Attempts: ≤ concurrency requests in flight,
                              rate limiter, retries (see crawler.crawl.attempt)

There are more workers than request slots: a worker that sleeps in backoff
holds no slot, so a few failing targets do not starve the healthy ones. The
pool knows neither connections (see :mod:`crawler.http.transport`) nor Parquet (see
:mod:`crawler.output.sink`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from crawler.crawl.attempt import Attempts, Done, Failed
from crawler.crawl.control import RunControl
from crawler.crawl.intake import Listed, ListingError, Source
from crawler.crawl.retry import Failure, classify
from crawler.errors import DEFINITIVE_KINDS, FATAL_KINDS, ErrorKind
from crawler.http.response import Response
from crawler.output.rows import ErrorRow, TagRow, error_row
from crawler.run.stats import RunStats
from crawler.targets import InvalidTarget, Target

log = structlog.get_logger("crawler")


class Fetcher(Protocol):
    """What the pool needs from the client."""

    async def fetch_tag(self, request_path: str) -> Response: ...


class Sink(Protocol):
    """What the pool needs from the output."""

    def add_tag(self, row: TagRow) -> None: ...

    def add_error(self, row: ErrorRow) -> None: ...

    async def wait_for_room(self) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC)


class Crawler:
    """Runs the pool for one run; see the module docstring."""

    def __init__(
        self,
        *,
        fetcher: Fetcher,
        sink: Sink,
        attempts: Attempts,
        concurrency: int,
        stats: RunStats,
    ) -> None:
        self._fetcher = fetcher
        self._sink = sink
        self._attempts = attempts
        self._concurrency = concurrency
        self._stats = stats
        self._control: RunControl = attempts.control

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
                        self._stats.targets += 1  # a failed listing is a row too
                        if isinstance(item, Target):
                            try:  # no checkpoint per target while the stream has room
                                send.send_nowait(item)
                            except anyio.WouldBlock:
                                await send.send(item)
                        elif isinstance(item, Listed):
                            self._sink.add_tag(item.row)
                            self._stats.ok += 1
                        elif isinstance(item, ListingError):
                            self._record_listing_error(item)
                        else:
                            self._record_invalid(item)
                    # Rows from list pages come far faster than Parquet is written:
                    # wait while the writer is behind, as a worker does after its row.
                    await self._sink.wait_for_room()

    def _record_invalid(self, item: InvalidTarget) -> None:
        self._stats.errors[ErrorKind.INVALID_TARGET] += 1
        self._sink.add_error(
            error_row(
                item, ErrorKind.INVALID_TARGET, attempts=0, failed_at=_now(), error_msg=item.message
            )
        )
        log.info("crawl.target_invalid", line=item.line, source=item.source, reason=item.reason)

    def _record_listing_error(self, item: ListingError) -> None:
        failure = item.failure
        self._stats.errors[failure.kind] += 1
        self._sink.add_error(
            error_row(
                item,
                failure.kind,
                attempts=item.attempts,
                failed_at=_now(),
                http_status=failure.http_status,
                error_code=failure.error_code,
                error_msg=failure.error_msg,
            )
        )
        log.warning(
            "crawl.listing_failed",
            namespace=item.namespace,
            repository=item.repository,
            error_kind=failure.kind.value,
            http_status=failure.http_status,
            error_code=failure.error_code,
            attempts=item.attempts,
        )

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
                await self.crawl_one(target)
                await self._sink.wait_for_room()

    async def crawl_one(self, target: Target) -> None:
        """Fetch one target with ShowRepoTag and record its row (nothing if the run stops)."""

        def judge(outcome: Response | Failure, attempts: int) -> TagRow | Failure:
            return classify(outcome, target, attempts, _now())

        outcome = await self._attempts.run(
            "tag_details",
            target.key,
            lambda: self._fetcher.fetch_tag(target.request_path),
            judge,
        )
        if isinstance(outcome, Done):
            self._sink.add_tag(outcome.value)
            self._stats.ok += 1
        elif isinstance(outcome, Failed):
            self.record_error(target, outcome.failure, outcome.attempts)
            if outcome.failure.kind in FATAL_KINDS:
                # A refused credential (or an untrusted certificate) fails every
                # other request too: stop the run.
                self._control.stop(outcome.failure.kind.value)

    def record_error(self, target: Target, failure: Failure, attempts: int) -> None:
        """An ``errors`` row for ``target``."""
        kind = failure.kind
        self._stats.errors[kind] += 1
        self._sink.add_error(
            error_row(
                target,
                kind,
                attempts=attempts,
                failed_at=_now(),
                http_status=failure.http_status,
                error_code=failure.error_code,
                error_msg=failure.error_msg,
            )
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
