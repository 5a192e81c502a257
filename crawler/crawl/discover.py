"""Registry discovery: every ``namespace/repository:tag`` a credential can see.

Three levels of the SWR list APIs (see ``docs/swr-api.md``)::

    ListNamespaces        GET /v2/manage/namespaces                   not paginated
    ListRepoDetails (v3)  GET /v3/manage/repos?namespace=NS           marker: int id, 0 at the end
    ListRepositoryTag(v3) GET /v3/manage/namespaces/NS/repos/R/tags   marker: str, "" at the end

The paginators are small pure state machines (``update(body)`` then
``params()``), kept apart from the I/O. Every list request goes through the
crawl's attempt loop (:mod:`crawler.crawl.attempt`): the same request slots,
rate limiter, retries (429, 5xx, timeouts) and counters as a tag request;
a definitive failure of one listing (403/404) is logged and counted, and the
rest of the registry is still discovered. Tags of different repositories are
listed concurrently; discovered targets stream into the crawl as they come,
so the crawl starts long before discovery ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
import orjson
import structlog
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from crawler.crawl.attempt import Attempts, Done, Failed
from crawler.crawl.control import RunControl
from crawler.crawl.intake import Batch, Intake
from crawler.crawl.retry import Failure, failure_of
from crawler.errors import AuthenticationFailed, ErrorKind
from crawler.http.response import Response
from crawler.targets import Target, validate

log = structlog.get_logger("crawler")

PAGE_SIZE = 1000  # the largest page the list APIs allow
BATCH = 256  # discovered targets handed to the pool at once, at most


class Getter(Protocol):
    """What discovery needs from the client."""

    async def get(self, path: str, query: Sequence[tuple[str, str]] = ()) -> Response: ...


class DiscoveryFailed(Exception):
    """One listing could not be read (definitive answer, or attempts ran out)."""


@dataclass(slots=True)
class MarkerPager:
    """Marker pagination: ``limit`` + ``marker``; done when the next marker is empty,
    ``0``, repeats, or ``has_more`` is false."""

    limit: int = PAGE_SIZE
    marker: str | None = None
    done: bool = False
    _seen: set[str] = field(default_factory=set)

    def params(self) -> list[tuple[str, str]]:
        """The query of the next page."""
        query = [("limit", str(self.limit))]
        if self.marker is not None:
            query.append(("marker", self.marker))
        return query

    def update(self, body: dict[str, Any], items: int) -> None:
        """Advance after a page of ``items`` entries."""
        raw = body.get("nextMarker", body.get("next_marker"))
        marker = None if raw is None else str(raw)
        if (
            items == 0
            or body.get("has_more") is False
            or marker in (None, "", "0")
            or marker in self._seen
        ):
            self.done = True
            return
        assert marker is not None
        self._seen.add(marker)
        self.marker = marker


@dataclass(slots=True)
class DiscoveryStats:
    """What discovery did."""

    namespaces: int = 0
    repositories: int = 0
    tags: int = 0
    requests: int = 0
    failures: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters, for logs and run.json."""
        return {
            "namespaces": self.namespaces,
            "repositories": self.repositories,
            "tags": self.tags,
            "requests": self.requests,
            "failures": self.failures,
        }


