"""The crawl's input: targets admitted (deduplicated, sharded, not yet recorded) in batches.

Reading, deduplicating and sharding the input runs in a thread in batches, so
a slow disk never stalls the event loop and a file of millions of targets is
never held in memory. Discovery (:mod:`crawler.crawl.discover`) feeds the
pool through the same :class:`Intake` rules.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

import anyio

from crawler.crawl.retry import Failure
from crawler.output.rows import TagRow
from crawler.run.stats import RunStats
from crawler.targets import InvalidTarget, SeenSet, Target, in_shard

INTAKE_BATCH = 2048


@dataclass(frozen=True, slots=True)
class Listed:
    """A tag whose ``tags`` row a list page already gave (list mode): no request left."""

    target: Target
    row: TagRow

    @property
    def key(self) -> str:
        """The target's key."""
        return self.target.key


@dataclass(frozen=True, slots=True)
class ListingError:
    """A listing that failed for good: becomes an ``errors`` row with a null tag
    (and a null repository when a namespace's repositories could not be listed)."""

    namespace: str | None
    repository: str | None
    failure: Failure
    attempts: int

    @property
    def tag(self) -> None:
        """A listing names no tag: its ``errors`` row has a null one."""
        return None

    @property
    def key(self) -> str:
        """``namespace/repository:`` (nulls as ""): the row's key on ``--resume``."""
        return f"{self.namespace or ''}/{self.repository or ''}:"


#: What the pool takes: a target to fetch, a row or an error to record as it is.
Item = Target | InvalidTarget | Listed | ListingError
Batch = list[Item]


class Recorded(Protocol):
    """What ``--resume`` knows is already recorded (see :mod:`crawler.output.checkpoint`)."""

    def holds(self, item: Item) -> bool: ...


class Intake:
    """Filters the raw input: drops duplicates, other shards' and already-recorded targets.

    Runs in a worker thread, one batch at a time: the counters are written by
    that thread only while the event loop awaits the batch.
    """

    def __init__(
        self,
        items: Iterable[Item],
        stats: RunStats,
        *,
        shard: tuple[int, int] = (0, 1),
        recorded: Recorded | None = None,
        interrupt: Callable[[], None] = lambda: None,
    ) -> None:
        """``interrupt`` ends a read of ``items`` in progress in another thread."""
        self._items = iter(items)
        self._interrupt = interrupt
        self._stats = stats
        self._shard = shard
        self._recorded = recorded
        self._seen = SeenSet()

    def admit(self, item: Item) -> bool:
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

    def recorded(self, item: Item) -> bool:
        """Whether an earlier segment of the run (``--resume``) recorded ``item``."""
        return self._recorded is not None and self._recorded.holds(item)

    def _admitted(self) -> Iterator[Item]:
        admit = self.admit
        for item in self._items:
            if admit(item):
                yield item

    def batches(self, size: int = INTAKE_BATCH) -> Iterator[Batch]:
        """Lists of admitted items, ``size`` at most each."""
        admitted = self._admitted()
        while batch := list(islice(admitted, size)):
            yield batch

    def open(self) -> AbstractAsyncContextManager[AsyncIterable[Batch | BaseException]]:
        """The admitted items as a stream of batches, read in a thread."""
        return _read_in_thread(self.batches(), self._interrupt)


class Source(Protocol):
    """Where the pool's targets come from: a file (:class:`Intake`) or discovery."""

    def open(self) -> AbstractAsyncContextManager[AsyncIterable[Batch | BaseException]]: ...


@asynccontextmanager
async def _read_in_thread(
    batches: Iterator[Batch], interrupt: Callable[[], None]
) -> AsyncIterator[AsyncIterator[Batch]]:
    """Yield ``batches`` read one at a time in a worker thread.

    A stop cancels the wait for a batch at once (the thread is abandoned);
    ``interrupt`` then ends the read it may still be in (a pipe whose writer
    stays open, an endless device), so no thread outlives the run.
    """
    try:
        yield _Batches(batches)
    finally:
        interrupt()


class _Batches:
    """The async iterator of :func:`_read_in_thread` (a class: nothing to close if dropped)."""

    def __init__(self, batches: Iterator[Batch]) -> None:
        self._batches = batches

    def __aiter__(self) -> _Batches:
        return self

    async def __anext__(self) -> Batch:
        batch = await anyio.to_thread.run_sync(next, self._batches, None, abandon_on_cancel=True)
        if batch is None:
            raise StopAsyncIteration
        return batch
