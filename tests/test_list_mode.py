"""List mode (``crawl --discover --mode list``): rows from the tag list pages, over real sockets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

from crawler.output.normalize import API_FIELDS
from crawler.run.runner import RunResult
from crawler.sandbox.catalogue import Catalogue
from crawler.sandbox.faults import FaultConfig
from crawler.sandbox.lists import list_repository_tags_v3, listed_without_manifest
from crawler.sandbox.server import SandboxConfig, Stats, running_sandbox
from tests.e2e_helpers import catalogue_keys, crawl

TOKEN = "list-mode-token"

#: Columns that differ between two crawls of the same registry by design.
PER_FETCH = {"fetched_at", "attempts"}


async def discover_crawl(
    config: SandboxConfig, out: Path, **settings: Any
) -> tuple[RunResult, pa.Table, pa.Table, Stats, dict[str, Any]]:
    """Crawl the whole sandbox registry with --discover; the outcome, both datasets,
    the sandbox's counts and run.json."""
    settings.setdefault("mode", None)  # --discover's own default, not crawl()'s detail
    async with running_sandbox(config) as sb:
        outcome = await crawl(
            sb.url,
            None,
            out,
            environ={"SWR_AUTH_TOKEN": TOKEN},
            discover=True,
            backoff_initial=0.0,
            backoff_max=0.0,
            **settings,
        )
        stats = sb.server.stats
    report = json.loads((out / "run.json").read_text())
    return outcome.result, outcome.tags, outcome.errors, stats, report


def rows_by_key(table: pa.Table) -> dict[str, dict[str, Any]]:
    """Rows keyed by target, without the per-fetch columns."""
    return {
        f"{r['namespace']}/{r['repository']}:{r['tag']}": {
            k: v for k, v in r.items() if k not in PER_FETCH
        }
        for r in table.to_pylist()
    }


def sandbox(**overrides: Any) -> SandboxConfig:
    """A small registry of the sandbox that accepts TOKEN."""
    settings: dict[str, Any] = {
        "seed": 11,
        "namespaces": 2,
        "repos_per_namespace": 4,
        "tags_per_repo": 30,
        "tokens": frozenset({TOKEN}),
    }
    return SandboxConfig(**(settings | overrides))


@pytest.mark.anyio
@pytest.mark.parametrize("v3_tags", [True, False], ids=["v3", "v2-fallback"])
async def test_list_mode_rows_equal_detail_mode_rows(tmp_path: Path, v3_tags: bool) -> None:
    """For the same catalogue, list mode (v3, or v2 where v3 is not published) writes the
    same tags rows as one ShowRepoTag per tag, every column but fetched_at and attempts."""
    config = sandbox(v3_tags=v3_tags)
    detail, detail_tags, _, detail_stats, _ = await discover_crawl(
        config, tmp_path / "detail", mode="detail"
    )
    listed, list_tags, list_errors, list_stats, report = await discover_crawl(
        config, tmp_path / "list", mode="list"
    )
    assert detail.exit_code == listed.exit_code == 0
    expected = rows_by_key(detail_tags)
    assert len(expected) == 2 * 4 * 30
    got = rows_by_key(list_tags)
    if not v3_tags:
        # v2 items carry list-only fields (deleted, scanned) that are left out, so
        # `extra` cannot hold a detail answer's own "scanned" (docs/swr-api.md).
        for rows in (got, expected):
            for row in rows.values():
                del row["extra"]
    assert got == expected
    assert list_errors.num_rows == 0
    assert detail_stats.tag_requests == 240
    by_api = report["counts"]["requests_by_api"]
    # Only the items a page sent without a manifest (v3 only: v2 items carry it),
    # or without a field, were fetched one by one.
    catalogue = Catalogue(11, 2, 4, 30)
    incomplete = [
        key
        for key in expected
        if (v3_tags and listed_without_manifest(*_split(key)))
        or not (catalogue.get(*_split(key)) or {}).keys() >= API_FIELDS
    ]
    assert 0 < len(incomplete) < 30
    assert list_stats.tag_requests == by_api["tag_details"] == len(incomplete)
    assert report["counts"]["discovery"]["rows_from_lists"] == 240 - len(incomplete)
    # v3: one page per repository; v2: one 404 for v3 first, then one v2 page each
    assert by_api["tag_pages"] == (8 if v3_tags else 1 + 8)
    assert report["counts"]["discovery"]["mode"] == "list"


def _split(key: str) -> tuple[str, str, str]:
    namespace, _, rest = key.partition("/")
    repository, _, tag = rest.rpartition(":")
    return namespace, repository, tag


@pytest.mark.anyio
async def test_empty_namespaces_and_repositories(tmp_path: Path) -> None:
    """Namespaces without repositories and repositories without tags list cleanly: no row,
    no error, a complete run."""
    config = sandbox(tag_counts=(3, 0, 2, 0), empty_namespaces=2)
    async with running_sandbox(config) as sb:
        expected = set(catalogue_keys(sb.catalogue))
    result, tags, errors, _, report = await discover_crawl(config, tmp_path / "out")
    assert set(rows_by_key(tags)) == expected
    assert len(expected) == 2 * (3 + 0 + 2 + 0)
    assert errors.num_rows == 0
    assert (result.exit_code, report["complete"]) == (0, True)
    assert report["counts"]["discovery"]["namespaces"] == 4


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("v3_tags", "tag_pages"),
    # v3: 1 page for 1,000 tags (has_more false), 2 for 1,001. v2 (after one 404 for
    # v3): a full page of 1,000 needs an empty second page to know it is the end.
    [(True, 1 + 2), (False, 1 + 2 + 2)],
    ids=["v3", "v2-fallback"],
)
async def test_exactly_1000_and_1001_tags(tmp_path: Path, v3_tags: bool, tag_pages: int) -> None:
    """Repositories of exactly one page and one tag more are listed whole, in the fewest pages."""
    config = sandbox(namespaces=1, repos_per_namespace=2, tag_counts=(1000, 1001), v3_tags=v3_tags)
    result, tags, errors, _, report = await discover_crawl(config, tmp_path / "out")
    assert result.exit_code == 0
    assert tags.num_rows == len(rows_by_key(tags)) == 2001
    assert errors.num_rows == 0
    assert report["counts"]["requests_by_api"]["tag_pages"] == tag_pages


