"""``swr-crawler diff OLD NEW``: read two snapshots, compare them, report, exit status.

OLD and NEW are run directories (``--out`` of a crawl) or dataset snapshots
``ROOT@YYYY-MM-DD`` (``--dataset`` of a crawl), local or ``s3://``. Only the
columns the comparison needs are read (Parquet projection).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping

import click
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from crawler.diff import CHANGE_KINDS, ERROR_COLUMNS, TAG_COLUMNS, Diff, Snapshot, compare, render
from crawler.errors import ConfigError
from crawler.output.dataset import partition_dir, split_snapshot_spec
from crawler.output.objectstore import open_location, write_whole
from crawler.output.schema import ERRORS_SCHEMA, TAGS_SCHEMA
from crawler.output.storage import is_object_store

EXIT_CHANGED = 1
EXIT_USAGE = 2


def read_snapshot(spec: str, environ: Mapping[str, str]) -> Snapshot:
    """The tags and errors of a run directory or of ``ROOT@YYYY-MM-DD``; ConfigError if none."""
    location, day = split_snapshot_spec(spec)
    fs, path = open_location(location, environ)
    if day is None:
        tags_dir, errors_dir = f"{path}/tags", f"{path}/errors"
    else:
        tags_dir, errors_dir = partition_dir(path, "tags", day), partition_dir(path, "errors", day)
    tags = _read(fs, tags_dir, TAG_COLUMNS, TAGS_SCHEMA)
    errors = _read(fs, errors_dir, ERROR_COLUMNS, ERRORS_SCHEMA)
    if tags is None and errors is None:
        what = "no run directory" if day is None else f"no snapshot of {day.isoformat()}"
        raise ConfigError(f"{spec}: {what} there (no tags/ or errors/ files)")
    return Snapshot(
        tags if tags is not None else TAGS_SCHEMA.empty_table().select(list(TAG_COLUMNS)),
        errors if errors is not None else ERRORS_SCHEMA.empty_table().select(list(ERROR_COLUMNS)),
    )


def _read(
    fs: pafs.FileSystem, directory: str, columns: tuple[str, ...], schema: pa.Schema
) -> pa.Table | None:
    try:
        info = fs.get_file_info(directory)
    except OSError as exc:
        raise ConfigError(f"cannot read {directory}: {exc}") from None
    if info.type == pafs.FileType.NotFound:
        return None
    if info.type != pafs.FileType.Directory:
        raise ConfigError(f"{directory}: is not a directory")
    # Hidden and "_" names (temporary files) are skipped, as every warehouse reader does.
    dataset = ds.dataset(directory, filesystem=fs, format="parquet", schema=schema)
    return dataset.to_table(columns=list(columns))


def write_diff(diff: Diff, location: str, environ: Mapping[str, str]) -> list[str]:
    """``changes.parquet`` and ``errors.parquet`` under ``location``, each whole or not at all."""
    fs, path = open_location(location, environ)
    written = []
    for name, table in (("changes", diff.changes), ("errors", diff.errors)):
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        target = f"{path.rstrip('/')}/{name}.parquet"
        if not is_object_store(location):
            os.makedirs(path, exist_ok=True)
        write_whole(fs, target, sink.getvalue())
        written.append(target)
    return written


def parse_fail_on(text: str | None) -> frozenset[str]:
    """``added,repointed`` -> the kinds; ConfigError for an unknown kind."""
    if not text:
        return frozenset()
    kinds = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(kinds - set(CHANGE_KINDS))
    if unknown:
        raise ConfigError(
            f"--fail-on: unknown change kind(s) {', '.join(unknown)} "
            f"(choose from {','.join(CHANGE_KINDS)})"
        )
    return kinds


@click.command(
    "diff",
    epilog="\b\nExample:\n  swr-crawler diff /data/swr/2026-11-30 /data/swr/2026-12-01 "
    "--fail-on removed,repointed",
)
@click.argument("old")
@click.argument("new")
@click.option(
    "--out", "out", metavar="DIR", help="Also write changes.parquet and errors.parquet here."
)
@click.option(
    "--fail-on",
    "fail_on",
    metavar="KINDS",
    help="Exit 1 when a change of these kinds is found: " + ",".join(CHANGE_KINDS) + ".",
)
def diff_command(old: str, new: str, out: str | None, fail_on: str | None) -> None:
    """Compare two snapshots: tags added, removed, repointed (new digest) and resized.

    OLD and NEW are run directories or dataset snapshots ROOT@YYYY-MM-DD,
    local or s3://bucket/prefix. Targets in error on either side are
    counted apart. Exit 0, or 1 with --fail-on when such a change is found,
    2 for a usage error.
    """
    try:
        kinds = parse_fail_on(fail_on)
        environ = os.environ
        diff = compare(read_snapshot(old, environ), read_snapshot(new, environ))
        for line in render(diff):
            click.echo(line)
        if out is not None:
            for path in write_diff(diff, out, environ):
                click.echo(f"wrote {path}", err=True)
    except ConfigError as exc:
        click.echo(f"swr-crawler: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    found = diff.counts()
    hit = sorted(kind for kind in kinds if found[kind])
    if hit:
        click.echo(f"swr-crawler: changes found: {', '.join(hit)}", err=True)
        sys.exit(EXIT_CHANGED)
