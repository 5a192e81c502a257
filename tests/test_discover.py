"""Registry discovery: the list APIs walked to the end, over real sockets to the sandbox."""

from __future__ import annotations

import json
import random
from pathlib import Path

import anyio
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.config import build_config
from crawler.crawl.discover import Discoverer, MarkerPager
from crawler.crawl.limits import RateLimiter
from crawler.crawl.pool import RetryPolicy
from crawler.errors import AuthenticationFailed, ConfigError
from crawler.http.client import SwrClient
from crawler.http.credentials import StaticToken
from crawler.run.runner import run_crawl
from crawler.sandbox.catalogue import Catalogue
from crawler.sandbox.faults import FaultConfig
from crawler.sandbox.server import SandboxConfig, running_sandbox
from crawler.targets import Target

TOKEN = "discover-token"


def test_marker_pager_stops_on_every_end_signal() -> None:
    """Empty/zero/repeated markers, has_more false and empty pages all end the walk."""
    for body, items in (
        ({"nextMarker": ""}, 5),
        ({"nextMarker": 0}, 5),
        ({"nextMarker": "7", "has_more": False}, 5),
        ({"nextMarker": "7"}, 0),
        ({}, 5),
    ):
        pager = MarkerPager(limit=5)
        pager.update(body, items)
        assert pager.done, body
    pager = MarkerPager(limit=5)
    pager.update({"nextMarker": 9}, 5)
    assert (pager.done, pager.params()) == (False, [("limit", "5"), ("marker", "9")])
    pager.update({"nextMarker": 9}, 5)
    assert pager.done  # a repeated marker would loop forever


@given(st.lists(st.one_of(st.integers(0, 50), st.text(max_size=3)), max_size=30))
def test_marker_pager_always_terminates(markers: list[object]) -> None:
    """Whatever markers a server sends, the pager asks for at most len(markers)+1 pages."""
    pager = MarkerPager(limit=1)
    pages = 0
    for marker in [*markers, ""]:
        if pager.done:
            break
        pages += 1
        pager.update({"nextMarker": marker}, 1)
    assert pager.done
    assert pages <= len(markers) + 1


async def discover(
    config: SandboxConfig, *, max_attempts: int = 5, backoff: float = 0.0
) -> tuple[list[Target], Discoverer]:
    """Run discovery against a sandbox; return what it found, in order."""
    async with running_sandbox(config) as sb:
        client = SwrClient(sb.url, StaticToken(TOKEN), timeout=5, max_connections=4)
        discoverer = Discoverer(
            client,
            RateLimiter(0),
            policy=RetryPolicy(max_attempts, backoff, backoff * 4),
            rng=random.Random(0),
        )
        send, receive = anyio.create_memory_object_stream[Target](8)
        found: list[Target] = []

        async def collect() -> None:
            async with receive:
                async for target in receive:
                    found.append(target)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(collect)
                await discoverer.run(send)
        finally:
            await client.aclose()
        return found, discoverer


@pytest.mark.anyio
async def test_discovers_every_catalogue_tag_exactly_once() -> None:
    """Walking namespaces -> repositories -> tags yields the whole catalogue, each tag once."""
    config = SandboxConfig(
        seed=5, namespaces=3, repos_per_namespace=7, tags_per_repo=9, tokens=frozenset({TOKEN})
    )
    found, discoverer = await discover(config)
    catalogue = Catalogue(seed=5, namespaces=3, repos_per_namespace=7, tags_per_repo=9)
    expected = {f"{ns}/{repo}:{tag}" for ns, repo, tag in catalogue.targets()}
    keys = [t.key for t in found]
    assert len(keys) == len(set(keys))
    assert set(keys) == expected
    assert discoverer.stats.failures == 0
    assert discoverer.stats.repositories == 21


@pytest.mark.anyio
async def test_throttled_list_pages_are_retried() -> None:
    """429s from a server-side limit on list pages are retried; discovery finds everything."""
    faults = FaultConfig(rate_limit=30.0, rate_burst=1)
    config = SandboxConfig(
        seed=5,
        namespaces=2,
        repos_per_namespace=3,
        tags_per_repo=4,
        tokens=frozenset({TOKEN}),
        faults=faults,
    )
    found, discoverer = await discover(config, max_attempts=20, backoff=0.05)
    assert len({t.key for t in found}) == 24
    assert discoverer.stats.failures == 0
    assert (
        discoverer.stats.requests > 1 + 2 + 6
    )  # namespaces + repo pages + tag pages, plus retries


@pytest.mark.anyio
async def test_bad_token_raises_authentication_failed() -> None:
    """A 401 on a list API is an authentication failure, not a silently empty registry."""
    config = SandboxConfig(
        seed=5, namespaces=1, repos_per_namespace=1, tags_per_repo=1, tokens=frozenset({"another"})
    )
    with pytest.raises(BaseException) as info:  # noqa: PT011 - the task group wraps it
        await discover(config)
    group = info.value
    leaves = group.exceptions if isinstance(group, BaseExceptionGroup) else [group]
    assert any(isinstance(e, AuthenticationFailed) for e in leaves)


@pytest.mark.anyio
async def test_crawl_with_discover_fetches_the_whole_registry(tmp_path: Path) -> None:
    """--discover crawls every tag the registry lists, each once, and run.json says so."""
    config = SandboxConfig(
        seed=8, namespaces=2, repos_per_namespace=4, tags_per_repo=5, tokens=frozenset({TOKEN})
    )
    async with running_sandbox(config) as sb:
        expected = {f"{ns}/{repo}:{tag}" for ns, repo, tag in sb.catalogue.targets()}
        settings = build_config(
            {
                "out": str(tmp_path / "out"),
                "endpoint": sb.url,
                "discover": True,
                "rate": 0,
                "progress": False,
            },
            environ={},
        )
        result = await run_crawl(settings, environ={"SWR_AUTH_TOKEN": TOKEN}, handle_signals=False)
    tags = pq.read_table(tmp_path / "out" / "tags").to_pylist()
    keys = [f"{r['namespace']}/{r['repository']}:{r['tag']}" for r in tags]
    assert sorted(keys) == sorted(expected)
    assert result.exit_code == 0
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["complete"] is True
    assert report["counts"]["discovery"]["tags"] == len(expected)


@pytest.mark.anyio
async def test_discover_limited_to_namespaces(tmp_path: Path) -> None:
    """--namespace limits discovery to that namespace's tags."""
    config = SandboxConfig(
        seed=8, namespaces=3, repos_per_namespace=2, tags_per_repo=3, tokens=frozenset({TOKEN})
    )
    async with running_sandbox(config) as sb:
        wanted = sb.catalogue.namespaces()[1]
        settings = build_config(
            {
                "out": str(tmp_path / "out"),
                "endpoint": sb.url,
                "discover": True,
                "namespaces": (wanted,),
                "rate": 0,
                "progress": False,
            },
            environ={},
        )
        await run_crawl(settings, environ={"SWR_AUTH_TOKEN": TOKEN}, handle_signals=False)
    namespaces = set(pq.read_table(tmp_path / "out" / "tags").column("namespace").to_pylist())
    assert namespaces == {wanted}


def test_discover_and_targets_together_is_a_usage_error() -> None:
    """--discover with --targets is rejected as ambiguous."""
    with pytest.raises(ConfigError, match="not both"):
        build_config(
            {"out": "o", "endpoint": "http://h", "discover": True, "targets": "t"}, environ={}
        )
