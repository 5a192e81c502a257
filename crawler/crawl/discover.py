"""Registry discovery (``crawl --discover``): every tag a credential can see, as the pool's input.

Namespaces, then each namespace's repositories, then each repository's tag
pages (:class:`~crawler.crawl.lister.Lister`); tags of different
repositories are listed concurrently, and what is found streams into the
crawl as it comes, so the crawl starts long before discovery ends.

Two modes (``--mode``):

* ``list`` (default): a tag list page (v3, ``with_manifest=true``, 1,000
  tags) carries for each tag the same fields as ShowRepoTag, so the page
  item *is* the row (:class:`~crawler.crawl.intake.Listed`), built by the
  same :func:`~crawler.output.normalize.tag_row_of`. An item whose manifest
  is empty or that lacks a field is fetched with ShowRepoTag by the pool.
* ``detail``: the pages give only names; every tag is one ShowRepoTag.
* ``names`` (the ``discover`` command): the pages without manifests, each tag
  sent as a :class:`Named` with its list item, for a targets file.

The filters (:mod:`crawler.crawl.filters`) narrow each level: what the API
can filter goes into the query, the exact globs are applied here, and a
repository's tag listing stops early once ``--updated-since``/``--newest``
can take nothing more.

A listing that fails for good becomes a
:class:`~crawler.crawl.intake.ListingError` (an ``errors`` row with a null
tag); the rest of the registry is still discovered, and the run ends
incomplete.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import anyio
import structlog
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from crawler.config import DISCOVER_MODES, CrawlConfig, listing_filters
from crawler.crawl.attempt import Attempts
from crawler.crawl.control import RunControl
from crawler.crawl.filters import Filters
from crawler.crawl.intake import Batch, Intake, Item, Listed, ListingError
from crawler.crawl.lister import Getter, Lister, ListingFailed, ListingStopped, TagPage
from crawler.crawl.paging import PAGE_SIZE
from crawler.crawl.workers import worker_group
from crawler.errors import RunStopping
from crawler.output.normalize import API_FIELDS, tag_row_of
from crawler.targets import Target, validate

log = structlog.get_logger("crawler")

BATCH = 256  # discovered items handed to the pool at once, at most
#: Repositories whose tags are listed at once, at most (and never more than --concurrency).
LIST_CONCURRENCY = 4

MODES: Final = (*DISCOVER_MODES, "names")


@dataclass(frozen=True, slots=True)
class Named:
    """A listed tag and its list item (``names`` mode): a line of ``discover``'s output."""

    target: Target
    item: dict[str, Any]


#: What discovery sends: the pool's items, or (``names`` mode) listed names.
Found = Item | Named


def complete_item(item: dict[str, Any]) -> bool:
    """Whether a list item has every field ShowRepoTag has, and a manifest: then it is the row."""
    manifest = item.get("manifest")
    return item.keys() >= API_FIELDS and bool(manifest) and isinstance(manifest, str | dict)