@pytest.mark.anyio
async def test_a_page_failing_for_good_is_an_error_row_and_resume_lists_it_again(
    tmp_path: Path,
) -> None:
    """A tag page that fails every attempt: an errors row for that listing (tag null), the
    rest crawled, exit 1; --resume lists that repository again and fetches nothing twice."""
    base = sandbox(namespaces=1, repos_per_namespace=3, tags_per_repo=8)
    async with running_sandbox(base) as sb:
        namespace = sb.catalogue.namespaces()[0]
        broken = sb.catalogue.repositories(namespace)[1]
        everything = set(catalogue_keys(sb.catalogue))
    failing = sandbox(
        namespaces=1,
        repos_per_namespace=3,
        tags_per_repo=8,
        faults=FaultConfig(scripts={f"tags:{namespace}/{broken}": ["503"] * 3}),
    )
    out = tmp_path / "out"
    result, tags, errors, _, report = await discover_crawl(failing, out, max_attempts=3)
    assert (result.exit_code, report["complete"]) == (1, False)
    assert {r["repository"] for r in tags.to_pylist()} == set(
        sb.catalogue.repositories(namespace)
    ) - {broken}
    (row,) = errors.to_pylist()
    assert (row["namespace"], row["repository"], row["tag"]) == (namespace, broken, None)
    assert (row["error_kind"], row["http_status"], row["attempts"]) == ("server_error", 503, 3)

    recorded = set(rows_by_key(tags))
    result, tags, errors, stats, report = await discover_crawl(base, out, resume=True)
    assert (result.exit_code, report["complete"]) == (0, True)
    assert set(rows_by_key(tags)) == everything
    assert tags.num_rows == len(everything)
    assert errors.num_rows == 0  # the transient listing error was taken out
    assert not any(stats.per_target[key] for key in recorded)  # nothing fetched twice
    segments = [s["counts"]["requests_by_api"] for s in report["segments"]]
    assert report["counts"]["requests_by_api"]["tag_pages"] == sum(s["tag_pages"] for s in segments)
    assert segments[1]["tag_pages"] == 3  # the resume listed every repository again


@pytest.mark.anyio
async def test_pages_over_max_body_bytes_are_asked_for_in_smaller_sizes(tmp_path: Path) -> None:
    """A page of manifests larger than --max-body-bytes is asked for again, smaller, from the
    same marker: every row arrives, nothing is too_large."""
    config = sandbox(namespaces=1, repos_per_namespace=2, tags_per_repo=60)
    catalogue = Catalogue(11, 1, 2, 60)
    bodies = [catalogue.body(*target) or b"" for target in catalogue.targets()]
    namespace = catalogue.namespaces()[0]
    page = orjson.dumps(
        list_repository_tags_v3(
            catalogue,
            namespace,
            catalogue.repositories(namespace)[0],
            {"limit": "1000", "with_manifest": "true"},
        )[1]
    )
    cap = max(1024, 12 * max(len(b) for b in bodies))
    assert cap < len(page)  # a whole repository in one page would be too large
    result, tags, errors, _, report = await discover_crawl(
        config, tmp_path / "out", max_body_bytes=cap
    )
    assert (result.exit_code, report["complete"]) == (0, True)
    assert set(rows_by_key(tags)) == {f"{ns}/{r}:{t}" for ns, r, t in catalogue.targets()}
    assert errors.num_rows == 0
    assert report["counts"]["requests_by_api"]["tag_pages"] > 2


@pytest.mark.anyio
async def test_a_forbidden_listing_is_final_once_recorded(tmp_path: Path) -> None:
    """A tag listing answered 403: an errors row (forbidden, tag null) and an incomplete
    run; resumed and still 403, the row is kept once and the run is complete, as a target's
    definitive answer is."""
    base = sandbox(namespaces=1, repos_per_namespace=2, tags_per_repo=4)
    async with running_sandbox(base) as sb:
        namespace = sb.catalogue.namespaces()[0]
        closed = sb.catalogue.repositories(namespace)[0]
    forbidden = sandbox(
        namespaces=1,
        repos_per_namespace=2,
        tags_per_repo=4,
        faults=FaultConfig(scripts={f"tags:{namespace}/{closed}": ["403", "403"]}),
    )
    out = tmp_path / "out"
    result, tags, errors, _, report = await discover_crawl(forbidden, out)
    assert (result.exit_code, report["complete"]) == (1, False)
    assert [(r["repository"], r["tag"], r["error_kind"]) for r in errors.to_pylist()] == [
        (closed, None, "forbidden")
    ]
    assert tags.num_rows == 4
    result, tags, errors, _, report = await discover_crawl(forbidden, out, resume=True)
    assert (result.exit_code, report["complete"]) == (0, True)
    assert errors.num_rows == 1
    assert tags.num_rows == 4
