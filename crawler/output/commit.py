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
from typing import Final

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import structlog

from crawler.output.checkpoint import PART_RE, run_file_name, shard_suffix
from crawler.output.dataset import partition_dir, run_record_path
from crawler.output.schema import ERRORS_SCHEMA, TAGS_SCHEMA, with_metadata

log = structlog.get_logger("crawler")

COMMIT_FILE: Final = "commit.json"
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


def commit(
    fs: pafs.FileSystem,
    root: str,
    staging: str,
    day: date,
    shard: tuple[int, int],
    run_id: str,
    sizes: Sizes,
) -> dict[str, list[str]]:
    """Publish the complete run in ``staging`` as the ``day`` snapshot; the names per dataset."""
    if not pending_commit(fs, staging):
        names = {
            name: _compact(fs, staging, name, schema, shard, run_id, sizes)
            for name, schema in _DATASETS
        }
        _write_whole(
            fs,
            f"{staging}/{COMMIT_FILE}",
            orjson.dumps({"run_id": run_id, "files": names}),
        )
    return finish(fs, root, staging, day, shard)


def finish(
    fs: pafs.FileSystem, root: str, staging: str, day: date, shard: tuple[int, int]
) -> dict[str, list[str]]:
    """Steps 2-5 of the module docstring, from ``staging/commit.json``; idempotent."""
    manifest = orjson.loads(_read(fs, f"{staging}/{COMMIT_FILE}"))
    names: dict[str, list[str]] = manifest["files"]
    run_id: str = manifest["run_id"]
    for dataset, files in names.items():
        target = partition_dir(root, dataset, day)
        fs.create_dir(target, recursive=True)
        for name in files:
            source = f"{staging}/compact/{dataset}/{name}"
            if fs.get_file_info(source).type == pafs.FileType.File:
                fs.move(source, f"{target}/{name}")
        _sync(fs, target)
        replaced = _replace(fs, target, set(files), shard)
        log.info(
            "dataset.published",
            dataset=dataset,
            snapshot_date=day.isoformat(),
            files=len(files),
            replaced=replaced,
        )
    run_file = f"{staging}/{run_file_name(shard)}"
    if fs.get_file_info(run_file).type == pafs.FileType.File:
        record = run_record_path(root, day, run_id + shard_suffix(shard))
        fs.create_dir(record.rsplit("/", 1)[0], recursive=True)
        _write_whole(fs, record, _read(fs, run_file))
    fs.delete_dir(staging)
    return names


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
        if PART_RE.match(info.base_name)
    )
    if not parts:
        return []
    file_schema = with_metadata(schema, run_id)
    dataset = ds.dataset(parts, filesystem=fs, format="parquet", schema=file_schema)
    names: list[str] = []
    writer: pq.ParquetWriter | None = None
    rows_in_file = 0
    stem = f"part-{run_id}{shard_suffix(shard)}"
    pending = file_schema.empty_table()

    def write_group(table: pa.Table) -> None:
        nonlocal writer, rows_in_file
        if writer is None:
            names.append(f"{stem}-{len(names) + 1:05d}.parquet")
            writer = pq.ParquetWriter(
                f"{target}/{names[-1]}", file_schema, filesystem=fs, compression="zstd"
            )
            rows_in_file = 0
        writer.write_table(table, row_group_size=table.num_rows)
        rows_in_file += table.num_rows
        if rows_in_file >= sizes.file_rows:
            writer.close()
            writer, rows_in_file = None, 0
            _sync_file(fs, f"{target}/{names[-1]}")

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
        _sync_file(fs, f"{target}/{names[-1]}")
    return names


def _replace(fs: pafs.FileSystem, partition: str, keep: set[str], shard: tuple[int, int]) -> int:
    """Delete the partition's parts that the new run replaces; how many.

    An unsharded run replaces every part of the date; shard I/N only the
    parts of shard I/N (the other shards publish their own).
    """
    suffix = shard_suffix(shard)
    deleted = 0
    for info in fs.get_file_info(pafs.FileSelector(partition, allow_not_found=True)):
        match = PART_RE.match(info.base_name)
        if match is None or info.base_name in keep:
            continue
        if suffix and (match["shard"] or "") != suffix:
            continue
        fs.delete_file(info.path)
        deleted += 1
    _sync(fs, partition)
    return deleted


def _read(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        data: bytes = stream.read()
    return data


def _write_whole(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """``data`` at ``path``, whole or not at all (a rename locally; one upload on S3)."""
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _sync(fs, os.path.dirname(path))
        return
    with fs.open_output_stream(path) as stream:
        stream.write(data)


def _sync_file(fs: pafs.FileSystem, path: str) -> None:
    """fsync a local file before it is renamed into view (an S3 upload is durable once done)."""
    if isinstance(fs, pafs.LocalFileSystem):
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())


def _sync(fs: pafs.FileSystem, directory: str) -> None:
    """Make renames and deletions in a local ``directory`` durable (S3 needs nothing)."""
    if isinstance(fs, pafs.LocalFileSystem) and os.path.isdir(directory):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
