"""diff end to end: two sandbox crawls of a changing catalogue, compared by the real command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from crawler.cli import cli
from crawler.sandbox.server import SandboxConfig, running_sandbox
from tests.e2e_helpers import TOKEN, crawl

pytestmark = pytest.mark.anyio

SMALL = {"seed": 11, "namespaces": 2, "repos_per_namespace": 3, "tags_per_repo": 8}


def sandbox(generation: int) -> SandboxConfig:
    return SandboxConfig(**SMALL, generation=generation, tokens=frozenset({TOKEN}))


def key(target: tuple[str, str, str]) -> str:
    return f"{target[0]}/{target[1]}:{target[2]}"


async def crawl_generation(generation: int, out: Path, **settings: Any) -> dict[str, str]:
    """Crawl every tag generation ``generation`` has; its digests by target (ground truth)."""
    async with running_sandbox(sandbox(generation)) as sb:
        targets = list(sb.catalogue.targets())
        outcome = await crawl(sb.url, [key(t) for t in targets], out, **settings)
        assert outcome.result.exit_code == 0
        return {key(t): sb.catalogue.get(*t)["digest"] for t in targets}  # type: ignore[index]


def expected_changes(old: dict[str, str], new: dict[str, str]) -> set[tuple[str, str]]:
    changes = {(k, "added") for k in new.keys() - old.keys()}
    changes |= {(k, "removed") for k in old.keys() - new.keys()}
    changes |= {(k, "repointed") for k in old.keys() & new.keys() if old[k] != new[k]}
    return changes


async def test_diff_of_two_runs_finds_exactly_the_catalogue_changes(tmp_path: Path) -> None:
    """Run dirs before/after the catalogue changed: diff reports exactly those changes."""
    old = await crawl_generation(0, tmp_path / "old")
    new = await crawl_generation(1, tmp_path / "new")
    expected = expected_changes(old, new)
    assert {change for _, change in expected} == {"added", "removed", "repointed"}

    runner = CliRunner()
    args = ["diff", str(tmp_path / "old"), str(tmp_path / "new"), "--out", str(tmp_path / "d")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = duckdb.sql(
        f"SELECT namespace || '/' || repository || ':' || tag, change, old_digest, new_digest "
        f"FROM '{tmp_path}/d/changes.parquet'"
    ).fetchall()
    assert {(k, change) for k, change, _, _ in rows} == expected
    for k, change, old_digest, new_digest in rows:
        assert (old_digest, new_digest) == (old.get(k), new.get(k)), (k, change)
    errors = duckdb.sql(f"SELECT count(*) FROM '{tmp_path}/d/errors.parquet'").fetchone()
    assert errors == (0,)
    total = next(line for line in result.stdout.splitlines() if line.startswith("total"))
    counts = [sum(1 for _, c in expected if c == kind) for kind in ("added", "removed")]
    assert total.split()[1:3] == [str(n) for n in counts]


async def test_diff_exit_status_with_fail_on(tmp_path: Path) -> None:
    """--fail-on exits 1 only for a kind found; a bad kind or a missing snapshot exits 2."""
    await crawl_generation(0, tmp_path / "old")
    await crawl_generation(1, tmp_path / "new")
    runner = CliRunner()
    old, new = str(tmp_path / "old"), str(tmp_path / "new")
    found = runner.invoke(cli, ["diff", old, new, "--fail-on", "repointed,resized"])
    assert found.exit_code == 1
    assert found.stderr.strip().endswith("swr-crawler: changes found: repointed")
    assert runner.invoke(cli, ["diff", old, new, "--fail-on", "resized"]).exit_code == 0
    assert runner.invoke(cli, ["diff", old, old, "--fail-on", "added,removed"]).exit_code == 0
    bad = runner.invoke(cli, ["diff", old, new, "--fail-on", "moved"])
    assert bad.exit_code == 2
    assert "unknown change kind(s) moved" in bad.stderr
    missing = runner.invoke(cli, ["diff", old, str(tmp_path / "nowhere")])
    assert missing.exit_code == 2
    assert "no run directory there" in missing.stderr
    assert "Traceback" not in missing.output
