"""Listing when the pages misbehave: tags pushed or deleted between two pages, markers that
repeat or vanish. Real sockets to the sandbox; the tag pages of one repository are edited
at the HTTP seam, the way a registry that changes under the crawl (or a faulty one) answers."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import orjson
import pytest
from structlog.testing import capture_logs

from crawler.crawl.control import RunControl
from crawler.crawl.discover import Discoverer, DiscoverySource, Found, Named
from crawler.crawl.filters import Filters
from crawler.crawl.intake import Intake, Listed
from crawler.crawl.pool import Crawler
from crawler.http.client import SwrClient
from crawler.http.response import Response
from crawler.run.stats import RunStats
from crawler.sandbox.server import SandboxConfig, running_sandbox
from crawler.targets import Target
from tests.fakes import ListSink, sandbox_client, unlimited_attempts

TOKEN = "pages-token"
PAGE = 5
#: One namespace, two repositories of 12 tags: 3 pages of 5 each.
CONFIG = SandboxConfig(
    seed=21, namespaces=1, repos_per_namespace=2, tags_per_repo=12, tokens=frozenset({TOKEN})
)

Edit = Callable[[int, dict[str, Any]], dict[str, Any]]


class EditedPages:
    """The real client; the v3 tag pages of the first repository go through ``edit(n, body)``
    (n = 1 for its first page) and record what they sent."""

    def __init__(self, client: SwrClient, repository: str, edit: Edit) -> None:
        self._client = client
        self._suffix = f"/repos/{repository.replace('/', '$')}/tags"
        self._edit = edit
        self.pages: list[dict[str, Any]] = []

    async def get(self, path: str, query: Sequence[tuple[str, str]] = ()) -> Response:
        response = await self._client.get(path, query)
        if path.startswith("/v3/") and path.endswith(self._suffix) and response.status == 200:
            body = self._edit(len(self.pages) + 1, orjson.loads(response.body))
            self.pages.append(body)
            response = dataclasses.replace(response, body=orjson.dumps(body))
        return response

    async def fetch_tag(self, request_path: str) -> Response:
        return await self._client.fetch_tag(request_path)


@dataclasses.dataclass
class Edited:
    """The rows (in a list sink), the counters, the pages of the edited repository."""

    sink: ListSink
    stats: RunStats
    client: EditedPages
    repository: str
    tags: list[str]
    """The tags the edited repository really has, in list order."""

    def listed(self) -> list[str]:
        """The tags of the edited repository that have a row, in row order."""
        return [str(r["tag"]) for r in self.sink.tags if r["repository"] == self.repository]

    def keys(self) -> list[str]:
        """Every row's key."""
        return [f"{r['namespace']}/{r['repository']}:{r['tag']}" for r in self.sink.tags]


async def crawl_with(edit: Edit) -> Edited:
    """List-mode crawl of CONFIG's registry with the first repository's pages edited."""
    async with running_sandbox(CONFIG) as sb:
        namespace = sb.catalogue.namespaces()[0]
        repository = sb.catalogue.repositories(namespace)[0]
        stats, control = RunStats(), RunControl()
        async with sandbox_client(sb.url, TOKEN) as real:
            client = EditedPages(real, repository, edit)
            attempts = unlimited_attempts(stats, control)
            discoverer = Discoverer(client, attempts, mode="list", page_size=PAGE)
            sink = ListSink()
            crawler = Crawler(
                fetcher=client, sink=sink, attempts=attempts, concurrency=4, stats=stats
            )
            await crawler.run(DiscoverySource(discoverer, Intake((), stats), control))
        return Edited(sink, stats, client, repository, sb.catalogue.tags(namespace, repository))


@pytest.mark.anyio
async def test_unchanged_pages_list_every_tag_once() -> None:
    """The baseline: 12 tags in pages of 5 are listed in 3 pages, each tag once."""
    run = await crawl_with(lambda n, body: body)
    assert len(run.client.pages) == 3
    assert sorted(run.listed()) == sorted(run.tags)
    assert len(run.keys()) == len(set(run.keys())) == 24
    assert run.stats.duplicates == 0


