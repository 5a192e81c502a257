"""Registry discovery: the list APIs walked to the end, over real sockets to the sandbox."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Sequence
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.config import build_config
from crawler.crawl.control import RunControl
from crawler.crawl.discover import Discoverer, DiscoverySource
from crawler.crawl.intake import Intake, Item, Listed
from crawler.crawl.paging import MarkerPager
from crawler.crawl.pool import Crawler
from crawler.errors import AuthenticationFailed, ConfigError
from crawler.http.client import SwrClient
from crawler.http.response import Response
from crawler.run.stats import RunStats
from crawler.sandbox.catalogue import Catalogue
from crawler.sandbox.faults import FaultConfig
from crawler.sandbox.server import SandboxConfig, running_sandbox
from crawler.targets import Target
from tests.e2e_helpers import TOKEN, catalogue_keys, crawl, row_keys, sandbox_config
from tests.fakes import ListSink, sandbox_client, unlimited_attempts


@given(st.lists(st.one_of(st.integers(1, 50), st.text(min_size=1, max_size=3)), min_size=1))
def test_marker_pager_sends_markers_back_and_ends_on_a_repeat(markers: list[object]) -> None:
    """A server that cycles through markers forever: the pager sends each answer's marker
    back as it came, and stops at the first one it has seen, len(distinct) + 1 pages at most."""
    pager = MarkerPager(limit=1)
    distinct = {str(m) for m in markers if str(m) not in ("", "0")}
    pages = 0
    previous: str | None = None
    while not pager.done:
        assert pages <= len(distinct) + 1, "the pager did not stop on a repeated marker"
        sent = dict(pager.params()).get("marker")
        assert sent == previous
        marker = markers[pages % len(markers)]
        pages += 1
        pager.update({"nextMarker": marker}, 1)
        previous = str(marker)
    assert pages <= len(distinct) + 1


async def discover(
    config: SandboxConfig, *, max_attempts: int = 5, backoff: float = 0.0, mode: str = "detail"
) -> tuple[list[Item], Discoverer, RunStats]:
    """Run discovery against a sandbox; return what it found, in order."""
    async with running_sandbox(config) as sb, sandbox_client(sb.url, TOKEN) as client:
        stats = RunStats()
        attempts = unlimited_attempts(stats, max_attempts=max_attempts, backoff=backoff)
        discoverer = Discoverer(client, attempts, mode=mode)
        # Unbounded (the catalogues here are small) so that run() needs no reader task:
        # whatever it raises reaches the caller as it is, not wrapped in a task group's.
        send, receive = anyio.create_memory_object_stream[Item](math.inf)
        async with receive:
            await discoverer.run(send)
            # run() closed the sending side: this reads what it found, to the end
            return [item async for item in receive], discoverer, stats


def keys_found(items: list[Item]) -> list[str]:
    """The target keys of what discovery found (to fetch, or listed with a row)."""
    return [i.key for i in items if isinstance(i, Target | Listed)]


@pytest.mark.anyio
async def test_discovers_every_catalogue_tag_exactly_once() -> None:
    """Walking namespaces -> repositories -> tags yields the whole catalogue, each tag once."""
    shape = {"seed": 5, "namespaces": 3, "repos_per_namespace": 7, "tags_per_repo": 9}
    found, discoverer, _ = await discover(sandbox_config(**shape))
    expected = set(catalogue_keys(Catalogue(**shape)))
    keys = keys_found(found)
    assert len(keys) == len(set(keys))
    assert set(keys) == expected
    assert discoverer.stats.failures == 0
    assert discoverer.stats.repositories == 21


@pytest.mark.anyio
async def test_throttled_list_pages_are_retried() -> None:
    """429s from a server-side limit on list pages are retried; discovery finds everything."""
    faults = FaultConfig(rate_limit=30.0, rate_burst=1)
    config = sandbox_config(
        seed=5, namespaces=2, repos_per_namespace=3, tags_per_repo=4, faults=faults
    )
    found, discoverer, stats = await discover(config, max_attempts=20, backoff=0.05)
    assert len(set(keys_found(found))) == 24
    assert discoverer.stats.failures == 0
    lists = stats.requests_by_api
    # namespaces + repo pages + tag pages, plus retries
    assert lists["namespaces"] + lists["repositories"] + lists["tag_pages"] > 1 + 2 + 6
    assert stats.retries > 0


@pytest.mark.anyio
async def test_bad_token_raises_authentication_failed() -> None:
    """A 401 on a list API is an authentication failure, not a silently empty registry."""
    config = sandbox_config(
        seed=5, namespaces=1, repos_per_namespace=1, tags_per_repo=1, tokens=frozenset({"another"})
    )
    with pytest.raises(AuthenticationFailed):
        await discover(config)


@pytest.mark.anyio
async def test_crawl_with_discover_fetches_the_whole_registry(tmp_path: Path) -> None:
    """--discover crawls every tag the registry lists, each once, and run.json says so."""
    config = sandbox_config(seed=8, namespaces=2, repos_per_namespace=4, tags_per_repo=5)
    async with running_sandbox(config) as sb:
        expected = set(catalogue_keys(sb.catalogue))
        outcome = await crawl(sb.url, None, tmp_path / "out", discover=True, mode=None)
    assert sorted(row_keys(outcome.tags)) == sorted(expected)
    assert outcome.result.exit_code == 0
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["complete"] is True
    assert report["counts"]["discovery"]["tags"] == len(expected)


@pytest.mark.anyio
async def test_discover_limited_to_namespaces(tmp_path: Path) -> None:
    """--namespace limits discovery to that namespace's tags."""
    config = sandbox_config(seed=8, namespaces=3, repos_per_namespace=2, tags_per_repo=3)
    async with running_sandbox(config) as sb:
        wanted = sb.catalogue.namespaces()[1]
        outcome = await crawl(
            sb.url, None, tmp_path / "out", discover=True, mode=None, namespaces=(wanted,)
        )
    assert set(outcome.tags.column("namespace").to_pylist()) == {wanted}


