"""Planned crawls of a targets file (``crawl --targets F --mode auto``): the pool's source.

1. Every admitted target (deduplicated, sharded, not yet recorded, by the same
   :class:`~crawler.crawl.intake.Intake` as a plain crawl) is spilled to disk
   (:class:`~crawler.crawl.plan.Spill`); invalid lines go straight to the pool
   as ``invalid_target`` rows.
2. The repositories then come out one at a time with their wanted-tag count
   ``k``. For ``k >= 2`` the namespace's repository sizes (``num_images``) are
   read once from ListRepoDetails; :func:`~crawler.crawl.plan.should_list` says
   whether listing the repository's tags takes fewer requests than ``k``
   ShowRepoTag calls.
3. A listed repository: each list item that is a wanted tag becomes its row
   (or, when the item lacks its manifest or a field, a ShowRepoTag through the
   pool, as in ``--discover``); a wanted tag the listing did not contain is
   fetched with ShowRepoTag (it may have been pushed since), so ``not_found``
   still means the service said 404. If the listing fails, its wanted tags are
   fetched one by one instead. Every other repository's tags are fetched one
   by one.

Each distinct target therefore reaches the pool exactly once. Memory: the
spill's one sorted run, one namespace's repository sizes, and for each
repository being listed a hash set of its wanted tags (16-32 bytes a tag).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import TypeVar

import anyio
import structlog
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import MemoryObjectSendStream

from crawler.crawl.control import RunControl
from crawler.crawl.discover import page_items
from crawler.crawl.intake import Batch, Intake, Listed
from crawler.crawl.lister import Lister, ListingFailed, ListingStopped
from crawler.crawl.plan import Group, Spill, WantedTags, should_list
from crawler.crawl.workers import worker_group
from crawler.errors import RunStopping
from crawler.targets import Target

log = structlog.get_logger("crawler")
T = TypeVar("T")

#: Targets handed to the pool at once, at most.
BATCH = 1024
#: Groups read from the spill per trip to its thread.
GROUPS_PER_READ = 256


@dataclass(slots=True)
class PlanStats:
    """What the plan did, for run.json (``counts.plan``)."""

    repositories: int = 0
    listed: int = 0
    """Repositories whose tags were listed."""
    fetched: int = 0
    """Repositories whose tags were fetched one by one."""
    rows_from_lists: int = 0
    """Targets whose row came from a list page: ShowRepoTag requests not sent."""
    missing_from_lists: int = 0
    """Wanted tags a listing did not contain (fetched one by one)."""
    listing_failures: int = 0
    """Listings that failed (their wanted tags were fetched one by one)."""

    def as_dict(self) -> dict[str, int]:
        """The counters, by field name."""
        return asdict(self)


class PlannedSource:
    """A targets file as the pool's source, planned per repository (see the module docstring)."""

    def __init__(
        self,
        intake: Intake,
        lister: Lister,
        control: RunControl,
        spill_dir: Path,
        *,
        spill_tag: str = "",
        concurrency: int = 4,
    ) -> None:
        self._intake = intake
        self._lister = lister
        self._control = control
        self._spill_dir = spill_dir
        self._spill_tag = spill_tag
        self._concurrency = concurrency
        self.stats = PlanStats()
        self._sizes_namespace: str | None = None
        self._sizes: dict[str, int | None] = {}
        self._scope = anyio.CancelScope()

    @asynccontextmanager
    async def open(self) -> AsyncIterator[AsyncIterable[Batch | BaseException]]:
        """Plan and walk; yield the pool's batches as they are decided."""
        send, receive = anyio.create_memory_object_stream[Batch | BaseException](0)
        with receive:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._run, send)
                try:
                    yield receive
                finally:
                    tg.cancel_scope.cancel()  # the crawl stopped early: so does the plan

    async def _run(self, send: MemoryObjectSendStream[Batch | BaseException]) -> None:
        async with send:
            try:
                spill = await anyio.to_thread.run_sync(
                    lambda: Spill(self._spill_dir, tag=self._spill_tag)
                )
                try:
                    await self._walk(spill, send)
                finally:
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(spill.close)
            except Exception as exc:
                await send.send(exc)

    async def _walk(
        self, spill: Spill, send: MemoryObjectSendStream[Batch | BaseException]
    ) -> None:
        async with self._intake.open() as batches:
            async for batch in batches:
                if isinstance(batch, BaseException):
                    raise batch
                targets = [item for item in batch if isinstance(item, Target)]
                others: Batch = [item for item in batch if not isinstance(item, Target)]
                if others:
                    await send.send(others)  # invalid lines: rows at once, never requested
                await anyio.to_thread.run_sync(_add_all, spill, targets)
        log.info("plan.spilled", targets=spill.targets)
        groups = await anyio.to_thread.run_sync(spill.groups)
        workers = worker_group(
            self._worker, send, workers=self._concurrency, buffer=self._concurrency * 2
        )
        async with workers as (jobs_send, self._scope):  # _refuse cancels the scope
            while chunk := await anyio.to_thread.run_sync(_take, groups, GROUPS_PER_READ):
                for group in chunk:
                    await jobs_send.send((group, await self._decide(group)))
        log.info("plan.finished", **self.stats.as_dict())

    def _refuse(self, exc: RunStopping) -> None:
        """A refused credential (or certificate) stops the run, as on a tag request."""
        log.error("plan.stopped", kind=exc.kind.value, reason=str(exc))
        self._control.stop(exc.kind.value)
        self._scope.cancel()

    async def _decide(self, group: Group) -> bool:
        """True: list the repository; False: fetch its wanted tags one by one."""
        self.stats.repositories += 1
        listed = False
        if group.count >= 2:  # one tag is one request either way
            sizes = await self._namespace_sizes(group.namespace)
            listed = should_list(group.count, sizes.get(group.repository))
        if listed:
            self.stats.listed += 1
        else:
            self.stats.fetched += 1
        return listed

    async def _namespace_sizes(self, namespace: str) -> dict[str, int | None]:
        """``num_images`` of every repository of ``namespace`` (read once; groups come sorted)."""
        if namespace != self._sizes_namespace:
            self._sizes = {}
            self._sizes_namespace = namespace
            try:
                async with aclosing(self._lister.repositories(namespace)) as pages:
                    async for page in pages:
                        for repo in page:
                            self._sizes[repo.name] = repo.num_images
            except ListingFailed as exc:
                # Unknown sizes: every repository of it is fetched one by one.
                log.warning("plan.sizes_unavailable", namespace=namespace, reason=str(exc))
                self._sizes = {}
            except RunStopping as exc:
                self._refuse(exc)
                self._sizes = {}
            except ListingStopped:
                self._sizes = {}
        return self._sizes

    async def _worker(
        self,
        jobs: ObjectReceiveStream[tuple[Group, bool]],
        send: ObjectSendStream[Batch | BaseException],
    ) -> None:
        async with jobs, send:
            async for group, listed in jobs:
                if listed:
                    await self._list(group, send)
                else:
                    await self._fetch(group.targets(), send)

    async def _fetch(
        self, targets: Iterator[Target], send: ObjectSendStream[Batch | BaseException]
    ) -> None:
        """Hand ``targets`` to the pool to be fetched one by one (read from disk in a thread)."""
        while chunk := await anyio.to_thread.run_sync(_take, targets, BATCH):
            await send.send(list(chunk))

    async def _list(self, group: Group, send: ObjectSendStream[Batch | BaseException]) -> None:
        wanted = await anyio.to_thread.run_sync(WantedTags, group.tags(), group.count)
        namespace, repository = group.namespace, group.repository
        try:
            async with aclosing(self._lister.tags(namespace, repository)) as pages:
                async for page in pages:
                    batch: Batch = []
                    for found in page_items(namespace, repository, page):
                        tag = found.target.tag if isinstance(found, Listed) else found.tag
                        # Unwanted, or listed twice (a tag that moved between two pages).
                        if wanted.take(tag):
                            batch.append(found)
                            if isinstance(found, Listed):
                                self.stats.rows_from_lists += 1
                    if batch:
                        await send.send(batch)
                    if wanted.taken == group.count:
                        break  # every wanted tag found: the rest of the listing is not needed
        except (RunStopping, ListingStopped) as exc:
            if isinstance(exc, RunStopping):
                self._refuse(exc)
            return  # stopping: what is left is for --resume
        except ListingFailed as exc:
            self.stats.listing_failures += 1
            log.warning(
                "plan.listing_failed",
                namespace=namespace,
                repository=repository,
                reason=str(exc),
                fallback="one by one",
            )
        self.stats.missing_from_lists += group.count - wanted.taken
        missing = (Target(namespace, repository, tag) for tag in wanted.untaken(group.tags()))
        await self._fetch(missing, send)


def _add_all(spill: Spill, targets: list[Target]) -> None:
    for target in targets:
        spill.add(target)


def _take(iterator: Iterator[T], n: int) -> list[T]:
    return list(islice(iterator, n))
