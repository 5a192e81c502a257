"""Sharding end to end: N shards against one sandbox over real sockets, into one dataset."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from crawler.cli import cli
from crawler.output.schema import ERRORS_SCHEMA, TAGS_SCHEMA
from crawler.sandbox.catalogue import Catalogue
from crawler.sandbox.server import running_sandbox, sandbox_in_thread
from tests.e2e_helpers import (
    TOKEN,
    catalogue_keys,
    crawl,
    crawl_args,
    read_dataset,
    row_keys,
    sandbox_config,
)

SHARDS = 3
CATALOGUE = {"seed": 11, "namespaces": 3, "repos_per_namespace": 5, "tags_per_repo": 8}
CONFIG = sandbox_config(**CATALOGUE)
_KEYS = catalogue_keys(Catalogue(**CATALOGUE))
#: Every catalogue target, some twice, one absent (404) and one invalid line.
LINES = [*_KEYS, *_KEYS[:7], "absent-ns/nothing:here", "Bad_Namespace/x:1"]


@pytest.mark.anyio
async def test_shards_are_disjoint_and_cover_every_target_once(tmp_path: Path) -> None:
    """3 shards crawling at once into one --out: each target has exactly one row, fetched once."""
    out = tmp_path / "out"
    async with running_sandbox(CONFIG) as sandbox:
        async with anyio.create_task_group() as tg:
            for index in range(SHARDS):
                tg.start_soon(lambda i=index: crawl(sandbox.url, LINES, out, shard=(i, SHARDS)))
        per_target = sandbox.stats.per_target

    tags = read_dataset(out / "tags", TAGS_SCHEMA)
    errors = read_dataset(out / "errors", ERRORS_SCHEMA)
    recorded = Counter(row_keys(tags) + row_keys(errors))
    distinct = set(LINES) - {"Bad_Namespace/x:1"}
    assert set(recorded) == distinct | {"Bad_Namespace/x:1"}
    assert max(recorded.values()) == 1
    assert tags.num_rows == len(distinct) - 1  # all but the absent one
    assert sorted(errors.column("error_kind").to_pylist()) == ["invalid_target", "not_found"]
    # No shard requested another's target: every target was requested exactly once.
    assert set(per_target.values()) == {1}
    assert sum(per_target.values()) == len(distinct)

    runs = [json.loads((out / f"run-s{i}of{SHARDS}.json").read_text()) for i in range(SHARDS)]
    assert sum(run["counts"]["targets"] for run in runs) == len(distinct) + 1
    for index, run in enumerate(runs):
        assert run["config"]["shard"] == f"{index}/{SHARDS}"
        assert run["counts"]["targets"] > 0  # the hash spreads 100+ keys over 3 shards
    files = [p.name for p in (out / "tags").glob("*.parquet")]
    assert len(files) == len(set(files)) >= SHARDS
    for index in range(SHARDS):
        assert any(f"-s{index}of{SHARDS}-" in name for name in files)


@pytest.mark.anyio
async def test_a_resumed_shard_keeps_its_share(tmp_path: Path) -> None:
    """Shard 1/3 run again with --resume finds its own targets recorded and takes no other."""
    out = tmp_path / "out"
    async with running_sandbox(CONFIG) as sandbox:
        first = await crawl(sandbox.url, LINES, out, shard=(1, SHARDS))
        sent = sandbox.stats.tag_requests
        again = await crawl(sandbox.url, LINES, out, shard=(1, SHARDS), resume=True)
        assert sandbox.stats.tag_requests == sent  # nothing left to fetch, nothing foreign
    assert again.tags.num_rows == first.tags.num_rows
    assert sorted(row_keys(again.tags)) == sorted(row_keys(first.tags))
    stats = again.result.report.stats
    assert stats.skipped_shard == first.result.report.stats.skipped_shard


def test_job_completion_index_picks_the_shard(tmp_path: Path) -> None:
    """A Kubernetes Indexed Job pod (JOB_COMPLETION_INDEX + SWR_SHARD_COUNT) crawls its shard."""
    targets = tmp_path / "targets.txt"
    targets.write_text("\n".join(LINES) + "\n")
    out = tmp_path / "out"
    env = {"SWR_AUTH_TOKEN": TOKEN, "JOB_COMPLETION_INDEX": "2", "SWR_SHARD_COUNT": "3"}
    with sandbox_in_thread(CONFIG) as sandbox:
        args = crawl_args(targets, out, sandbox.url, "--rate", "0", "--no-progress")
        args += ["--log-format", "json"]
        result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run-s2of3.json").read_text())
    assert run["config"]["shard"] == "2/3"
    assert run["counts"]["skipped_shard"] > 0
    assert not (out / "run.json").exists()
