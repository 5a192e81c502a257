"""Parquet output: rows buffered in memory, written in row groups, committed atomically.

A dataset (``tags`` or ``errors``) is a directory of ``part-*.parquet`` files.
A file is written under a hidden temporary name (``.part-*.parquet.tmp``,
which no ``*.parquet`` glob matches), fsync'd, renamed to its final name and
the directory fsync'd: a reader, or a crash at any moment, never sees a
half-written ``.parquet``. A file is committed when it holds ``file_rows``
rows or when its oldest row has waited ``commit_seconds``, so a kill loses at
most that much work (``--resume`` fetches it again).

Parquet encoding runs in a worker thread (``anyio.to_thread``), one batch at a
time, so the event loop keeps serving requests while a row group is written.

Memory stays flat whatever the number of targets: rows are buffered column by
column (one list per schema column, not a list of dicts: appending is as cheap,
and ``from_pydict`` converts columns about twice as fast as ``from_pylist``
walks dicts), and handed to the writer thread every :data:`CONVERT_ROWS`,
which turns them into an Arrow record batch (a tags row is ~2.8 KB of Python
objects, ~1.9 KB of Arrow) and writes a row group once :data:`ROW_GROUP_ROWS`
have gathered. Arrow's allocator is asked to give freed memory back after
each write.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pyarrow as pa
import pyarrow.parquet as pq
import structlog

from crawler.output.schema import ERRORS_SCHEMA, TAGS_SCHEMA, with_metadata

log = structlog.get_logger("crawler")

#: Rows per row group (~8 MB of Arrow data for tags with manifests, ~2 MB in zstd).
ROW_GROUP_ROWS = 4_096
#: Rows buffered on the event loop before the writer thread converts them to Arrow.
CONVERT_ROWS = 1_024
#: Rows buffered before a worker waits for the writer to catch up.
MAX_BUFFERED_ROWS = 8 * CONVERT_ROWS

#: Buffered rows: column name -> values, in schema order.
Columns = dict[str, list[Any]]
TMP_PREFIX = ".part-"
TMP_SUFFIX = ".tmp"


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path) -> None:
    """Make a fully written ``tmp`` visible as ``final``: fsync, rename, fsync the directory."""
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(final)
    fsync_dir(final.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no stray temporary file
        raise
    fsync_dir(path.parent)


class Dataset:
    """One output dataset: buffers rows and writes them into rotating files.

    ``add`` runs on the event loop; ``write`` and ``abort`` run in a worker
    thread, never two at once (the :class:`OutputWriter` serialises them).
    """

    def __init__(
        self,
        directory: Path,
        schema: pa.Schema,
        file_stem: str,
        *,
        file_rows: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.schema = schema
        self._file_stem = file_stem
        self._file_rows = file_rows
        self._clock = clock
        self._pending: Columns = self._empty()
        self._buffered = 0
        # Writer-thread side: converted rows not yet written as a row group.
        self._batches: list[pa.RecordBatch] = []
        self._batched = 0
        self._pending_since: float | None = None
        self._open_since: float | None = None
        self._writer: pq.ParquetWriter | None = None
        self._tmp: Path | None = None
        self._final: Path | None = None
        self._rows_in_file = 0
        self._seq = 0
        self.rows_committed = 0
        self.files: list[Path] = []

    def _empty(self) -> Columns:
        return {name: [] for name in self.schema.names}

    # --- event loop side -------------------------------------------------
    def add(self, row: Mapping[str, Any]) -> None:
        """Buffer one row (a mapping by column name; a missing column is null)."""
        if self._pending_since is None:
            self._pending_since = self._clock()
        get = row.get
        for name, values in self._pending.items():
            values.append(get(name))
        self._buffered += 1

    @property
    def buffered(self) -> int:
        """Rows not yet handed to the writer thread."""
        return self._buffered

    def take(self) -> tuple[Columns, float | None]:
        """Hand the buffered rows (and when the oldest arrived) to the writer thread."""
        rows, since = self._pending, self._pending_since
        self._pending, self._pending_since, self._buffered = self._empty(), None, 0
        return rows, since

    def uncommitted_age(self) -> float:
        """Seconds the oldest row not yet in a published file has waited."""
        times = [t for t in (self._open_since, self._pending_since) if t is not None]
        return self._clock() - min(times) if times else 0.0

    # --- writer thread side ----------------------------------------------
    def write(self, rows: Columns, since: float | None, *, commit: bool) -> None:
        """Append ``rows`` (from :meth:`take`) to the open file (rotating at ``file_rows``).

        Rows gather as record batches until they make a row group (or fill
        the file, or ``commit``); then they are written. Publish the file if
        ``commit``. ``rows`` is emptied once converted, so its Python objects
        are freed at once.
        """
        batch = pa.RecordBatch.from_pydict(rows, schema=self.schema)
        for values in rows.values():
            values.clear()
        if batch.num_rows:
            if self._writer is None:
                self._open(since)
            self._batches.append(batch)
            self._batched += batch.num_rows
        del batch
        due = self._batched >= ROW_GROUP_ROWS
        if commit or due or self._rows_in_file + self._batched >= self._file_rows:
            self._append(pa.Table.from_batches(self._batches, schema=self.schema), since)
            self._batches, self._batched = [], 0
            # Arrow's allocator keeps freed memory for reuse; without this the
            # encoding buffers of a row group stayed resident (~50 MB of RSS).
            # Once a row group, not once a batch: a call costs ~20 ms.
            pa.default_memory_pool().release_unused()
        if commit and self._writer is not None:
            self._publish()

    def _append(self, table: pa.Table, since: float | None) -> None:
        start = 0
        while start < table.num_rows:
            if self._writer is None:
                self._open(since)
            chunk = table.slice(start, self._file_rows - self._rows_in_file)
            assert self._writer is not None
            self._writer.write_table(chunk, row_group_size=ROW_GROUP_ROWS)
            self._rows_in_file += chunk.num_rows
            start += chunk.num_rows
            if self._rows_in_file >= self._file_rows:
                self._publish()

    def _open(self, since: float | None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        name = f"{self._file_stem}-{self._seq:05d}.parquet"
        self._final = self.directory / name
        self._tmp = self.directory / f".{name}{TMP_SUFFIX}"
        self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")
        self._rows_in_file = 0
        self._open_since = since if since is not None else self._clock()

    def _publish(self) -> None:
        assert self._writer is not None
        assert self._tmp is not None
        assert self._final is not None
        self._writer.close()
        self._writer = None
        publish(self._tmp, self._final)
        self.rows_committed += self._rows_in_file
        self.files.append(self._final)
        self._tmp = self._final = None
        self._open_since = None

    def abort(self) -> None:
        """Drop the open temporary file after a hard stop; published files stay."""
        self._batches, self._batched = [], 0
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                writer.close()
        finally:
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)
            self._tmp = self._final = None


class OutputWriter:
    """The ``tags`` and ``errors`` datasets of one run, and the task that writes them.

    Workers call :meth:`add_tag` / :meth:`add_error` (cheap: an append) and
    :meth:`wait_for_room` (backpressure when the writer falls behind).
    :meth:`run` is the writer task; :meth:`close` flushes and publishes all.
    """

    def __init__(
        self,
        out_dir: Path,
        run_id: str,
        *,
        file_stem: str,
        commit_seconds: float,
        file_rows: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tags = Dataset(
            out_dir / "tags",
            with_metadata(TAGS_SCHEMA, run_id),
            file_stem,
            file_rows=file_rows,
            clock=clock,
        )
        self.errors = Dataset(
            out_dir / "errors",
            with_metadata(ERRORS_SCHEMA, run_id),
            file_stem,
            file_rows=file_rows,
            clock=clock,
        )
        self._commit_seconds = commit_seconds
        self._wake = anyio.Event()
        self._room = anyio.Event()
        self._room.set()
        self._lock = anyio.Lock()

    def add_tag(self, row: Mapping[str, Any]) -> None:
        """Buffer one ``tags`` row."""
        self.tags.add(row)
        if self.tags.buffered >= CONVERT_ROWS:
            self._wake.set()

    def add_error(self, row: Mapping[str, Any]) -> None:
        """Buffer one ``errors`` row."""
        self.errors.add(row)
        if self.errors.buffered >= CONVERT_ROWS:
            self._wake.set()

    async def wait_for_room(self) -> None:
        """Wait while the writer is far behind (bounded memory)."""
        if self.tags.buffered + self.errors.buffered >= MAX_BUFFERED_ROWS:
            # One event for every waiter: replacing one that others already
            # wait on would leave them waiting for good.
            if self._room.is_set():
                self._room = anyio.Event()
            self._wake.set()
            await self._room.wait()

    async def run(self) -> None:
        """Write row groups as they fill and publish files as they age; runs until cancelled."""
        tick = min(1.0, self._commit_seconds / 4)
        while True:
            with anyio.move_on_after(tick):
                await self._wake.wait()
            self._wake = anyio.Event()
            await self.flush(force=False)

    async def flush(self, *, force: bool) -> None:
        """Write what is due (everything, published, when ``force``)."""
        async with self._lock:
            for dataset in (self.tags, self.errors):
                commit = force or dataset.uncommitted_age() >= self._commit_seconds
                if commit or dataset.buffered >= CONVERT_ROWS:
                    rows, since = dataset.take()
                    await anyio.to_thread.run_sync(
                        partial(dataset.write, rows, since, commit=commit)
                    )
            self._room.set()

    async def close(self) -> None:
        """Publish every buffered row; call once the workers are done."""
        with anyio.CancelScope(shield=True):
            await self.flush(force=True)

    def abort(self) -> None:
        """Hard stop: drop unpublished rows, remove temporary files."""
        self.tags.abort()
        self.errors.abort()
