"""Parquet output: rows buffered in memory, written in row groups, published atomically.

A dataset (``tags`` or ``errors``) is a directory of part files named by
:mod:`crawler.output.layout`. A file is written through
:meth:`Storage.create <crawler.output.storage.Storage.create>`: hidden until
it is complete, then published whole (see :mod:`crawler.output.storage`), so
a reader, or a crash at any moment, never sees a half-written ``.parquet``.
A file is published when it holds ``file_rows`` rows or when its oldest row
has waited ``commit_seconds``, so a kill loses at most that much work
(``--resume`` fetches it again).

Parquet encoding runs in a worker thread (``anyio.to_thread``), one batch at a
time, so the event loop keeps serving requests while a row group is written.

Memory stays bounded whatever the number of targets and whatever the size
of a value: rows (:mod:`crawler.output.rows`) are buffered column by column
(one list per schema column: appending is cheap, and ``from_pydict``
converts columns about twice as fast as ``from_pylist`` walks dicts), and
handed to the writer thread every :data:`CONVERT_ROWS` rows or
:data:`CONVERT_BYTES` of text, whichever comes first. The writer turns them
into Arrow (a column over 2 GiB becomes several chunks, which is fine) and
writes a row group once :data:`ROW_GROUP_ROWS` rows or
:data:`ROW_GROUP_BYTES` have gathered. Workers wait while more than
:data:`MAX_BUFFERED_ROWS` rows or :data:`MAX_BUFFERED_BYTES` are buffered.
Arrow's allocator is asked to give freed memory back after each row group.
pyarrow is imported by the writer thread when it first converts rows, so that
a crawl's first request never waits for that import (~80 ms).
"""

from __future__ import annotations

import time
import typing
from collections.abc import Callable
from functools import cached_property, partial
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from crawler.output import schema as schemas
from crawler.output.layout import Layout, part_file
from crawler.output.rows import ErrorRow, TagRow
from crawler.output.storage import LocalStorage, PendingFile, Storage

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

log = structlog.get_logger("crawler")

#: Rows per row group (~8 MB of Arrow data for tags with typical manifests, ~2 MB in zstd).
ROW_GROUP_ROWS = 4_096
#: A row group is written sooner once its text values reach this many bytes.
ROW_GROUP_BYTES = 64 * 2**20
#: Rows buffered on the event loop before the writer thread converts them to Arrow.
CONVERT_ROWS = 1_024
#: ... or bytes of text buffered (huge manifests), whichever comes first.
CONVERT_BYTES = 16 * 2**20
#: Rows buffered before a worker waits for the writer to catch up.
MAX_BUFFERED_ROWS = 8 * CONVERT_ROWS
#: Bytes of text buffered before a worker waits for the writer to catch up.
MAX_BUFFERED_BYTES = 4 * CONVERT_BYTES

#: Buffered rows: column name -> values, in schema order.
Columns = dict[str, list[Any]]


def _text_fields(row_type: type[TagRow] | type[ErrorRow]) -> tuple[int, ...]:
    """Positions of the text fields (typed ``str``; string columns in the schema): the
    only values that can be large."""
    hints = typing.get_type_hints(row_type)
    return tuple(
        i
        for i, name in enumerate(row_type._fields)
        if str in (hints[name], *typing.get_args(hints[name]))
    )