class Discoverer:
    """Lists the registry and sends :class:`Target` s into a stream."""

    def __init__(self, client: Getter, attempts: Attempts, *, concurrency: int = 4) -> None:
        self._client = client
        self._attempts = attempts
        self._concurrency = concurrency
        self.stats = DiscoveryStats()

    async def run(
        self, send: MemoryObjectSendStream[Target], namespaces: Sequence[str] = ()
    ) -> None:
        """Discover every tag (of ``namespaces``, or of all visible ones); close ``send``.

        Raises :class:`AuthenticationFailed` when the credential is refused.
        """
        async with send:
            names = list(namespaces) or await self._namespaces()
            self.stats.namespaces = len(names)
            repos_send, repos_receive = anyio.create_memory_object_stream[tuple[str, str]](
                self._concurrency * 4
            )
            async with anyio.create_task_group() as tg:
                async with repos_receive:
                    for _ in range(self._concurrency):
                        tg.start_soon(self._tag_lister, repos_receive.clone(), send.clone())
                async with repos_send:
                    for namespace in names:
                        await self._list_repositories(namespace, repos_send)
        log.info("discover.finished", **self.stats.as_dict())

    async def _namespaces(self) -> list[str]:
        body = await self._get_json("namespaces", "/v2/manage/namespaces", [])
        items = body.get("namespaces") if isinstance(body, dict) else None
        names = [str(item["name"]) for item in items or [] if isinstance(item, dict)]
        return names

    async def _list_repositories(
        self, namespace: str, repos_send: ObjectSendStream[tuple[str, str]]
    ) -> None:
        pager = MarkerPager()
        while not pager.done:
            try:
                body = await self._get_json(
                    "repositories", "/v3/manage/repos", [("namespace", namespace), *pager.params()]
                )
            except DiscoveryFailed as exc:
                self._failed("repositories", namespace, exc)
                return
            repos = body.get("repos") if isinstance(body, dict) else None
            page = [r for r in repos or [] if isinstance(r, dict) and r.get("name")]
            for repo in page:
                self.stats.repositories += 1
                owner = str(repo.get("namespace_name") or repo.get("namespace") or namespace)
                await repos_send.send((owner, str(repo["name"])))
            pager.update(body if isinstance(body, dict) else {}, len(page))

    async def _tag_lister(
        self,
        repos: ObjectReceiveStream[tuple[str, str]],
        send: ObjectSendStream[Target],
    ) -> None:
        async with repos, send:
            async for namespace, repository in repos:
                path = (
                    f"/v3/manage/namespaces/{namespace}/repos/{repository.replace('/', '$')}/tags"
                )
                pager = MarkerPager()
                while not pager.done:
                    try:
                        body = await self._get_json("tag_pages", path, pager.params())
                    except DiscoveryFailed as exc:
                        self._failed("tags", f"{namespace}/{repository}", exc)
                        break
                    tags = body.get("tags") if isinstance(body, dict) else None
                    page = [t for t in tags or [] if isinstance(t, dict)]
                    for item in page:
                        tag = item.get("tag", item.get("Tag"))
                        if isinstance(tag, str) and validate(namespace, repository, tag) is None:
                            self.stats.tags += 1
                            await send.send(Target(namespace, repository, tag))
                    pager.update(body if isinstance(body, dict) else {}, len(page))

    def _failed(self, what: str, where: str, exc: DiscoveryFailed) -> None:
        self.stats.failures += 1
        log.warning("discover.listing_failed", listing=what, scope=where, reason=str(exc))

    async def _get_json(self, api: str, path: str, query: Sequence[tuple[str, str]]) -> Any:
        """GET a list page through the attempt loop; its JSON value.

        Raises :class:`AuthenticationFailed` on a 401 and :class:`DiscoveryFailed`
        when the page fails for good.
        """
        outcome = await self._attempts.run(
            api, path, lambda: self._client.get(path, query), _decode_page
        )
        self.stats.requests += outcome.attempts
        if isinstance(outcome, Done):
            return outcome.value
        if isinstance(outcome, Failed):
            failure = outcome.failure
            if failure.kind is ErrorKind.UNAUTHORIZED:
                raise AuthenticationFailed(f"listing {path}: {failure.reason()}")
            raise DiscoveryFailed(failure.reason())
        raise DiscoveryFailed("the run stopped")


def _decode_page(outcome: Response | Failure, attempts: int) -> Any:
    """A list page's JSON value, or the failure its answer is."""
    if isinstance(outcome, Failure):
        return outcome
    if outcome.status != 200:
        return failure_of(outcome, datetime.now(UTC))
    try:
        return orjson.loads(outcome.body)
    except orjson.JSONDecodeError:
        return Failure(ErrorKind.DECODE, 200, error_msg="list page is not JSON")


class DiscoverySource:
    """Discovered targets as the worker pool's source (see :class:`crawler.crawl.intake.Source`).

    Discovery runs beside the crawl: targets are deduplicated, sharded and
    checked against ``--resume`` by the same :class:`~crawler.crawl.intake.Intake`
    rules as a file's, as they arrive. A refused credential stops the run
    like a 401 on a tag request.
    """

    def __init__(
        self,
        discoverer: Discoverer,
        intake: Intake,
        control: RunControl,
        namespaces: Sequence[str] = (),
    ) -> None:
        self.discoverer = discoverer
        self._intake = intake
        self._control = control
        self._namespaces = namespaces

    @asynccontextmanager
    async def open(self) -> AsyncIterator[AsyncIterable[Batch | BaseException]]:
        """Start discovery; yield the admitted targets in batches as they are found."""
        send, receive = anyio.create_memory_object_stream[Target](BATCH)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._discover, send)
            try:
                yield self._batches(receive)
            finally:
                tg.cancel_scope.cancel()  # the crawl stopped early: so does discovery

    async def _discover(self, send: MemoryObjectSendStream[Target]) -> None:
        try:
            await self.discoverer.run(send, self._namespaces)
        except AuthenticationFailed as exc:
            log.error("discover.unauthorized", reason=str(exc))
            self._control.stop("unauthorized")

    async def _batches(self, receive: MemoryObjectReceiveStream[Target]) -> AsyncIterator[Batch]:
        admit = self._intake.admit
        async with receive:
            async for first in receive:
                batch: Batch = [first] if admit(first) else []
                # Take whatever else is already waiting, without waiting for more.
                while len(batch) < BATCH:
                    try:
                        target = receive.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                    if admit(target):
                        batch.append(target)
                if batch:
                    yield batch
