"""Filters, ``discover`` and planned crawls end to end, over the sandbox's real sockets."""

from __future__ import annotations

from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from crawler.config import build_config
from crawler.run.inventory import run_discover
from crawler.sandbox.catalogue import Catalogue
from crawler.sandbox.server import SandboxConfig, running_sandbox
from tests.e2e_helpers import TOKEN, Outcome, crawl, row_keys

#: 4 namespaces (one of each name pattern), 6 repositories each of 1 to 45 tags: 520 tags.
SETTINGS: dict[str, Any] = {
    "seed": 9,
    "namespaces": 4,
    "repos_per_namespace": 6,
    "tag_counts": (45, 3, 30, 1, 12, 39),
}
CATALOGUE = Catalogue(
    SETTINGS["seed"],
    SETTINGS["namespaces"],
    SETTINGS["repos_per_namespace"],
    tag_counts=SETTINGS["tag_counts"],
)
NAMESPACES = CATALOGUE.namespaces()
pytestmark = pytest.mark.anyio


def _updated(namespace: str, repository: str, tag: str) -> datetime | None:
    details = CATALOGUE.get(namespace, repository, tag)
    assert details is not None
    text = details.get("updated")
    return None if text is None else datetime.fromisoformat(text)


def expected(
    namespaces: tuple[str, ...] = (),
    repositories: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
    updated_since: str | None = None,
    newest: int = 0,
) -> set[str]:
    """What the filters must select, worked out from the catalogue itself."""
    since = None if updated_since is None else datetime.fromisoformat(updated_since)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    keys: set[str] = set()
    for namespace in NAMESPACES:
        if namespaces and not any(fnmatchcase(namespace, g) for g in namespaces):
            continue
        for repository in CATALOGUE.repositories(namespace):
            if repositories and not any(fnmatchcase(repository, g) for g in repositories):
                continue
            chosen = [
                tag
                for tag in CATALOGUE.tags(namespace, repository)
                if (not tags or any(fnmatchcase(tag, g) for g in tags))
                and (
                    since is None
                    or (
                        (when := _updated(namespace, repository, tag)) is not None and when >= since
                    )
                )
            ]
            if newest:
                oldest = datetime.min.replace(tzinfo=UTC)
                chosen.sort(
                    key=lambda t: _updated(namespace, repository, t) or oldest, reverse=True
                )
                chosen = chosen[:newest]
            keys |= {f"{namespace}/{repository}:{tag}" for tag in chosen}
    return keys


#: Each filter (as crawl settings), chosen so that it selects some of the registry, not all.
FILTERS: dict[str, dict[str, Any]] = {
    "one namespace by name": {"namespaces": (NAMESPACES[2],)},
    "namespace globs": {"namespaces": ("*_*", "*.*")},
    "repositories with a slash": {"repositories": ("*/*",)},
    "repository glob and tag glob": {"repositories": ("*[0-9]",), "tags": ("v*", "latest")},
    "tag globs": {"tags": ("*-rc*", "sha-*")},
    "updated since a date": {"updated_since": "2024-06-01"},
    "newest 3 per repository": {"newest": 3},
    "newest 2 of a tag glob": {"newest": 2, "tags": ("*.*",)},
    "newest 1 updated since": {"newest": 1, "updated_since": "2023-01-01"},
    "all at once": {
        "namespaces": (f"{NAMESPACES[1][:2]}*", NAMESPACES[3]),
        "repositories": ("*",),
        "tags": ("[0-9]*",),
        "updated_since": "2020-01-01T00:00:00Z",
        "newest": 4,
    },
}


def test_every_filter_selects_part_of_the_registry() -> None:
    """The cases below can fail: each one selects a proper, non-empty part of the registry."""
    everything = expected()
    assert len(everything) == len(CATALOGUE)
    for name, settings in FILTERS.items():
        selected = expected(**settings)
        assert selected, name
        assert selected < everything, name


def _sandbox() -> SandboxConfig:
    return SandboxConfig(**SETTINGS, tokens=frozenset({TOKEN}))


@pytest.mark.parametrize("mode", ["list", "detail"])
@pytest.mark.parametrize("name", list(FILTERS))
async def test_crawl_discover_selects_exactly_the_filtered_tags(
    tmp_path: Path, name: str, mode: str
) -> None:
    """crawl --discover with a filter crawls exactly the tags it selects, each once."""
    settings = FILTERS[name]
    async with running_sandbox(_sandbox()) as sb:
        outcome = await crawl(sb.url, None, tmp_path / "out", discover=True, mode=mode, **settings)
    keys = row_keys(outcome.tags)
    assert len(keys) == len(set(keys))
    assert set(keys) == expected(**settings)
    assert outcome.errors.num_rows == 0
    assert outcome.result.exit_code == 0


async def _discover(url: str, output: Path, fmt: str = "text", **settings: Any) -> int:
    flags = {"endpoint": url, "rate": 0, "discover": True, "seed": 1, **settings}
    config = build_config(flags, environ={}, needs_out=False)
    result = await run_discover(
        config, str(output), fmt, environ={"SWR_AUTH_TOKEN": TOKEN}, handle_signals=False
    )
    return result.exit_code


