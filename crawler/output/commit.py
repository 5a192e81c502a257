"""Publishing a finished run into a snapshot dataset: compact, move into the partition, replace.

A dataset run crawls into a staging run directory outside ``ROOT/tags`` and
``ROOT/errors`` (see :mod:`crawler.output.dataset`), an ordinary ``--out``
that ``--resume`` continues like any other. Only a *complete* run is
published, in steps that can each be redone after a crash::

    1. compact  staging/{tags,errors}/part-*.parquet  ->  staging/compact/{tags,errors}/
                (few large files: --file-rows rows each, --row-group-rows row groups),
                then staging/commit.json names them (written whole or not at all)
    2. move     each named file into ROOT/<dataset>/snapshot_date=D/
    3. replace  delete the partition's other files of this shard (the date's old rows)
    4. record   the run file -> ROOT/runs/snapshot_date=D/<run id>[-sIofN].json
    5. clean    delete the staging directory

Until step 2 starts, readers see the old rows of the date, whole; a run that
is killed before it completes leaves them untouched. A crash inside steps
2-5 leaves ``commit.json``: the next run for that date finishes the commit
first (a file already moved is skipped), so a date's new rows never mix with
its old ones for longer than the commit takes.

Works on any pyarrow file system: a move is a ``rename`` on a local disk and
a server-side copy then delete on S3, where an object under its final key is
always whole (an upload becomes visible only when it completes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import structlog

from crawler.output.dataset import partition_dir, run_record_path
from crawler.output.layout import Layout, PartName, part_file, part_stem, shard_suffix
from crawler.output.objectstore import read_whole, write_whole
from crawler.output.schema import ERRORS_SCHEMA, TAGS_SCHEMA, with_metadata
from crawler.output.storage import open_nofollow

log = structlog.get_logger("crawler")

COMMIT_FILE: Final = "commit.json"
#: A run id's start time, to the second: ``YYYYMMDDTHHMMSSZ``.
_SECOND: Final = len("20261127T073100Z")
_DATASETS: Final = (("tags", TAGS_SCHEMA), ("errors", ERRORS_SCHEMA))


@dataclass(frozen=True)
class Sizes:
    """How the published files are cut."""

    file_rows: int
    row_group_rows: int


def pending_commit(fs: pafs.FileSystem, staging: str) -> bool:
    """Whether ``staging`` holds a commit that a crash interrupted."""
    found: bool = fs.get_file_info(f"{staging}/{COMMIT_FILE}").type == pafs.FileType.File
    return found


@dataclass(frozen=True)
class Place:
    """A directory on a file system: where a run is staged, or a dataset's root."""

    fs: pafs.FileSystem
    path: str


def commit(
    staging: Place,
    root: Place,
    day: date,
    shard: tuple[int, int],
    run_id: str,
    sizes: Sizes,
) -> dict[str, list[str]]:
    """Publish the complete run in ``staging`` as the ``day`` snapshot; the names per dataset."""
    if not pending_commit(staging.fs, staging.path):
        names = {
            name: _compact(staging.fs, staging.path, name, schema, shard, run_id, sizes)
            for name, schema in _DATASETS
        }
        write_whole(
            staging.fs,
            f"{staging.path}/{COMMIT_FILE}",
            orjson.dumps({"run_id": run_id, "files": names}),
        )
    return finish(staging, root, day, shard)


def finish(staging: Place, root: Place, day: date, shard: tuple[int, int]) -> dict[str, list[str]]:
    """Steps 2-5 of the module docstring, from ``staging/commit.json``; idempotent."""
    manifest = orjson.loads(read_whole(staging.fs, f"{staging.path}/{COMMIT_FILE}"))
    names: dict[str, list[str]] = manifest["files"]
    run_id: str = manifest["run_id"]
    fs = root.fs
    for dataset, files in names.items():
        target = partition_dir(root.path, dataset, day)
        fs.create_dir(target, recursive=True)
        for name in files:
            source = f"{staging.path}/compact/{dataset}/{name}"
            if staging.fs.get_file_info(source).type == pafs.FileType.File:
                _move(staging.fs, source, fs, f"{target}/{name}")
        _sync(fs, target)
        replaced = _replace(fs, target, shard, run_id)
        log.info(
            "dataset.published",
            dataset=dataset,
            snapshot_date=day.isoformat(),
            files=len(files),
            replaced=replaced,
        )
    run_file = Layout(staging.path, shard).run_file()
    if staging.fs.get_file_info(run_file).type == pafs.FileType.File:
        record = run_record_path(root.path, day, run_id + shard_suffix(shard))
        fs.create_dir(record.rsplit("/", 1)[0], recursive=True)
        write_whole(fs, record, read_whole(staging.fs, run_file))
    staging.fs.delete_dir(staging.path)
    return names


def _move(source_fs: pafs.FileSystem, source: str, fs: pafs.FileSystem, target: str) -> None:
    """A rename on one file system; else one upload (whole when it appears), then a delete."""
    if source_fs is fs:
        fs.move(source, target)
        return
    pafs.copy_files(source, target, source_filesystem=source_fs, destination_filesystem=fs)
    source_fs.delete_file(source)