@pytest.mark.anyio
async def test_a_push_between_pages_gives_no_duplicate_row() -> None:
    """A tag pushed ahead of the marker shifts page 2 by one: its first item repeats page 1's
    last. The repeat is dropped (one row per tag), and nothing else is lost."""
    last: list[dict[str, Any]] = []  # the last item of the page before, as the server had it

    def push(n: int, body: dict[str, Any]) -> dict[str, Any]:
        items = body["tags"]
        if n > 1:
            body["tags"] = [last[-1], *items[:-1]] if n == 2 else [last[-1], *items]
        last.append(items[-1])
        return body

    run = await crawl_with(push)
    assert len(run.keys()) == len(set(run.keys())) == 24
    assert sorted(run.listed()) == sorted(run.tags)
    assert run.stats.duplicates == 1


@pytest.mark.anyio
async def test_a_delete_between_pages_loses_at_most_the_shifted_tag() -> None:
    """A tag deleted ahead of the marker shifts page 2 back by one: the item that moved onto
    page 1 is not seen. No crash, no duplicate, every other tag has its row."""
    missed: list[str] = []

    def delete(n: int, body: dict[str, Any]) -> dict[str, Any]:
        if n == 2:
            missed.append(body["tags"][0]["tag"])
            body["tags"] = body["tags"][1:]
        return body

    run = await crawl_with(delete)
    assert len(run.keys()) == len(set(run.keys())) == 23
    assert sorted(run.listed()) == sorted(set(run.tags) - set(missed))


@pytest.mark.anyio
async def test_a_repeated_marker_ends_the_listing_with_a_warning() -> None:
    """Page 2 sends back page 1's marker: following it would loop forever, so the listing
    ends there (two pages), says so in the log, and writes no row twice."""
    markers: list[str] = []

    def repeat(n: int, body: dict[str, Any]) -> dict[str, Any]:
        markers.append(body["nextMarker"])
        if n == 2:
            body["nextMarker"] = markers[0]
        return body

    with capture_logs() as logs:
        run = await crawl_with(repeat)
    assert len(run.client.pages) == 2
    assert sorted(run.listed()) == sorted(run.tags[:10])
    assert len(run.keys()) == len(set(run.keys())) == 22
    (warning,) = [e for e in logs if e["event"] == "list.ended_early"]
    assert warning["reason"] == "a marker repeated"


@pytest.mark.anyio
async def test_an_empty_marker_with_has_more_ends_the_listing_with_a_warning() -> None:
    """has_more true but an empty nextMarker: there is nothing to send back, so the listing
    ends after that page and says so."""

    def vanish(n: int, body: dict[str, Any]) -> dict[str, Any]:
        body["nextMarker"] = ""
        return body

    with capture_logs() as logs:
        run = await crawl_with(vanish)
    assert len(run.client.pages) == 1
    assert sorted(run.listed()) == sorted(run.tags[:PAGE])
    (warning,) = [e for e in logs if e["event"] == "list.ended_early"]
    assert warning["reason"] == "has_more without a next marker"


#: List items a faulty registry might send: an invalid tag name, a tag that is no string, none.
BAD_ITEMS: list[dict[str, Any]] = [
    {"tag": "Bad Tag!", "updated": "2999-01-01T00:00:00Z"},
    {"tag": 7},
    {"digest": "sha256:0"},
]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["list", "detail", "names"])
async def test_listed_items_without_a_valid_tag_are_skipped(mode: str) -> None:
    """Items with an invalid, non-string or missing tag, first on a repository's first page,
    are skipped in every mode: nothing sent, not counted, and --newest 3 still takes the
    three newest valid tags."""
    async with running_sandbox(CONFIG) as sb:
        namespace = sb.catalogue.namespaces()[0]
        repository = sb.catalogue.repositories(namespace)[0]
        async with sandbox_client(sb.url, TOKEN) as real:

            def prepend(n: int, body: dict[str, Any]) -> dict[str, Any]:
                if n == 1:
                    body["tags"] = [*BAD_ITEMS, *body["tags"]]
                return body

            client = EditedPages(real, repository, prepend)
            discoverer = Discoverer(
                client,
                unlimited_attempts(RunStats()),
                mode=mode,
                page_size=PAGE,
                filters=Filters(repositories=(repository,), newest=3),
            )
            send, receive = anyio.create_memory_object_stream[Found](math.inf)
            async with receive:
                await discoverer.run(send)
                found = [item async for item in receive]
    assert len(client.pages) == 1
    newest = [item["tag"] for item in client.pages[0]["tags"][len(BAD_ITEMS) :][:3]]
    targets = [f.target if isinstance(f, Named | Listed) else f for f in found]
    assert targets == [Target(namespace, repository, tag) for tag in newest]
    assert discoverer.stats.tags == 3
