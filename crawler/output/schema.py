"""The output's Arrow schemas, versioned. The one place the columns are defined.

Bump :data:`SCHEMA_VERSION` on any change a reader would notice;
``--resume`` refuses to mix versions within one run. A new version only ever
*adds nullable columns* at the end (never removes, renames or retypes one), so
snapshots written by different versions read together as one table (DuckDB
``union_by_name=true``, ``pyarrow.unify_schemas``, Spark ``mergeSchema``): a
column a file does not have reads as null. :data:`TAGS_ADDED` records what each
version added; ``tests/test_schema.py`` holds every version to that rule.

History:

* 1: the first schema.
* 2: ``tags.extra`` (JSON object text of the fields the API returned that no
  column holds; null when there are none).
"""

from __future__ import annotations

import pyarrow as pa

from crawler import __version__

SCHEMA_VERSION = "2"

#: Timestamps are microseconds in UTC: BigQuery and Spark reject nanoseconds.
TIMESTAMP = pa.timestamp("us", tz="UTC")

_TAGS_V1 = pa.schema(
    [
        pa.field("namespace", pa.string(), nullable=False),
        pa.field("repository", pa.string(), nullable=False),
        pa.field("tag", pa.string(), nullable=False),
        pa.field("id", pa.int64()),
        pa.field("repo_id", pa.int64()),
        pa.field("image_id", pa.string()),
        pa.field("digest", pa.string()),
        pa.field("path", pa.string()),
        pa.field("internal_path", pa.string()),
        pa.field("domain_id", pa.string()),
        pa.field("schema", pa.int32()),
        pa.field("tag_type", pa.int32()),
        pa.field("size", pa.int64()),
        pa.field("is_trusted", pa.bool_()),
        pa.field("created", TIMESTAMP),
        pa.field("updated", TIMESTAMP),
        pa.field("manifest", pa.string()),
        pa.field("manifest_media_type", pa.string()),
        pa.field("config_digest", pa.string()),
        pa.field("layer_count", pa.int32()),
        pa.field("layers_size", pa.int64()),
        pa.field("platforms", pa.list_(pa.string())),
        pa.field("fetched_at", TIMESTAMP, nullable=False),
        pa.field("attempts", pa.int32(), nullable=False),
    ]
)

#: The nullable ``tags`` columns each schema version added, appended in this order.
TAGS_ADDED: dict[str, tuple[pa.Field, ...]] = {
    "2": (pa.field("extra", pa.string()),),
}


def tags_schema(version: str) -> pa.Schema:
    """The ``tags`` schema as schema ``version`` wrote it (``"1"`` .. :data:`SCHEMA_VERSION`)."""
    if not version.isdigit() or not 1 <= int(version) <= int(SCHEMA_VERSION):
        raise ValueError(f"no tags schema version {version!r}")
    fields = list(_TAGS_V1)
    for added_in in sorted(TAGS_ADDED, key=int):
        if int(added_in) <= int(version):
            fields.extend(TAGS_ADDED[added_in])
    return pa.schema(fields)


TAGS_SCHEMA = tags_schema(SCHEMA_VERSION)

ERRORS_SCHEMA = pa.schema(
    [
        pa.field("namespace", pa.string()),
        pa.field("repository", pa.string()),
        pa.field("tag", pa.string()),
        pa.field("error_kind", pa.string(), nullable=False),
        pa.field("http_status", pa.int32()),
        pa.field("error_code", pa.string()),
        pa.field("error_msg", pa.string()),
        pa.field("attempts", pa.int32(), nullable=False),
        pa.field("failed_at", TIMESTAMP, nullable=False),
    ]
)


#: The columns that identify a target in both datasets (what --resume reads).
KEY_COLUMNS: tuple[str, str, str] = ("namespace", "repository", "tag")

META_SCHEMA_VERSION = b"swr_crawler.schema_version"
META_CRAWLER_VERSION = b"swr_crawler.crawler_version"
META_RUN_ID = b"swr_crawler.run_id"


def file_metadata(run_id: str) -> dict[bytes, bytes]:
    """Key-value metadata stored in every Parquet file of a run (never a secret)."""
    return {
        META_SCHEMA_VERSION: SCHEMA_VERSION.encode(),
        META_CRAWLER_VERSION: __version__.encode(),
        META_RUN_ID: run_id.encode(),
    }


def with_metadata(schema: pa.Schema, run_id: str) -> pa.Schema:
    """``schema`` carrying :func:`file_metadata` for ``run_id``."""
    return schema.with_metadata(file_metadata(run_id))