@pytest.mark.parametrize("name", list(FILTERS))
async def test_discover_writes_exactly_the_filtered_targets(tmp_path: Path, name: str) -> None:
    """swr-crawler discover with a filter writes exactly the targets it selects, one a line."""
    settings = FILTERS[name]
    output = tmp_path / "targets.txt"
    async with running_sandbox(_sandbox()) as sb:
        assert await _discover(sb.url, output, **settings) == 0
    lines = output.read_text().splitlines()
    assert len(lines) == len(set(lines))
    assert set(lines) == expected(**settings)


def _comparable(table: pa.Table) -> list[dict[str, Any]]:
    """Rows without the columns that differ between two runs, in key order."""
    rows = table.drop_columns(
        [c for c in ("fetched_at", "attempts", "failed_at") if c in table.column_names]
    ).to_pylist()
    return sorted(rows, key=lambda row: [str(value) for value in row.values()])


@pytest.mark.parametrize("fmt", ["text", "jsonl"])
async def test_discover_output_crawled_as_targets_equals_crawl_discover(
    tmp_path: Path, fmt: str
) -> None:
    """A discover file fed to crawl --targets gives the same rows as crawl --discover."""
    settings = FILTERS["newest 3 per repository"]
    output = tmp_path / f"targets.{'txt' if fmt == 'text' else 'jsonl'}"
    async with running_sandbox(_sandbox()) as sb:
        assert await _discover(sb.url, output, fmt, **settings) == 0
        lines = output.read_text().splitlines()
        direct = await crawl(sb.url, None, tmp_path / "direct", discover=True, **settings)
        from_file = await crawl(sb.url, lines, tmp_path / "file", targets_format=fmt, mode="detail")
    assert direct.tags.num_rows == len(expected(**settings))
    assert _comparable(from_file.tags) == _comparable(direct.tags)
    assert from_file.errors.num_rows == 0


def _planned_lines() -> list[str]:
    """A targets file for the planner: dense and sparse repositories, a tag and a repository
    that do not exist, an invalid line and duplicates."""
    lines: list[str] = []
    for n, namespace in enumerate(NAMESPACES):
        for r, repository in enumerate(CATALOGUE.repositories(namespace)):
            tags = CATALOGUE.tags(namespace, repository)
            wanted = tags if (n + r) % 2 == 0 else tags[:1]
            lines += [f"{namespace}/{repository}:{tag}" for tag in wanted]
            if r == 0:
                lines.append(f"{namespace}/{repository}:no-such-tag")  # listed repo, 404 tag
    lines += [lines[0], lines[5]]  # duplicates
    lines += [f"{NAMESPACES[0]}/no-such-repo:v1", f"{NAMESPACES[0]}/no-such-repo:v2"]
    lines += ["Not/A:valid tag", "nonamespace"]
    return lines


async def test_auto_equals_detail_for_a_targets_file(tmp_path: Path) -> None:
    """A targets file crawled with --mode auto gives the same tags and errors rows as
    --mode detail (all columns but fetched_at/attempts), with fewer requests; its
    plan counters (run.json's counts.plan) are named and add up."""
    lines = _planned_lines()
    async with running_sandbox(_sandbox()) as sb:
        detail = await crawl(sb.url, lines, tmp_path / "detail", mode="detail")
        auto = await crawl(sb.url, lines, tmp_path / "auto", mode="auto")
    _same_outcome(auto, detail)
    distinct = len(set(lines))
    assert auto.tags.num_rows + auto.errors.num_rows == distinct
    assert sorted(set(row_keys(auto.errors))) == sorted(row_keys(auto.errors))
    kinds = auto.errors.column("error_kind").to_pylist()
    assert kinds.count("not_found") == len(NAMESPACES) + 2
    assert kinds.count("invalid_target") == 2
    assert auto.result.report.stats.requests < detail.result.report.stats.requests / 3
    plan = auto.result.report.stats.plan
    assert plan is not None
    assert list(plan) == [
        "repositories",
        "listed",
        "fetched",
        "rows_from_lists",
        "missing_from_lists",
        "listing_failures",
    ]
    assert plan["listed"] + plan["fetched"] == plan["repositories"]
    assert plan["missing_from_lists"] == len(NAMESPACES)  # the no-such-tag lines


def _same_outcome(left: Outcome, right: Outcome) -> None:
    assert _comparable(left.tags) == _comparable(right.tags)
    assert _comparable(left.errors) == _comparable(right.errors)


async def test_a_refused_credential_stops_a_planned_crawl(tmp_path: Path) -> None:
    """A 401 on the planner's first listing stops the run (unauthorized, exit 1): no crash,
    nothing fetched, the rest left for --resume."""
    lines = _planned_lines()
    async with running_sandbox(_sandbox()) as sb:
        outcome = await crawl(
            sb.url, lines, tmp_path / "out", mode="auto", environ={"SWR_AUTH_TOKEN": "wrong"}
        )
    assert outcome.result.report.stop_reason == "unauthorized"
    assert outcome.result.exit_code == 1
    assert outcome.tags.num_rows == 0
