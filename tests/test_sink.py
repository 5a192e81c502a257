"""The Parquet sink: atomic publication, rotation, time-bounded commits, metadata."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pyarrow.parquet as pq
import pytest

from crawler.errors import ErrorKind
from crawler.output.layout import Layout
from crawler.output.rows import ErrorRow, error_row
from crawler.output.schema import ERRORS_SCHEMA, META_RUN_ID, META_SCHEMA_VERSION, SCHEMA_VERSION
from crawler.output.sink import MAX_BUFFERED_ROWS, Columns, Dataset, OutputWriter
from crawler.targets import Target

RUN = "20260101T000000Z-abcdef"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def not_found(i: int) -> ErrorRow:
    return error_row(
        Target("ns", "repo", f"t{i}"),
        ErrorKind.NOT_FOUND,
        attempts=1,
        failed_at=datetime(2026, 1, 1, tzinfo=UTC),
        http_status=404,
        error_code="SVCSTG.SWR.4040010",
        error_msg="Image not found",
    )


def errors_dataset(directory: Path, file_rows: int, **kwargs: Any) -> Dataset:
    return Dataset(
        str(directory), ErrorRow, lambda: ERRORS_SCHEMA, "part-r", file_rows=file_rows, **kwargs
    )


def buffered(ds: Dataset, n: int) -> Columns:
    """``n`` error rows added to ``ds`` and taken back, ready for ``write``."""
    for i in range(n):
        ds.add(not_found(i))
    rows, _ = ds.take()
    return rows


def test_rows_are_invisible_until_published_then_readable(tmp_path: Path) -> None:
    """Before commit only a hidden .tmp exists; after it a complete .parquet with all rows."""
    ds = errors_dataset(tmp_path, 1000)
    for i in range(10):
        ds.add(not_found(i))
    rows, since = ds.take()
    ds.write(rows, since, commit=False)
    assert list(tmp_path.glob("*.parquet")) == []
    (hidden,) = (p.name for p in tmp_path.iterdir())
    assert re.fullmatch(r"\.part-r-00001\.parquet\.[0-9a-f]{8}\.tmp", hidden)
    ds.write(ds.take()[0], None, commit=True)  # nothing new: publish what is open
    files = list(tmp_path.glob("*.parquet"))
    assert [p.name for p in files] == ["part-r-00001.parquet"]
    assert pq.read_table(files[0]).column("tag").to_pylist() == [f"t{i}" for i in range(10)]
    assert not list(tmp_path.glob(".*.tmp"))


def test_files_rotate_at_file_rows(tmp_path: Path) -> None:
    """25 rows with file_rows=10 make three files of 10, 10 and 5 rows."""
    ds = errors_dataset(tmp_path, 10)
    ds.write(buffered(ds, 25), 0.0, commit=True)
    counts = [pq.read_metadata(p).num_rows for p in sorted(tmp_path.glob("*.parquet"))]
    assert counts == [10, 10, 5]
    assert ds.rows_committed == 25


def test_abort_leaves_only_published_files(tmp_path: Path) -> None:
    """A hard stop removes the temporary file and keeps what was published."""
    ds = errors_dataset(tmp_path, 5)
    ds.write(buffered(ds, 7), 0.0, commit=False)
    ds.abort()
    assert [p.name for p in tmp_path.iterdir()] == ["part-r-00001.parquet"]


def test_uncommitted_age_follows_the_oldest_row() -> None:
    """The age counts from the oldest row not yet published, across take()."""
    clock = FakeClock()
    ds = errors_dataset(Path("unused"), 10, clock=clock)
    assert ds.uncommitted_age() == 0.0
    ds.add(not_found(1))
    clock.now += 4
    ds.add(not_found(2))
    assert ds.uncommitted_age() == 4


@pytest.mark.anyio
async def test_writer_publishes_aged_rows_and_carries_metadata(tmp_path: Path) -> None:
    """flush() publishes rows older than commit_seconds, with schema/run metadata, zstd."""
    clock = FakeClock()
    writer = OutputWriter(Layout(tmp_path), RUN, commit_seconds=5, file_rows=100, clock=clock)
    writer.add_error(not_found(1))
    await writer.flush(force=False)
    assert not list((tmp_path / "errors").glob("*.parquet"))
    clock.now += 6
    await writer.flush(force=False)
    (path,) = (tmp_path / "errors").glob("*.parquet")
    meta = pq.read_metadata(path)
    assert path.name == f"part-{RUN}-00001.parquet"
    assert meta.metadata[META_RUN_ID] == RUN.encode()
    assert meta.metadata[META_SCHEMA_VERSION] == SCHEMA_VERSION.encode()
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert pq.read_schema(path).remove_metadata().equals(ERRORS_SCHEMA)


@pytest.mark.anyio
async def test_every_worker_waiting_for_room_is_released(tmp_path: Path) -> None:
    """Workers that wait for room together all resume after the writer's next flush."""
    writer = OutputWriter(Layout(tmp_path), RUN, commit_seconds=60, file_rows=100_000)
    for i in range(MAX_BUFFERED_ROWS):
        writer.add_error(not_found(i))
    released = 0

    async def wait() -> None:
        nonlocal released
        await writer.wait_for_room()
        released += 1

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            await writer.flush(force=False)
    assert released == 3
    await writer.close()