def _compact(
    fs: pafs.FileSystem,
    staging: str,
    name: str,
    schema: pa.Schema,
    shard: tuple[int, int],
    run_id: str,
    sizes: Sizes,
) -> list[str]:
    """Rewrite the staged parts of one dataset as few files; their names, in order."""
    source = f"{staging}/{name}"
    target = f"{staging}/compact/{name}"
    fs.create_dir(target, recursive=True)
    for stale in fs.get_file_info(pafs.FileSelector(target, allow_not_found=True)):
        fs.delete_file(stale.path)  # a crash during an earlier compaction
    parts = sorted(
        info.path
        for info in fs.get_file_info(pafs.FileSelector(source, allow_not_found=True))
        if PartName.parse(info.base_name)
    )
    if not parts:
        return []
    file_schema = with_metadata(schema, run_id)
    dataset = ds.dataset(parts, filesystem=fs, format="parquet", schema=file_schema)
    names: list[str] = []
    writer: pq.ParquetWriter | None = None
    sink: Any = None
    rows_in_file = 0
    stem = part_stem(run_id, shard)
    pending = file_schema.empty_table()

    def write_group(table: pa.Table) -> None:
        nonlocal writer, sink, rows_in_file
        if writer is None:
            names.append(part_file(stem, len(names) + 1))
            sink = _create(fs, f"{target}/{names[-1]}")
            writer = pq.ParquetWriter(sink, file_schema, compression="zstd")
            rows_in_file = 0
        writer.write_table(table, row_group_size=table.num_rows)
        rows_in_file += table.num_rows
        if rows_in_file >= sizes.file_rows:
            writer.close()
            _close(fs, sink)
            writer, sink, rows_in_file = None, None, 0

    # Staged files are small (one per --commit-seconds): batches are gathered
    # into whole row groups, and a row group never straddles two files.
    for batch in dataset.to_batches(batch_size=sizes.row_group_rows):
        pending = pa.concat_tables([pending, pa.Table.from_batches([batch], file_schema)])
        while pending.num_rows >= (
            want := min(sizes.row_group_rows, sizes.file_rows - rows_in_file)
        ):
            write_group(pending.slice(0, want).combine_chunks())
            pending = pending.slice(want)
    while pending.num_rows:
        want = min(sizes.row_group_rows, sizes.file_rows - rows_in_file)
        write_group(pending.slice(0, want).combine_chunks())
        pending = pending.slice(want)
    if writer is not None:
        writer.close()
        _close(fs, sink)
    return names


def _replace(fs: pafs.FileSystem, partition: str, shard: tuple[int, int], run_id: str) -> int:
    """Delete the parts of every run but the newest in the partition; how many.

    The newest run is the one that started last (run ids begin with the UTC
    start time, to the second); among runs started in the same second the
    one publishing now wins, so a quick re-run always replaces the run before
    it. The rule needs no lock, so two runs of one date publishing at once
    (two machines sharing an object store, where no flock exists) still end
    with exactly one run's rows whichever order their steps interleave in:
    each deletes every run older than the newest it sees, its own included
    if it lost. (Two runs started in the same second *and* published at the
    same moment could each delete the other's: the one case not covered.)

    An unsharded run considers every part of the date; shard I/N only the
    parts of shard I/N (the other shards publish their own).
    """
    parts: list[tuple[str, str]] = []
    for info in fs.get_file_info(pafs.FileSelector(partition, allow_not_found=True)):
        part = PartName.parse(info.base_name)
        if part is None or (shard[1] > 1 and part.shard != shard):
            continue
        parts.append((part.run_id, info.path))
    if not parts:
        return 0
    newest = max(run for run, _ in parts)
    if newest[:_SECOND] == run_id[:_SECOND]:
        newest = run_id
    old = [path for run, path in parts if run != newest]
    for path in old:
        fs.delete_file(path)
    _sync(fs, partition)
    return len(old)


def _create(fs: pafs.FileSystem, path: str) -> Any:
    """A new file at ``path`` to write into: on a local disk created exclusively and never
    through a symbolic link (see :mod:`crawler.output.storage`); on S3 an upload."""
    if isinstance(fs, pafs.LocalFileSystem):
        return os.fdopen(open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb")
    return fs.open_output_stream(path)


def _close(fs: pafs.FileSystem, sink: Any) -> None:
    """Finish a file from :func:`_create`: fsync'd before it is moved into view locally;
    an S3 upload completes (and is durable) when closed."""
    if isinstance(fs, pafs.LocalFileSystem):
        sink.flush()
        os.fsync(sink.fileno())
    sink.close()


def _sync(fs: pafs.FileSystem, directory: str) -> None:
    """Make renames and deletions in a local ``directory`` durable (S3 needs nothing)."""
    if isinstance(fs, pafs.LocalFileSystem) and os.path.isdir(directory):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
