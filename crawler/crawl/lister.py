"""The SWR list APIs, page by page: namespaces, repositories, tags.

What the code relies on is in ``docs/swr-api.md`` ("List APIs")::

    ListNamespaces        GET /v2/manage/namespaces                   not paginated
    ListRepoDetails (v3)  GET /v3/manage/repos?namespace=NS           marker: int id, 0 at the end
    ListRepositoryTag(v3) GET /v3/manage/namespaces/NS/repos/R/tags   marker: opaque string
    ListRepositoryTags(v2) GET /v2/manage/namespaces/NS/repos/R/tags  offset/limit (fallback)

Every page is one request through the run's attempt loop
(:mod:`crawler.crawl.attempt`): the same slots, rate limiter, retries and
counters as a tag request. The paginators are small pure state machines
(``update(...)`` then ``params()``) in :mod:`crawler.crawl.paging`, apart
from the I/O; a marker is always the one the previous answer sent, never
computed.

The tag pages are async generators: stop early by leaving the loop inside
``contextlib.aclosing``::

    async with aclosing(lister.tags(ns, repo, newest_first=True)) as pages:
        async for page in pages:
            ...  # break when enough
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
import orjson
import structlog

from crawler.crawl.attempt import Attempts, Done, Failed
from crawler.crawl.paging import MIN_PAGE_SIZE, PAGE_SIZE, MarkerPager, OffsetPager
from crawler.crawl.retry import Failure, failure_of
from crawler.errors import FATAL_KINDS, AuthenticationFailed, ErrorKind, RunStopping
from crawler.http.response import Response
from crawler.targets import api_repository

log = structlog.get_logger("crawler")

#: The error code of the gateway's 404 for an API a region has not published.
API_NOT_PUBLISHED = "APIG.0101"


class Getter(Protocol):
    """What listing needs from the client."""

    async def get(self, path: str, query: Sequence[tuple[str, str]] = ()) -> Response: ...


class ListingFailed(Exception):
    """A page of a listing failed for good (definitive answer, or attempts ran out)."""

    def __init__(self, failure: Failure, attempts: int) -> None:
        super().__init__(failure.reason())
        self.failure = failure
        self.attempts = attempts


class _V3Unavailable(Exception):
    """The v3 tag list is not published in this region: use v2."""


class ListingStopped(Exception):
    """The run stopped while a listing was under way."""


@dataclass(frozen=True, slots=True)
class TagPage:
    """One page of a tag listing."""

    items: list[dict[str, Any]]
    """The tag items, each in ShowRepoTag's shape (``tag``, ``manifest``, ...)."""
    attempts: int
    """HTTP requests this page took."""


@dataclass(frozen=True, slots=True)
class Repository:
    """One repository as ListRepoDetails reports it."""

    namespace: str
    name: str
    """With ``/``, never ``$``."""
    num_images: int | None
    """The tag count the service reports (None if absent)."""


def repository_path(namespace: str, repository: str, version: str) -> str:
    """The tag-list path of a repository (``/`` in its name sent as ``$``)."""
    return f"/{version}/manage/namespaces/{namespace}/repos/{api_repository(repository)}/tags"


def _v2_item(item: dict[str, Any]) -> dict[str, Any]:
    """A v2 tag item in the shape of ShowRepoTag: ``Tag`` -> ``tag``; ``deleted``
    and ``scanned`` (list-only fields of v2) left out."""
    converted = {k: v for k, v in item.items() if k not in ("Tag", "deleted", "scanned")}
    if "tag" not in converted and "Tag" in item:
        converted["tag"] = item["Tag"]
    return converted


