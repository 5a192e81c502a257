"""What an output holds, summarised: the facts behind ``swr-crawler report``.

:func:`load_summary` reads an output directory (or a dataset snapshot with
the same ``tags/`` and ``errors/`` folders) and :func:`summarize` turns the
two Arrow tables into a :class:`Summary`: pure, so it is tested on tables
built in memory. Only the columns a summary needs are read (never the
``manifest`` text), and sizes are added up as 38-digit decimals, so a
registry that reports absurd sizes (up to 2^63-1 a tag) still adds up
exactly instead of wrapping round.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from crawler.output.schema import ERRORS_SCHEMA, TAGS_SCHEMA
from crawler.report.model import (
    Image,
    NamespaceLine,
    SchemaCounts,
    SharedDigest,
    Summary,
    largest_first,
    most_first,
    schema_labels,
)

TAG_COLUMNS = (
    "namespace",
    "repository",
    "tag",
    "digest",
    "schema",
    "tag_type",
    "size",
    "created",
    "manifest_media_type",
    "platforms",
)
ERROR_COLUMNS = ("error_kind", "http_status")

#: How many rows the "oldest", "largest" and "shared digests" tables show.
TOP = 10

#: Tag age buckets: (label, upper bound in days); the last one is open.
AGE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("< 30 d", 30),
    ("30-90 d", 90),
    ("90-180 d", 180),
    ("180 d-1 y", 365),
    ("1-2 y", 730),
    ("2-3 y", 1095),
    ("> 3 y", float("inf")),
)
NO_DATE = "no date"

_BIG = pa.decimal128(38, 0)


def read_dataset(directory: Path, schema: pa.Schema, columns: tuple[str, ...]) -> pa.Table:
    """``columns`` of every published Parquet file under ``directory`` (subfolders too).

    Hidden and ``_``-prefixed files (a file still being written) are skipped,
    as every Parquet reader does.
    """
    wanted = pa.schema([schema.field(name) for name in columns])
    if not directory.is_dir():
        return wanted.empty_table()
    dataset = ds.dataset(directory, format="parquet", schema=wanted)
    return dataset.to_table(columns=list(columns))


def load_summary(out: Path, *, as_of: datetime | None = None) -> Summary:
    """The summary of the output at ``out`` (a crawl's ``--out`` or a dataset snapshot)."""
    tags = read_dataset(out / "tags", TAGS_SCHEMA, TAG_COLUMNS)
    errors = read_dataset(out / "errors", ERRORS_SCHEMA, ERROR_COLUMNS)
    return summarize(tags, errors, as_of=as_of)


def summarize(tags: pa.Table, errors: pa.Table, *, as_of: datetime | None = None) -> Summary:
    """The summary of a ``tags`` and an ``errors`` table (the columns above). Pure."""
    summary = Summary(as_of=as_of or datetime.now(UTC))
    summary.tags = tags.num_rows
    summary.errors = errors.num_rows
    if tags.num_rows:
        tags = tags.set_column(
            tags.schema.get_field_index("size"), "size", pc.cast(tags["size"], _BIG)
        )
        tags = tags.append_column("reference", _references(tags))
        summary.bytes = _as_int(pc.sum(tags["size"]).as_py())
        summary.namespaces = _namespaces(tags)
        summary.by_schema = _by_schema(tags)
        summary.media_types = _counts(tags["manifest_media_type"], missing="(none)")
        lists = tags.filter(pc.equal(tags["tag_type"], 1))
        summary.manifest_lists = lists.num_rows
        summary.platforms = _counts(pc.list_flatten(lists["platforms"]), missing="(none)")
        images = _images(tags)
        summary.images = images.num_rows
        summary.largest = _top_images(images, [("size", "descending"), ("digest", "ascending")])
        dated = images.filter(pc.is_valid(images["created"]))
        summary.oldest = _top_images(dated, [("created", "ascending"), ("digest", "ascending")])
        shared = images.filter(pc.greater(images["tags"], 1))
        summary.shared_total = shared.num_rows
        summary.shared = _shared(tags, shared)
    summary.ages = _ages(tags["created"] if tags.num_rows else None, summary.as_of)
    summary.error_kinds = _counts(errors["error_kind"], missing="(none)")
    statuses = pc.cast(errors["http_status"], pa.string())
    summary.error_statuses = _counts(statuses, missing="none")
    return summary


def _as_int(value: Any) -> int:
    return 0 if value is None else int(value)


def _references(tags: pa.Table) -> pa.Array:
    joined = pc.binary_join_element_wise(tags["namespace"], tags["repository"], "/")
    return pc.binary_join_element_wise(joined, tags["tag"], ":")


def _counts(values: pa.Array | pa.ChunkedArray, *, missing: str) -> dict[str, int]:
    """value -> occurrences, most frequent first (then by name)."""
    counted = Counter[str]()
    for item in pc.value_counts(values).to_pylist():
        key = missing if item["values"] is None else str(item["values"])
        counted[key] += int(item["counts"])
    return most_first(counted)


def _namespaces(tags: pa.Table) -> list[NamespaceLine]:
    grouped = tags.group_by("namespace").aggregate(
        [("size", "sum"), ("tag", "count"), ("repository", "count_distinct")]
    )
    lines = [
        NamespaceLine(
            row["namespace"],
            int(row["tag_count"]),
            int(row["repository_count_distinct"]),
            _as_int(row["size_sum"]),
        )
        for row in grouped.to_pylist()
    ]
    return largest_first(lines)


def _by_schema(tags: pa.Table) -> dict[str, int]:
    grouped = tags.group_by(["schema", "tag_type"]).aggregate([("tag", "count")])
    counted: SchemaCounts = Counter()
    for row in grouped.to_pylist():
        counted[row["schema"], row["tag_type"]] += int(row["tag_count"])
    return schema_labels(counted)


def _images(tags: pa.Table) -> pa.Table:
    """One row per digest: its size, its oldest ``created``, its tags and one reference."""
    with_digest = tags.filter(pc.is_valid(tags["digest"]))
    return (
        with_digest.group_by("digest")
        .aggregate([("size", "max"), ("created", "min"), ("tag", "count"), ("reference", "min")])
        .rename_columns(["digest", "size", "created", "tags", "reference"])
    )


def _top_images(images: pa.Table, order: list[tuple[str, str]]) -> list[Image]:
    if not images.num_rows:
        return []
    indices = pc.select_k_unstable(images, TOP, sort_keys=order)
    top = images.take(indices).sort_by(order)
    return [
        Image(
            row["digest"], row["reference"], int(row["tags"]), _as_int(row["size"]), row["created"]
        )
        for row in top.to_pylist()
    ]


def _shared(tags: pa.Table, shared: pa.Table) -> list[SharedDigest]:
    if not shared.num_rows:
        return []
    order = [("tags", "descending"), ("digest", "ascending")]
    top = shared.take(pc.select_k_unstable(shared, TOP, sort_keys=order)).sort_by(order)
    digests = top["digest"]
    members = tags.filter(pc.is_in(tags["digest"], value_set=digests)).sort_by("reference")
    references: dict[str, list[str]] = {}
    for digest, reference in zip(
        members["digest"].to_pylist(), members["reference"].to_pylist(), strict=True
    ):
        references.setdefault(digest, []).append(reference)
    return [
        SharedDigest(row["digest"], int(row["tags"]), tuple(references[row["digest"]][:3]))
        for row in top.to_pylist()
    ]


def _ages(created: pa.ChunkedArray | None, as_of: datetime) -> dict[str, int]:
    """Tags per age bucket; a ``created`` in the future (clock skew) counts as the youngest."""
    ages = {label: 0 for label, _ in AGE_BUCKETS}
    ages[NO_DATE] = 0
    if created is None:
        return ages
    ages[NO_DATE] = created.null_count
    now = pa.scalar(as_of, created.type)
    age_us = pc.cast(pc.subtract(now, created.drop_null()), pa.int64())
    lower: int | None = None
    for label, days in AGE_BUCKETS:
        upper = None if days == float("inf") else int(days * 86_400_000_000)
        conditions = []
        if lower is not None:
            conditions.append(pc.greater_equal(age_us, lower))
        if upper is not None:
            conditions.append(pc.less(age_us, upper))
        mask = conditions[0] if len(conditions) == 1 else pc.and_(*conditions)
        ages[label] = int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)
        lower = upper
    return ages
