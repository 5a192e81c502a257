"""The Lister's public calls, as the planned crawls use them, over real sockets."""

from __future__ import annotations

from contextlib import aclosing
from datetime import datetime

import pytest

from crawler.crawl.lister import Lister, Repository
from crawler.run.stats import RunStats
from crawler.sandbox.server import SandboxConfig, running_sandbox
from tests.fakes import sandbox_client, unlimited_attempts

TOKEN = "lister-token"
CONFIG = SandboxConfig(
    seed=9,
    namespaces=2,
    repos_per_namespace=3,
    tag_counts=(25, 0, 7),
    absent_fields=False,
    tokens=frozenset({TOKEN}),
)


@pytest.mark.anyio
async def test_namespaces_repositories_with_counts_and_newest_tags_first() -> None:
    """namespaces(), repositories() with num_images, and tags(newest_first=True) left after
    its first page: one tag-page request, the newest tags in updated order."""
    async with running_sandbox(CONFIG) as sb, sandbox_client(sb.url, TOKEN) as client:
        stats = RunStats()
        lister = Lister(client, unlimited_attempts(stats), page_size=10)
        namespaces = await lister.namespaces()
        repositories: list[Repository] = []
        async with aclosing(lister.repositories(namespaces[0])) as pages:
            async for page in pages:
                repositories += page
        big = repositories[0]
        async with aclosing(lister.tags(big.namespace, big.name, newest_first=True)) as tags:
            first = await anext(tags)
        catalogue = sb.catalogue
    assert namespaces == catalogue.namespaces()
    assert [(r.name, r.num_images) for r in repositories] == [
        (name, len(catalogue.tags(namespaces[0], name)))
        for name in catalogue.repositories(namespaces[0])
    ]
    assert [r.num_images for r in repositories] == [25, 0, 7]
    assert len(first.items) == 10
    updated = [datetime.fromisoformat(i["updated"]) for i in first.items if i["updated"]]
    assert updated == sorted(updated, reverse=True)
    everything = [
        catalogue.get(big.namespace, big.name, t) or {}
        for t in catalogue.tags(big.namespace, big.name)
    ]
    newest = max(datetime.fromisoformat(str(d["updated"])) for d in everything)
    assert updated[0] == newest
    assert stats.requests_by_api["tag_pages"] == 1
