"""The output under hostile or damaged conditions: mixed shardings, planted links,
damaged Parquet on --resume, and values too large for one Arrow array."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawler.errors import ConfigError
from crawler.output.checkpoint import read_checkpoint
from crawler.output.layout import Layout
from crawler.output.lock import OutputLocked, RunLock
from crawler.output.rows import TagRow
from crawler.output.schema import META_SCHEMA_VERSION, SCHEMA_VERSION
from crawler.output.sink import OutputWriter
from crawler.sandbox.server import running_sandbox
from crawler.targets import Target
from tests.e2e_helpers import (
    TOKEN,
    catalogue_keys,
    crawl,
    crawl_args,
    run_cli,
    sandbox_config,
)

RUN = "20260101T000000Z-abcdef"


def tag_rows(out: Path) -> int:
    """Rows in every published tags file of ``out``."""
    return sum(pq.read_metadata(p).num_rows for p in (out / "tags").glob("*.parquet"))


# --------------------------------------------------------------------------- shardings


@pytest.mark.anyio
async def test_a_shard_into_a_complete_unsharded_output_is_refused(tmp_path: Path) -> None:
    """--shard 0/2 into an output holding a complete unsharded run: exit 2, with or
    without --resume, and no row is written twice."""
    out = tmp_path / "out"
    async with running_sandbox(sandbox_config()) as sb:
        keys = catalogue_keys(sb.catalogue)
        first = await crawl(sb.url, keys, out)
        assert first.result.report.complete
        for resume in (False, True):
            with pytest.raises(ConfigError, match="holds an unsharded run"):
                await crawl(sb.url, keys, out, shard="0/2", resume=resume)
    assert tag_rows(out) == len(keys)


@pytest.mark.anyio
async def test_an_unsharded_run_into_a_sharded_output_is_refused(tmp_path: Path) -> None:
    """An unsharded crawl into an output holding shard 0/2 is exit 2, --resume or not."""
    out = tmp_path / "out"
    async with running_sandbox(sandbox_config()) as sb:
        keys = catalogue_keys(sb.catalogue)
        await crawl(sb.url, keys, out, shard="0/2")
        before = tag_rows(out)
        for resume in (False, True):
            with pytest.raises(ConfigError, match="holds shard 0/2"):
                await crawl(sb.url, keys, out, resume=resume)
    assert tag_rows(out) == before


@pytest.mark.anyio
async def test_shards_and_a_live_unsharded_run_exclude_each_other(tmp_path: Path) -> None:
    """While an unsharded run holds the output, a shard is refused, and the other way round."""
    out = tmp_path / "out"
    out.mkdir()
    async with running_sandbox(sandbox_config()) as sb:
        keys = catalogue_keys(sb.catalogue)[:3]
        lock = RunLock(Layout(out))
        lock.acquire()
        try:
            with pytest.raises(OutputLocked, match="another crawl is writing here"):
                await crawl(sb.url, keys, out, shard="1/2")
        finally:
            lock.release()
        lock = RunLock(Layout(out, (1, 2)))
        lock.acquire()
        try:
            with pytest.raises(OutputLocked, match="another crawl is writing here"):
                await crawl(sb.url, keys, out)
        finally:
            lock.release()
    assert not (out / "tags").exists()


# --------------------------------------------------------------------------- planted links


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the output, for a planted link to point at; it holds "precious"."""
    path = tmp_path / "victim.txt"
    path.write_text("precious")
    return path


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An empty output folder, made before the crawl (so that something can be planted)."""
    path = tmp_path / "out"
    path.mkdir()
    return path


async def assert_crawl_refused(out: Path, match: str, **settings: Any) -> None:
    """A crawl of three sandbox targets into ``out`` is refused: ConfigError matching ``match``."""
    async with running_sandbox(sandbox_config()) as sb:
        keys = catalogue_keys(sb.catalogue)[:3]
        with pytest.raises(ConfigError, match=match):
            await crawl(sb.url, keys, out, **settings)


@pytest.mark.anyio
async def test_a_symlink_or_hard_link_at_the_lock_file_is_refused(victim: Path, out: Path) -> None:
    """out/.lock planted as a link to another file: exit 2, and that file is not truncated."""
    (out / ".lock").symlink_to(victim)
    await assert_crawl_refused(out, "symbolic link")
    (out / ".lock").unlink()
    os.link(victim, out / ".lock")
    await assert_crawl_refused(out, "not a plain lock file")
    assert victim.read_text() == "precious"


@pytest.mark.anyio
async def test_a_symlink_at_the_run_files_temporary_name_is_not_followed(
    victim: Path, out: Path
) -> None:
    """A link planted at .run.json.tmp: the run completes, its target is untouched."""
    (out / ".run.json.tmp").symlink_to(victim)
    async with running_sandbox(sandbox_config()) as sb:
        keys = catalogue_keys(sb.catalogue)[:3]
        outcome = await crawl(sb.url, keys, out)
    assert outcome.result.report.complete
    assert victim.read_text() == "precious"
    assert not (out / "run.json").is_symlink()


@pytest.mark.anyio
async def test_a_dataset_folder_that_is_a_link_or_a_file_is_refused(
    tmp_path: Path, out: Path
) -> None:
    """out/tags as a symlink to another folder, or as a plain file: exit 2 naming it."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "tags").symlink_to(elsewhere)
    await assert_crawl_refused(out, "tags: is a symbolic link")
    (out / "tags").unlink()
    (out / "tags").write_text("not a folder")
    for resume in (False, True):
        await assert_crawl_refused(out, "tags: is not a directory", resume=resume)
    assert list(elsewhere.iterdir()) == []


