"""The few lines a crawl prints at its end about its output, read a batch at a time.

:func:`crawler.report.summary.load_summary` (``swr-crawler report``) holds every
tag's columns at once, about 1 KB a tag with Arrow's intermediates: at the end
of a crawl of a million targets that was 1.4 GB, ten times what the crawl
itself needs. :func:`load_short_summary` reads one file and
:data:`SHORT_BATCH_ROWS` rows at a time with ``pyarrow.parquet`` alone (no
compute or dataset modules to import) and keeps 16 bytes for each distinct
digest and each repository (exact counts, as 64-bit hashes in
:class:`~crawler.targets.dedup.SeenSet`); the figures are those of the
whole-table summary (``tests/test_report.py`` compares them).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler.report.model import (
    NamespaceLine,
    SchemaCounts,
    Summary,
    largest_first,
    most_first,
    schema_labels,
)
from crawler.targets.dedup import SeenSet

if TYPE_CHECKING:
    import pyarrow.parquet as pq

#: Rows read at a time.
SHORT_BATCH_ROWS = 4_096

_TAG_COLUMNS = ("namespace", "repository", "digest", "schema", "tag_type", "size")


def load_short_summary(out: Path, *, batch_rows: int = SHORT_BATCH_ROWS) -> Summary:
    """Counts, bytes, namespaces, schemas, manifest lists and error kinds of the output at
    ``out``; the other fields of the :class:`Summary` are left empty."""
    import pyarrow.parquet as pq

    summary = Summary()
    # Each footer read once: for the row count that sizes the digest table, then to read.
    tag_files = [(path, pq.read_metadata(path)) for path in _published_files(out / "tags")]
    expected = sum(footer.num_rows for _, footer in tag_files)
    digests, repositories = SeenSet(expected), SeenSet()
    namespaces: dict[str, list[int]] = {}  # namespace -> [tags, repositories, bytes]
    schemas: SchemaCounts = Counter()
    # Rows come grouped by repository: its namespace line and hash are looked up once a group.
    last_namespace: str | None = None  # a tag row's namespace is never null
    last_repository: str | None = None
    line = [0, 0, 0]
    for columns in _read(tag_files, _TAG_COLUMNS, batch_rows):
        for namespace, repository, digest, schema, tag_type, size in zip(*columns, strict=True):
            if repository != last_repository or namespace != last_namespace:
                last_namespace, last_repository = namespace, repository
                line = namespaces.setdefault(namespace, [0, 0, 0])
                if repositories.add(f"{namespace}/{repository}"):
                    line[1] += 1
            line[0] += 1
            if size is not None:
                line[2] += size
            if digest is not None and digests.add(digest):
                summary.images += 1
            schemas[schema, tag_type] += 1
    summary.namespaces = largest_first(
        NamespaceLine(name, *counts) for name, counts in namespaces.items()
    )
    summary.tags = sum(line.tags for line in summary.namespaces)
    summary.bytes = sum(line.bytes for line in summary.namespaces)
    summary.by_schema = schema_labels(schemas)
    summary.manifest_lists = sum(n for (_, tag_type), n in schemas.items() if tag_type == 1)
    kinds: Counter[str] = Counter()
    error_files = [(path, None) for path in _published_files(out / "errors")]
    for (error_kinds,) in _read(error_files, ("error_kind",), batch_rows):
        kinds.update("(none)" if kind is None else kind for kind in error_kinds)
    summary.errors = sum(kinds.values())
    summary.error_kinds = most_first(kinds)
    return summary


def _read(
    files: list[tuple[Path, pq.FileMetaData | None]], columns: tuple[str, ...], batch_rows: int
) -> Iterator[list[list[Any]]]:
    """``columns`` of ``files`` (each with its footer, if already read) as Python lists,
    ``batch_rows`` rows at a time."""
    import pyarrow.parquet as pq

    for path, footer in files:
        with pq.ParquetFile(path, metadata=footer) as part:
            for batch in part.iter_batches(batch_size=batch_rows, columns=list(columns)):
                yield [batch.column(name).to_pylist() for name in columns]


def _published_files(directory: Path) -> list[Path]:
    """The ``.parquet`` files under ``directory`` (subfolders too), hidden and
    ``_``-prefixed names skipped as every Parquet reader does (a file being written)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        found += [
            Path(root, name)
            for name in sorted(files)
            if name.endswith(".parquet") and not name.startswith((".", "_"))
        ]
    return found