class Lister:
    """Reads the list APIs for a run; see the module docstring."""

    def __init__(self, client: Getter, attempts: Attempts, *, page_size: int = PAGE_SIZE) -> None:
        self._client = client
        self._attempts = attempts
        self._page_size = page_size
        self._v3: bool | None = None
        """Whether the region has the v3 tag list; None until its first answer."""
        self._v3_probe = anyio.Lock()
        """Held by the first v3 tag request until it tells whether v3 exists, so that
        concurrent listers do not all ask (and all log) the same 404."""

    async def namespaces(self) -> list[str]:
        """Every namespace the credential can see (ListNamespaces)."""
        body, _ = await self._get_json("namespaces", "/v2/manage/namespaces", [])
        items = body.get("namespaces") if isinstance(body, dict) else None
        return [
            str(item["name"]) for item in items or [] if isinstance(item, dict) and item.get("name")
        ]

    async def repositories(
        self, namespace: str, query: Sequence[tuple[str, str]] = ()
    ) -> AsyncGenerator[list[Repository], None]:
        """The repositories of ``namespace``, a page (up to 1,000) at a time; ``query``
        narrows them (e.g. ``name``, see :meth:`crawler.crawl.filters.Filters.repository_query`)."""
        pager = MarkerPager(self._page_size)
        while not pager.done:
            body, _ = await self._get_json(
                "repositories",
                "/v3/manage/repos",
                [("namespace", namespace), *query, *pager.params()],
            )
            repos = body.get("repos") if isinstance(body, dict) else None
            page = [r for r in repos or [] if isinstance(r, dict) and r.get("name")]
            yield [
                Repository(
                    str(r.get("namespace_name") or r.get("namespace") or namespace),
                    str(r["name"]),
                    r["num_images"] if type(r.get("num_images")) is int else None,
                )
                for r in page
            ]
            pager.update(body if isinstance(body, dict) else {}, len(page))

    async def tags(
        self,
        namespace: str,
        repository: str,
        *,
        with_manifest: bool = True,
        newest_first: bool = False,
        query: Sequence[tuple[str, str]] = (),
        page_size: int | None = None,
    ) -> AsyncGenerator[TagPage, None]:
        """The tag items of a repository, a page at a time, each in ShowRepoTag's shape.

        ``newest_first`` asks the service to order by ``updated_at``, newest
        first, so a caller that wants the newest few can stop after one page.
        ``query`` narrows the list (``tag``, see
        :meth:`crawler.crawl.filters.Filters.tag_query`); ``page_size`` overrides
        the lister's.
        Falls back to the v2 list (offset/limit) where v3 is not published.
        Raises :class:`ListingFailed` when a page fails for good,
        :class:`AuthenticationFailed` on a refused credential.
        """
        order = [("order_column", "updated_at"), ("order_type", "desc")] if newest_first else []
        narrowing = [*query, *order]
        size = page_size or self._page_size
        if self._v3_available() is not False:
            path = repository_path(namespace, repository, "v3")
            v3_query = [*narrowing, ("with_manifest", "true" if with_manifest else "false")]
            pager = MarkerPager(size, end_markers=("",))
            while not pager.done:
                try:
                    body, spent = await self._v3_page(path, [*v3_query, *pager.params()])
                except _V3Unavailable:
                    break
                except ListingFailed as exc:
                    if _smaller_pages(pager, exc, path):
                        continue
                    raise
                items = body.get("tags") if isinstance(body, dict) else None
                page = [t for t in items or [] if isinstance(t, dict)]
                yield TagPage(page, spent)
                pager.update(body if isinstance(body, dict) else {}, len(page))
            else:
                if pager.anomaly is not None:
                    log.warning(
                        "list.ended_early",
                        namespace=namespace,
                        repository=repository,
                        reason=pager.anomaly,
                    )
                return
        async for v2_page in self._tags_v2(namespace, repository, narrowing, size):
            yield v2_page

    async def _v3_page(self, path: str, query: list[tuple[str, str]]) -> tuple[Any, int]:
        """A v3 tag page; until the run knows whether v3 exists, one at a time."""
        if self._v3_available():
            return await self._get_json("tag_pages", path, query)
        async with self._v3_probe:
            if self._v3_available() is False:  # learnt while this one waited
                raise _V3Unavailable()
            try:
                answer = await self._get_json("tag_pages", path, query)
            except ListingFailed as exc:
                if not _not_published(exc.failure):
                    raise
                log.warning("list.v3_tags_not_published", fallback="v2")
                self._v3 = False
                raise _V3Unavailable() from None
            self._v3 = True
            return answer

    def _v3_available(self) -> bool | None:
        return self._v3

    async def _tags_v2(
        self, namespace: str, repository: str, narrowing: list[tuple[str, str]], size: int
    ) -> AsyncGenerator[TagPage, None]:
        path = repository_path(namespace, repository, "v2")
        pager = OffsetPager(size)
        seen: set[str] = set()
        while not pager.done:
            try:
                body, spent = await self._get_json("tag_pages", path, [*narrowing, *pager.params()])
            except ListingFailed as exc:
                if _smaller_pages(pager, exc, path):
                    continue
                raise
            items = body if isinstance(body, list) else []
            page = [_v2_item(t) for t in items if isinstance(t, dict)]
            names = {str(t.get("tag")) for t in page}
            new = len(names - seen)
            seen |= names
            yield TagPage(page, spent)
            pager.update(len(page), new)

    async def _get_json(
        self, api: str, path: str, query: Sequence[tuple[str, str]]
    ) -> tuple[Any, int]:
        """GET a list page through the attempt loop: its JSON value, and the requests it took."""
        outcome = await self._attempts.run(
            api, path, lambda: self._client.get(path, query), _decode_page
        )
        if isinstance(outcome, Done):
            return outcome.value, outcome.attempts
        if isinstance(outcome, Failed):
            failure = outcome.failure
            if failure.kind is ErrorKind.UNAUTHORIZED:
                raise AuthenticationFailed(f"listing {path}: {failure.reason()}")
            if failure.kind in FATAL_KINDS:  # an untrusted certificate: every request fails
                raise RunStopping(f"listing {path}: {failure.reason()}", failure.kind)
            raise ListingFailed(failure, outcome.attempts)
        raise ListingStopped()


def _smaller_pages(pager: MarkerPager | OffsetPager, exc: ListingFailed, path: str) -> bool:
    """A page over ``--max-body-bytes`` (large manifests): ask for the same page in a
    smaller size instead of giving up; False when pages cannot get smaller."""
    if exc.failure.kind is not ErrorKind.TOO_LARGE or pager.limit <= MIN_PAGE_SIZE:
        return False
    pager.limit = max(MIN_PAGE_SIZE, pager.limit // 2)
    log.warning("list.page_too_large", path=path, limit=pager.limit)
    return True


def _not_published(failure: Failure) -> bool:
    """The gateway's 404 for an API this region does not have."""
    return failure.http_status == 404 and failure.error_code == API_NOT_PUBLISHED


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
