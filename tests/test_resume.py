"""--resume: reading the checkpoint from the output, rewriting transient errors away, run.json."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawler.errors import ConfigError
from crawler.output.checkpoint import read_checkpoint
from crawler.output.compat import has_run
from crawler.output.counts import count_rows
from crawler.output.layout import Layout
from crawler.output.schema import ERRORS_SCHEMA, META_RUN_ID, META_SCHEMA_VERSION, TAGS_SCHEMA
from crawler.output.schema import with_metadata as schema_with_metadata
from crawler.sandbox.faults import FaultConfig
from crawler.sandbox.server import SandboxConfig, running_sandbox
from crawler.targets import InvalidTarget, Target
from tests.e2e_helpers import (
    PART_RUN,
    catalogue_keys,
    crawl,
    read_dataset,
    row_keys,
    sandbox_config,
    write_part,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CATALOGUE = {"seed": 5, "namespaces": 2, "repos_per_namespace": 4, "tags_per_repo": 5}


def tag_row(key: str) -> dict[str, Any]:
    ns, rest = key.split("/", 1)
    repo, tag = rest.rsplit(":", 1)
    return {"namespace": ns, "repository": repo, "tag": tag, "fetched_at": NOW, "attempts": 1}


def error_row(key: str | None, kind: str, msg: str | None = None) -> dict[str, Any]:
    if key is None:
        ns = repo = tag = None
    else:
        ns, rest = key.split("/", 1)
        repo, tag = rest.rsplit(":", 1)
    return {
        "namespace": ns,
        "repository": repo,
        "tag": tag,
        "error_kind": kind,
        "error_msg": msg,
        "attempts": 1,
        "failed_at": NOW,
    }


def test_checkpoint_records_tags_and_definitive_errors_and_drops_transient(tmp_path: Path) -> None:
    """Tags and definitive errors are recorded; transient rows are rewritten out of their file."""
    write_part(tmp_path, "tags", 1, [tag_row("a/r:1"), tag_row("a/g/r:2")])
    mixed = write_part(
        tmp_path,
        "errors",
        2,
        [
            error_row("a/r:404", "not_found"),
            error_row("a/r:500", "server_error"),
            error_row("a/r:401", "unauthorized"),
            error_row(None, "invalid_target", "missing tag"),
        ],
    )
    transient_only = write_part(tmp_path, "errors", 3, [error_row("a/r:t", "timeout")])
    stale_tmp = tmp_path / "tags" / f".part-{PART_RUN}-00004.parquet.tmp"
    stale_tmp.write_bytes(b"half a file")
    other_shard_tmp = tmp_path / "tags" / f".part-{PART_RUN}-s1of2-00001.parquet.tmp"
    other_shard_tmp.write_bytes(b"another process's file")

    checkpoint = read_checkpoint(Layout(tmp_path))

    recorded = checkpoint.recorded
    for key in ("a/r:1", "a/g/r:2", "a/r:404"):
        assert recorded.holds(Target(*_split(key)))
    for key in ("a/r:500", "a/r:401", "a/r:t"):
        assert not recorded.holds(Target(*_split(key)))
    assert checkpoint.transient_dropped == {"server_error": 1, "unauthorized": 1, "timeout": 1}
    assert not mixed.exists()
    assert not transient_only.exists()
    assert not stale_tmp.exists()
    assert other_shard_tmp.exists()  # a concurrent shard's file in progress is not ours
    kept = tmp_path / "errors" / f"part-{PART_RUN}-00002.kept.parquet"
    table = pq.read_table(kept)
    assert table.column("error_kind").to_pylist() == ["not_found", "invalid_target"]
    assert pq.read_schema(kept).metadata[META_RUN_ID] == PART_RUN.encode()
    assert count_rows(Layout(tmp_path)).errors == {"invalid_target": 1, "not_found": 1}
    again = read_checkpoint(Layout(tmp_path))  # idempotent: nothing left to rewrite
    assert again.files_rewritten == 0
    assert again.errors_kept == 2
    assert again.tags_rows == 2


def _split(key: str) -> tuple[str, str, str]:
    ns, rest = key.split("/", 1)
    repo, tag = rest.rsplit(":", 1)
    return ns, repo, tag


def test_crash_between_kept_and_delete_is_finished_by_the_next_resume(tmp_path: Path) -> None:
    """Both X and X.kept present (a crash mid-rewrite): X is the stale one and is deleted."""
    original = write_part(
        tmp_path, "errors", 1, [error_row("a/r:404", "not_found"), error_row("a/r:5", "network")]
    )
    kept = original.with_name(original.name.replace(".parquet", ".kept.parquet"))
    pq.write_table(pq.read_table(original).slice(0, 1), kept)
    assert count_rows(Layout(tmp_path)).errors == {"not_found": 1}  # the twin is counted once

    checkpoint = read_checkpoint(Layout(tmp_path))

    assert not original.exists()
    assert kept.exists()
    assert checkpoint.errors_kept == 1
    assert checkpoint.files_rewritten == 0
    assert checkpoint.recorded.holds(Target("a", "r", "404"))
    assert not checkpoint.recorded.holds(Target("a", "r", "5"))


def test_invalid_rows_are_skipped_as_many_times_as_recorded(tmp_path: Path) -> None:
    """Invalid lines have no key in their row: the count of identical rows is what is skipped."""
    rows = [error_row(None, "invalid_target", "missing tag")] * 2
    write_part(tmp_path, "errors", 1, rows)
    recorded = read_checkpoint(Layout(tmp_path)).recorded
    line = InvalidTarget(None, None, None, "missing tag", "x")
    assert [recorded.holds(line), recorded.holds(line), recorded.holds(line)] == [True, True, False]
    assert not recorded.holds(InvalidTarget(None, None, None, "other reason", "y"))


def test_another_schema_version_in_a_file_is_refused(tmp_path: Path) -> None:
    """A part file written with another schema version stops the resume (exit 2), not mixed."""
    path = write_part(tmp_path, "tags", 1, [tag_row("a/r:1")])
    table = pq.read_table(path)
    meta = {**(table.schema.metadata or {}), META_SCHEMA_VERSION: b"999"}
    pq.write_table(table.replace_schema_metadata(meta), path)
    with pytest.raises(ConfigError, match="schema version 999"):
        read_checkpoint(Layout(tmp_path))


def test_has_run_sees_run_files_and_parts_of_this_shard(tmp_path: Path) -> None:
    """A fresh run refuses an output holding a run; a shard only minds its own files."""
    assert not has_run(Layout(tmp_path))
    write_part(tmp_path, "tags", 1, [tag_row("a/r:1")], run=PART_RUN)
    assert has_run(Layout(tmp_path))
    assert not has_run(Layout(tmp_path, (1, 2)))


def test_resume_reads_a_million_recorded_rows_quickly(tmp_path: Path) -> None:
    """1,000,000 recorded tags are read back (key columns only) in a few seconds."""
    import time

    n = 1_000_000
    columns: dict[str, pa.Array] = {f.name: pa.nulls(n, f.type) for f in TAGS_SCHEMA}
    columns["namespace"] = pa.array([f"ns{i % 50}" for i in range(n)])
    columns["repository"] = pa.array([f"group/repo-{i % 5000}" for i in range(n)])
    columns["tag"] = pa.array([f"v{i}" for i in range(n)])
    columns["fetched_at"] = pa.array([NOW] * n, TAGS_SCHEMA.field("fetched_at").type)
    columns["attempts"] = pa.array([1] * n, pa.int32())
    table = pa.table(columns, schema=schema_with_metadata(TAGS_SCHEMA, PART_RUN))
    (tmp_path / "tags").mkdir()
    pq.write_table(table, tmp_path / "tags" / f"part-{PART_RUN}-00001.parquet")
    started = time.perf_counter()
    checkpoint = read_checkpoint(Layout(tmp_path))
    elapsed = time.perf_counter() - started
    print(f"\nresume read of {n} recorded rows: {elapsed:.2f} s")
    assert len(checkpoint.recorded) == n
    assert checkpoint.recorded.holds(Target("ns7", "group/repo-7", "v7"))
    assert elapsed < 20  # ~2.6 s on the 2-core CI machine; generous for a loaded one


# --------------------------------------------------------------------------- end to end


def sandbox(**overrides: Any) -> SandboxConfig:
    """40 targets that accept ``TOKEN``."""
    return sandbox_config(**{**CATALOGUE, **overrides})


@pytest.mark.anyio
async def test_401_stop_then_resume_with_a_good_token_finishes_exactly_once(tmp_path: Path) -> None:
    """After a 401 stop, --resume with a good token records every target exactly once."""
    out = tmp_path / "out"
    async with running_sandbox(sandbox(faults=FaultConfig(latency=0.005))) as sb:
        keys = catalogue_keys(sb.catalogue)
        lines = [*keys, "ghost/none:v1", "BAD_ns/x:1"]
        first = await crawl(
            sb.url, lines, out, concurrency=4, environ={"SWR_AUTH_TOKEN": "expired"}
        )
        assert first.result.report.stop_reason == "unauthorized"
        with pytest.raises(ConfigError, match="--resume"):
            await crawl(sb.url, lines, out)
        second = await crawl(sb.url, lines, out, resume=True)
    assert second.result.exit_code == 0
    tags, errors = (
        read_dataset(out / "tags", TAGS_SCHEMA),
        read_dataset(out / "errors", ERRORS_SCHEMA),
    )
    assert sorted(row_keys(tags)) == sorted(keys)
    assert sorted(r["error_kind"] for r in errors.to_pylist()) == ["invalid_target", "not_found"]
    report = json.loads((out / "run.json").read_text())
    assert report["complete"] is True
    assert report["exit_code"] == 0
    assert [s["stop_reason"] for s in report["segments"]] == ["unauthorized", None]
    assert report["run_id"] == first.result.report.run_id
    assert report["counts"]["ok"] == len(keys)
    assert report["counts"]["targets"] == len(keys) + 2
    assert report["counts"]["errors"] == {"invalid_target": 1, "not_found": 1}
    seg_requests = sum(s["counts"]["requests"] for s in report["segments"])
    assert report["counts"]["requests"] == seg_requests
    for path in (out / "tags").glob("*.parquet"):
        assert pq.read_metadata(path).metadata[META_RUN_ID].decode() in path.name


@pytest.mark.anyio
async def test_resume_retries_transient_errors_only(tmp_path: Path) -> None:
    """A 5xx-exhausted target is retried by --resume; a 404 is not requested again."""
    out = tmp_path / "out"
    async with running_sandbox(sandbox()) as sb:
        keys = catalogue_keys(sb.catalogue)[:10]
    flaky = keys[0]
    faults = FaultConfig(scripts={flaky: ["503", "200"]})
    async with running_sandbox(sandbox(faults=faults)) as sb:
        first = await crawl(sb.url, [*keys, "ghost/none:v1"], out, max_attempts=1)
        assert first.result.exit_code == 1
        second = await crawl(sb.url, [*keys, "ghost/none:v1"], out, max_attempts=1, resume=True)
        served = dict(sb.stats.per_target)
    assert second.result.exit_code == 0
    assert served[flaky] == 2
    assert served["ghost/none:v1"] == 1
    assert all(served[k] == 1 for k in keys[1:])
    assert sorted(row_keys(read_dataset(out / "tags", TAGS_SCHEMA))) == sorted(keys)
    assert row_keys(read_dataset(out / "errors", ERRORS_SCHEMA)) == ["ghost/none:v1"]
    assert second.result.report.stats.skipped_resume == 10


@pytest.mark.anyio
async def test_resume_with_other_targets_or_schema_is_refused(tmp_path: Path) -> None:
    """Resuming with another targets file, or onto another schema version, is a ConfigError."""
    out = tmp_path / "out"
    async with running_sandbox(sandbox()) as sb:
        keys = catalogue_keys(sb.catalogue)[:5]
        await crawl(sb.url, keys, out, environ={"SWR_AUTH_TOKEN": "expired"})
        with pytest.raises(ConfigError, match="another targets file"):
            await crawl(sb.url, keys[:4], out, resume=True)
        doc = orjson.loads((out / "run.json").read_bytes())
        (out / "run.json").write_bytes(orjson.dumps({**doc, "schema_version": "0"}))
        with pytest.raises(ConfigError, match="schema version 0"):
            await crawl(sb.url, keys, out, resume=True)


@pytest.mark.anyio
async def test_resume_on_a_new_output_is_a_fresh_run(tmp_path: Path) -> None:
    """Cron always passes --resume: on an empty --out it is simply the first segment."""
    async with running_sandbox(sandbox()) as sb:
        keys = catalogue_keys(sb.catalogue)[:5]
        outcome = await crawl(sb.url, keys, tmp_path / "new", resume=True)
    assert outcome.result.exit_code == 0
    report = json.loads((tmp_path / "new" / "run.json").read_text())
    assert len(report["segments"]) == 1
    assert report["counts"]["ok"] == 5
    assert report["targets_sha256"]


@pytest.mark.anyio
async def test_run_file_is_kept_current_during_a_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a segment runs, its run file is rewritten with live counts, so a SIGKILL
    does not lose the segment's request count."""
    import anyio

    from crawler.run import runner

    monkeypatch.setattr(runner, "REPORT_INTERVAL_MIN", 0.05)
    out = tmp_path / "out"
    seen: list[int] = []

    async def watch() -> None:
        with anyio.fail_after(20):
            while True:
                await anyio.sleep(0.02)
                try:
                    doc = json.loads((out / "run.json").read_text())
                except (OSError, ValueError):
                    continue
                segment = doc["segments"][-1]
                if segment["ended_at"] is None and segment["counts"]["requests"] > 0:
                    seen.append(segment["counts"]["requests"])
                    return

    async with running_sandbox(sandbox(faults=FaultConfig(latency=0.02))) as sb:
        keys = catalogue_keys(sb.catalogue)
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await crawl(sb.url, keys, out, concurrency=2, commit_seconds=0.05)
    assert seen, "no interim run file with live counts was written"
    assert 0 < seen[0] < len(keys)