def valid_items(
    namespace: str, repository: str, items: Iterable[dict[str, Any]]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(tag, item)`` for each list item whose tag name keeps the naming rules; the
    others (no tag, not a string, an invalid name) are skipped."""
    for item in items:
        tag = item.get("tag")
        if isinstance(tag, str) and validate(namespace, repository, tag) is None:
            yield tag, item


def page_items(namespace: str, repository: str, page: TagPage) -> Iterator[Target | Listed]:
    """What one tag page gives, item by item: a :class:`Listed` (the row, as
    ShowRepoTag's answer would make it) for each complete item, the :class:`Target` to
    fetch for an incomplete one. Items whose tag name breaks the naming rules are skipped."""
    return _found(namespace, repository, valid_items(namespace, repository, page.items), page)


def _found(
    namespace: str,
    repository: str,
    tagged: Iterable[tuple[str, dict[str, Any]]],
    page: TagPage,
    *,
    rows: bool = True,
) -> Iterator[Target | Listed]:
    """:func:`page_items` of already validated ``(tag, item)`` pairs of ``page``; without
    ``rows`` every item is a target to fetch."""
    now = datetime.now(UTC)
    for tag, item in tagged:
        target = Target(namespace, repository, tag)
        if rows and complete_item(item):
            yield Listed(target, tag_row_of(namespace, repository, tag, item, now, page.attempts))
        else:
            yield target


@dataclass(slots=True)
class DiscoveryStats:
    """What discovery did."""

    mode: str = "list"
    namespaces: int = 0
    repositories: int = 0
    tags: int = 0
    """Tags the listings named (valid names)."""
    tags_by_namespace: Counter[str] = field(default_factory=Counter)
    """The same, per namespace (a --namespace with none is worth a warning)."""
    rows_from_lists: int = 0
    """Tags whose row came from a list page: ShowRepoTag requests not sent."""
    failures: int = 0
    """Listings that failed for good."""

    def as_dict(self) -> dict[str, Any]:
        """The counters, for logs and run.json."""
        return {
            "mode": self.mode,
            "namespaces": self.namespaces,
            "repositories": self.repositories,
            "tags": self.tags,
            "rows_from_lists": self.rows_from_lists,
            "tag_details_saved": self.rows_from_lists,
            "failures": self.failures,
        }


class Discoverer:
    """Walks the registry and sends what it finds (targets, rows, failures) into a stream."""

    def __init__(
        self,
        client: Getter,
        attempts: Attempts,
        *,
        mode: str = "list",
        concurrency: int = 4,
        page_size: int = PAGE_SIZE,
        filters: Filters | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.lister = Lister(client, attempts, page_size=page_size)
        self._page_size = page_size
        self._mode = mode
        self._filters = filters or Filters()
        self._concurrency = concurrency
        self.stats = DiscoveryStats(mode=mode)
        self._refused: RunStopping | None = None
        self._scope = anyio.CancelScope()

    async def run(self, send: MemoryObjectSendStream[Found]) -> None:
        """Discover every tag the filters take; close ``send``.

        Raises :class:`~crawler.errors.RunStopping` when the credential is refused or the
        server's certificate is not trusted.
        """
        filters = self._filters
        log.debug("discover.started", mode=self._mode, concurrency=self._concurrency)
        async with send:
            try:
                names = filters.namespace_names() or [
                    n for n in await self.lister.namespaces() if filters.wants_namespace(n)
                ]
            except ListingFailed as exc:
                await self._failed(send, None, None, exc)
                return
            except ListingStopped:
                return
            self.stats.namespaces = len(names)
            listers = worker_group(
                self._tag_lister, send, workers=self._concurrency, buffer=self._concurrency * 4
            )
            async with listers as (repos_send, self._scope):  # _refuse cancels the scope
                for namespace in names:
                    await self._list_repositories(namespace, repos_send, send)
        if self._refused is not None:
            raise self._refused
        log.info("discover.finished", **self.stats.as_dict())

    def _refuse(self, exc: RunStopping) -> None:
        """A refused credential (or certificate) ends all of discovery; :meth:`run` raises
        it (not in a group)."""
        if self._refused is None:
            self._refused = exc
        self._scope.cancel()

    async def _list_repositories(
        self,
        namespace: str,
        repos_send: ObjectSendStream[tuple[str, str]],
        send: ObjectSendStream[Found],
    ) -> None:
        filters = self._filters
        query = filters.repository_query()
        try:
            async with aclosing(self.lister.repositories(namespace, query)) as pages:
                async for page in pages:
                    for repo in page:
                        if not filters.wants_repository(repo.name):
                            continue
                        self.stats.repositories += 1
                        await repos_send.send((repo.namespace, repo.name))
        except ListingFailed as exc:
            await self._failed(send, namespace, None, exc)
        except RunStopping as exc:
            self._refuse(exc)
        except ListingStopped:
            return

    async def _tag_lister(
        self, repos: ObjectReceiveStream[tuple[str, str]], send: ObjectSendStream[Found]
    ) -> None:
        async with repos, send:
            async for namespace, repository in repos:
                try:
                    await self._list_tags(namespace, repository, send)
                except ListingFailed as exc:
                    await self._failed(send, namespace, repository, exc)
                except RunStopping as exc:
                    self._refuse(exc)
                    return
                except ListingStopped:
                    return

    async def _list_tags(
        self, namespace: str, repository: str, send: ObjectSendStream[Found]
    ) -> None:
        rows = self._mode == "list"
        named = self._mode == "names"
        stats = self.stats
        filters = self._filters
        selection = filters.selection()
        pages = self.lister.tags(
            namespace,
            repository,
            with_manifest=rows,
            newest_first=filters.ordered,
            query=filters.tag_query(),
            page_size=filters.page_size(self._page_size),
        )
        async with aclosing(pages):
            async for page in pages:
                selected: list[tuple[str, dict[str, Any]]] = []
                for tag, item in valid_items(namespace, repository, page.items):
                    if selection.take(tag, item.get("updated")):
                        selected.append((tag, item))
                    elif selection.done:
                        break
                stats.tags += len(selected)
                stats.tags_by_namespace[namespace] += len(selected)
                if named:
                    for tag, item in selected:
                        await send.send(Named(Target(namespace, repository, tag), item))
                else:
                    for found in _found(namespace, repository, selected, page, rows=rows):
                        if isinstance(found, Listed):
                            stats.rows_from_lists += 1
                        await send.send(found)
                if selection.done:
                    break  # newest first: nothing later can be taken

    async def _failed(
        self,
        send: ObjectSendStream[Found],
        namespace: str | None,
        repository: str | None,
        exc: ListingFailed,
    ) -> None:
        self.stats.failures += 1
        log.warning(
            "discover.listing_failed",
            namespace=namespace,
            repository=repository,
            reason=str(exc),
        )
        await send.send(ListingError(namespace, repository, exc.failure, exc.attempts))


def discoverer_for(
    config: CrawlConfig, client: Getter, attempts: Attempts, *, mode: str
) -> Discoverer:
    """The discoverer a run's settings ask for, built the one way every command builds it:
    the filters as of now, the tags of ``min(4, --concurrency)`` repositories listed at once."""
    return Discoverer(
        client,
        attempts,
        mode=mode,
        concurrency=min(LIST_CONCURRENCY, config.concurrency),
        filters=listing_filters(config, datetime.now(UTC)),
    )


async def discover_or_stop(
    discoverer: Discoverer, send: MemoryObjectSendStream[Found], control: RunControl
) -> None:
    """Run ``discoverer`` into ``send``; a refused credential (or an untrusted certificate)
    stops the run through ``control`` instead of raising."""
    try:
        await discoverer.run(send)
    except RunStopping as exc:
        log.error("discover.stopped", kind=exc.kind.value, reason=str(exc))
        control.stop(exc.kind.value)


class DiscoverySource:
    """Discovered items as the worker pool's source (see :class:`crawler.crawl.intake.Source`).

    Discovery runs beside the crawl: items are deduplicated, sharded and
    checked against ``--resume`` by the same :class:`~crawler.crawl.intake.Intake`
    rules as a file's, as they arrive (so a tag that two pages both list, as
    when a push shifts the pages between two requests, gives one row). A
    refused credential stops the run like a 401 on a tag request.
    """

    def __init__(
        self,
        discoverer: Discoverer,
        intake: Intake,
        control: RunControl,
    ) -> None:
        self.discoverer = discoverer
        self._intake = intake
        self._control = control

    @asynccontextmanager
    async def open(self) -> AsyncIterator[AsyncIterable[Batch | BaseException]]:
        """Start discovery; yield the admitted items in batches as they are found."""
        send, receive = anyio.create_memory_object_stream[Found](BATCH)
        async with anyio.create_task_group() as tg:
            tg.start_soon(discover_or_stop, self.discoverer, send, self._control)
            try:
                yield self._batches(receive)
            finally:
                tg.cancel_scope.cancel()  # the crawl stopped early: so does discovery

    def _admit(self, item: Item) -> bool:
        if self._intake.admit(item):
            return True
        if isinstance(item, ListingError) and self._intake.recorded(item):
            # An earlier segment recorded this listing's definitive answer (a 403,
            # say): the same answer again is the final one, not a new failure.
            self.discoverer.stats.failures -= 1
        return False

    async def _batches(self, receive: MemoryObjectReceiveStream[Found]) -> AsyncIterator[Batch]:
        admit = self._admit
        async with receive:
            async for found in receive:
                first = _pool_item(found)
                batch: Batch = [first] if admit(first) else []
                # Take whatever else is already waiting, without waiting for more.
                while len(batch) < BATCH:
                    try:
                        item = _pool_item(receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                    if admit(item):
                        batch.append(item)
                if batch:
                    yield batch


def _pool_item(found: Found) -> Item:
    """What the pool does with a found tag: a listed name is a target to fetch."""
    return found.target if isinstance(found, Named) else found