# --------------------------------------------------------------------------- damaged parts


def _damage_pages(path: Path) -> None:
    """Overwrite every byte between the magic number and the footer: the footer stays valid."""
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")
    end = len(data) - 8 - footer
    data[4:end] = b"\xab" * (end - 4)
    path.write_bytes(bytes(data))


@pytest.mark.anyio
async def test_resume_over_corrupt_pages_or_other_columns_is_exit_2(tmp_path: Path) -> None:
    """--resume over a tags part with corrupt pages (valid footer), or with other columns
    under this schema version, is a ConfigError naming the file, never a traceback."""
    out = tmp_path / "out"
    async with running_sandbox(sandbox_config()) as sb:
        keys = catalogue_keys(sb.catalogue)
        await crawl(sb.url, keys, out)
        (part,) = (out / "tags").glob("*.parquet")
        pq.read_metadata(part)  # readable before
        _damage_pages(part)
        pq.read_metadata(part)  # the footer still is
        with pytest.raises(ConfigError, match=f"{part.name}: damaged"):
            await crawl(sb.url, keys, out, resume=True)
        part.unlink()
        foreign = pa.table({"namespace": ["a"], "repository": ["b"], "tag": ["c"]})
        meta = {META_SCHEMA_VERSION: SCHEMA_VERSION.encode()}
        pq.write_table(foreign.replace_schema_metadata(meta), part)
        with pytest.raises(ConfigError, match=f"{part.name}: its columns are not"):
            await crawl(sb.url, keys, out, resume=True)


@pytest.mark.slow
def test_the_cli_says_exit_2_without_a_traceback_for_a_file_named_tags(tmp_path: Path) -> None:
    """A plain file at out/tags: the CLI exits 2 with one line naming it, no traceback."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "tags").write_text("not a folder")
    targets = tmp_path / "targets.txt"
    targets.write_text("ns/repo:v1\n")
    args = crawl_args(targets, out, "http://127.0.0.1:9", "--resume", "--no-progress")
    done = run_cli(args, {"SWR_AUTH_TOKEN": TOKEN}, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 2, done.stderr
    assert "tags: is not a directory" in done.stderr
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- huge values


class PeakRss:
    """Samples this process's resident memory in a thread until stopped; keeps the peak."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.baseline = self._process.memory_info().rss
        self.peak = self.baseline
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def stop(self) -> int:
        """Stop sampling; the peak growth over the baseline, in bytes."""
        self._done.set()
        self._thread.join()
        return self.peak - self.baseline


@pytest.mark.slow
@pytest.mark.anyio
async def test_45_manifests_of_50_mb_are_written_in_bounded_memory_and_resumable(
    tmp_path: Path,
) -> None:
    """45 rows with a 50 MB manifest each (2.2 GB, over one Arrow array's 2 GiB) are all
    published, memory stays bounded (peak RSS measured), and --resume reads them back."""
    manifest = "m" * (50 * 2**20)  # one object shared by every row: the sink's copies count
    now = datetime(2026, 1, 1, tzinfo=UTC)
    layout = Layout(tmp_path)
    writer = OutputWriter(layout, RUN, commit_seconds=3600, file_rows=100_000)
    rss = PeakRss()
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        for i in range(45):
            row = TagRow("ns", "repo", f"v{i}", *[None] * 13, manifest, *[None] * 5, now, 1, None)
            writer.add_tag(row)
            await writer.wait_for_room()
        await writer.close()
        tg.cancel_scope.cancel()
    growth = rss.stop()
    print(f"\npeak RSS growth writing 45 x 50 MB manifests: {growth / 2**20:.0f} MiB")
    assert writer.tags.rows_committed == 45
    assert growth < 1024 * 2**20  # the data is 2.2 GB; the sink holds a few rows of it
    (part,) = (tmp_path / "tags").glob("*.parquet")
    assert pq.read_metadata(part).num_rows == 45
    batches = pq.ParquetFile(part).iter_batches(batch_size=2, columns=["manifest"])
    assert sum(len(m) for b in batches for m in b.column(0).to_pylist()) == 45 * len(manifest)
    checkpoint = read_checkpoint(layout)
    assert checkpoint.tags_rows == 45
    assert checkpoint.recorded.holds(Target("ns", "repo", "v44"))