class Dataset:
    """One output dataset: buffers rows and writes them into rotating files.

    ``add`` runs on the event loop; ``write`` and ``abort`` run in a worker
    thread, never two at once (the :class:`OutputWriter` serialises them).
    ``schema`` builds the Arrow schema: called there, at the first write.
    """

    def __init__(
        self,
        directory: str,
        row_type: type[TagRow] | type[ErrorRow],
        schema: Callable[[], pa.Schema],
        file_stem: str,
        *,
        file_rows: int,
        storage: Storage | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self._row_type = row_type
        self._schema_of = schema
        self._storage: Storage = storage if storage is not None else LocalStorage()
        self._file_stem = file_stem
        self._file_rows = file_rows
        self._clock = clock
        self._text_positions = _text_fields(row_type)
        self._text = itemgetter(*self._text_positions)
        self._pending: Columns = self._empty()
        self._lists = list(self._pending.values())
        self._buffered = 0
        self._buffered_bytes = 0
        # Writer-thread side: converted rows not yet written as a row group.
        self._batches: list[pa.RecordBatch] = []
        self._batched = 0
        self._batched_bytes = 0
        self._pending_since: float | None = None
        self._open_since: float | None = None
        self._writer: pq.ParquetWriter | None = None
        self._file: PendingFile | None = None
        self._name: str | None = None
        self._rows_in_file = 0
        self._seq = 0
        self._made_dir = False
        self.rows_committed = 0
        self.files: list[str] = []
        """Names of the files this dataset published, in order."""

    @cached_property
    def schema(self) -> pa.Schema:
        """The Arrow schema of the files (built at the first write, in the writer thread)."""
        schema = self._schema_of()
        if self._row_type._fields != tuple(schema.names):
            raise ValueError(f"{self._row_type.__name__} fields are not the columns of its schema")
        return schema

    def _empty(self) -> Columns:
        return {name: [] for name in self._row_type._fields}

    # --- event loop side -------------------------------------------------
    def add(self, row: tuple[Any, ...]) -> None:
        """Buffer one row (a :mod:`crawler.output.rows` tuple of this dataset's kind)."""
        if self._pending_since is None:
            self._pending_since = self._clock()
        for values, value in zip(self._lists, row, strict=True):
            values.append(value)
        self._buffered += 1
        self._buffered_bytes += sum(map(len, filter(None, self._text(row))))

    @property
    def buffered(self) -> int:
        """Rows not yet handed to the writer thread."""
        return self._buffered

    @property
    def buffered_bytes(self) -> int:
        """Characters of text in the rows not yet handed to the writer thread."""
        return self._buffered_bytes

    def take(self) -> tuple[Columns, float | None]:
        """Hand the buffered rows (and when the oldest arrived) to the writer thread."""
        rows, since = self._pending, self._pending_since
        self._pending, self._pending_since = self._empty(), None
        self._lists = list(self._pending.values())
        self._buffered = self._buffered_bytes = 0
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
        import pyarrow as pa

        # A Table, not a RecordBatch: a column over 2 GiB comes back chunked.
        table = pa.Table.from_pydict(rows, schema=self.schema)
        for values in rows.values():
            values.clear()
        if table.num_rows:
            if self._writer is None:
                self._open(since)
            self._batches += table.to_batches()
            self._batched += table.num_rows
            self._batched_bytes += sum(table.column(i).nbytes for i in self._text_positions)
        del table
        due = self._batched >= ROW_GROUP_ROWS or self._batched_bytes >= ROW_GROUP_BYTES
        if commit or due or self._rows_in_file + self._batched >= self._file_rows:
            self._append(pa.Table.from_batches(self._batches, schema=self.schema), since)
            self._batches, self._batched, self._batched_bytes = [], 0, 0
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
        import pyarrow.parquet as pq

        if not self._made_dir:
            self._storage.make_dirs(self.directory)
            self._made_dir = True
        self._seq += 1
        self._name = part_file(self._file_stem, self._seq)
        self._file = self._storage.create(self._storage.join(self.directory, self._name))
        try:
            self._writer = pq.ParquetWriter(self._file.stream, self.schema, compression="zstd")
        except BaseException:
            self._file.discard()
            self._file = None
            raise
        self._rows_in_file = 0
        self._open_since = since if since is not None else self._clock()

    def _publish(self) -> None:
        assert self._writer is not None
        assert self._file is not None
        assert self._name is not None
        self._writer.close()
        self._writer = None
        file, self._file = self._file, None
        file.commit()
        self.rows_committed += self._rows_in_file
        self.files.append(self._name)
        self._name = None
        self._open_since = None

    def abort(self) -> None:
        """Drop the open temporary file after a hard stop; published files stay."""
        self._batches, self._batched, self._batched_bytes = [], 0, 0
        writer, self._writer = self._writer, None
        file, self._file = self._file, None
        self._name = None
        try:
            if writer is not None:
                writer.close()
        finally:
            if file is not None:
                file.discard()


class OutputWriter:
    """The ``tags`` and ``errors`` datasets of one run, and the task that writes them.

    Workers call :meth:`add_tag` / :meth:`add_error` (cheap: an append) and
    :meth:`wait_for_room` (backpressure when the writer falls behind).
    :meth:`run` is the writer task; :meth:`close` flushes and publishes all.
    """

    def __init__(
        self,
        layout: Layout,
        run_id: str,
        *,
        commit_seconds: float,
        file_rows: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        stem = layout.part_stem(run_id)

        def dataset(
            name: str, row_type: type[TagRow] | type[ErrorRow], schema: Callable[[], pa.Schema]
        ) -> Dataset:
            """One of the run's datasets: the same file stem, rotation, storage and clock."""
            return Dataset(
                layout.dataset_dir(name),
                row_type,
                schema,
                stem,
                file_rows=file_rows,
                storage=layout.storage,
                clock=clock,
            )

        self.tags = dataset(
            "tags", TagRow, lambda: schemas.with_metadata(schemas.TAGS_SCHEMA, run_id)
        )
        self.errors = dataset(
            "errors", ErrorRow, lambda: schemas.with_metadata(schemas.ERRORS_SCHEMA, run_id)
        )
        self._commit_seconds = commit_seconds
        self._wake = anyio.Event()
        self._room = anyio.Event()
        self._room.set()
        self._lock = anyio.Lock()

    def add_tag(self, row: TagRow) -> None:
        """Buffer one ``tags`` row."""
        self._added(self.tags, row)

    def add_error(self, row: ErrorRow) -> None:
        """Buffer one ``errors`` row."""
        self._added(self.errors, row)

    def _added(self, dataset: Dataset, row: tuple[Any, ...]) -> None:
        dataset.add(row)
        if _ready(dataset):
            self._wake.set()

    def _full(self) -> bool:
        tags, errors = self.tags, self.errors
        return (
            tags.buffered + errors.buffered >= MAX_BUFFERED_ROWS
            or tags.buffered_bytes + errors.buffered_bytes >= MAX_BUFFERED_BYTES
        )

    async def wait_for_room(self) -> None:
        """Wait while the writer is far behind (bounded memory)."""
        if self._full():
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
                if commit or _ready(dataset):
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


def _ready(dataset: Dataset) -> bool:
    """Whether ``dataset`` has buffered enough to hand to the writer thread."""
    return dataset.buffered >= CONVERT_ROWS or dataset.buffered_bytes >= CONVERT_BYTES