def test_discover_and_targets_together_is_a_usage_error() -> None:
    """--discover with --targets is rejected as ambiguous."""
    with pytest.raises(ConfigError, match="not both"):
        build_config(
            {"out": "o", "endpoint": "http://h", "discover": True, "targets": "t"}, environ={}
        )


class CountingClient:
    """The real client, counting the requests in flight at once (tag details and lists)."""

    def __init__(self, client: SwrClient) -> None:
        self._client = client
        self.in_flight = 0
        self.peak = 0
        self.lists = 0

    async def _counted(self, call: Awaitable[Response]) -> Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await call
        finally:
            self.in_flight -= 1

    async def get(self, path: str, query: Sequence[tuple[str, str]] = ()) -> Response:
        self.lists += 1
        return await self._counted(self._client.get(path, query))

    async def fetch_tag(self, request_path: str) -> Response:
        return await self._counted(self._client.fetch_tag(request_path))


@pytest.mark.anyio
async def test_list_requests_are_bounded_by_concurrency() -> None:
    """List pages and tag requests share the --concurrency slots: never more at once."""
    config = sandbox_config(
        seed=3,
        namespaces=2,
        repos_per_namespace=8,
        tags_per_repo=3,
        faults=FaultConfig(latency=0.01),
    )
    async with (
        running_sandbox(config) as sb,
        sandbox_client(sb.url, TOKEN, max_connections=8) as real,
    ):
        client = CountingClient(real)
        stats, control = RunStats(), RunControl()
        attempts = unlimited_attempts(stats, control, concurrency=2)
        # Four tag listers and four crawl workers would send up to 8 at once unbounded.
        discoverer = Discoverer(client, attempts, mode="detail", concurrency=4)
        sink = ListSink()
        crawler = Crawler(fetcher=client, sink=sink, attempts=attempts, concurrency=2, stats=stats)
        await crawler.run(DiscoverySource(discoverer, Intake((), stats), control))
    assert len(sink.tags) == 2 * 8 * 3
    assert client.lists == 1 + 2 + 16
    assert client.peak == 2
    assert stats.requests_by_api == {
        "namespaces": 1,
        "repositories": 2,
        "tag_pages": 16,
        "tag_details": 48,
    }


@pytest.mark.anyio
async def test_a_failed_listing_ends_the_run_incomplete(tmp_path: Path) -> None:
    """A tag listing that fails for good: the rest is crawled, complete: false, exit 1."""
    shape = {"seed": 8, "namespaces": 1, "repos_per_namespace": 3, "tags_per_repo": 2}
    catalogue = Catalogue(**shape)
    namespace = catalogue.namespaces()[0]
    broken = catalogue.repositories(namespace)[1]
    faults = FaultConfig(scripts={f"tags:{namespace}/{broken}": ["503"] * 5})
    async with running_sandbox(sandbox_config(**shape, faults=faults)) as sb:
        outcome = await crawl(
            sb.url,
            None,
            tmp_path / "out",
            discover=True,
            mode=None,
            max_attempts=5,
            backoff_initial=0.0,
            backoff_max=0.0,
        )
    assert sorted({r["repository"] for r in outcome.tags.to_pylist()}) == sorted(
        set(catalogue.repositories(namespace)) - {broken}
    )
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["complete"] is False
    assert outcome.result.exit_code == 1
