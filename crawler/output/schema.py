"""The output's Arrow schemas, versioned. The one place the columns are defined.

Bump :data:`SCHEMA_VERSION` on any change a reader would notice;
``--resume`` refuses to mix versions within one run. A new version only ever
*adds nullable columns* at the end (never removes, renames or retypes one), so
snapshots written by different versions read together as one table (DuckDB
``union_by_name=true``, ``pyarrow.unify_schemas``, Spark ``mergeSchema``): a
column a file does not have reads as null. :data:`TAGS_ADDED` records what each
version added; ``tests/test_schema.py`` holds every version to that rule.

The Arrow objects (:data:`TIMESTAMP`, :data:`TAGS_SCHEMA`, :data:`ERRORS_SCHEMA`,
:data:`TAGS_ADDED`) are built on first use, which imports pyarrow: importing
this module for the version or the key columns does not, so a crawl sends its
first request before it pays for pyarrow (its writer thread needs them later).

History:

* 1: the first schema.
* 2: ``tags.extra`` (JSON object text of the fields the API returned that no
  column holds; null when there are none).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from crawler import __version__

if TYPE_CHECKING:
    import pyarrow as pa

    #: Timestamps are microseconds in UTC: BigQuery and Spark reject nanoseconds.
    TIMESTAMP: pa.TimestampType
    #: The nullable ``tags`` columns each schema version added, appended in this order.
    TAGS_ADDED: dict[str, tuple[pa.Field, ...]]
    #: The ``tags`` schema this crawler writes (version :data:`SCHEMA_VERSION`).
    TAGS_SCHEMA: pa.Schema
    ERRORS_SCHEMA: pa.Schema

SCHEMA_VERSION = "2"

#: The columns that identify a target in both datasets (what --resume reads).
KEY_COLUMNS: tuple[str, str, str] = ("namespace", "repository", "tag")

META_SCHEMA_VERSION = b"swr_crawler.schema_version"
META_CRAWLER_VERSION = b"swr_crawler.crawler_version"
META_RUN_ID = b"swr_crawler.run_id"


@cache
def _arrow() -> dict[str, Any]:
    """The module's Arrow objects by name (see the TYPE_CHECKING block above)."""
    import pyarrow as pa

    timestamp = pa.timestamp("us", tz="UTC")
    tags_v1 = pa.schema(
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
            pa.field("created", timestamp),
            pa.field("updated", timestamp),
            pa.field("manifest", pa.string()),
            pa.field("manifest_media_type", pa.string()),
            pa.field("config_digest", pa.string()),
            pa.field("layer_count", pa.int32()),
            pa.field("layers_size", pa.int64()),
            pa.field("platforms", pa.list_(pa.string())),
            pa.field("fetched_at", timestamp, nullable=False),
            pa.field("attempts", pa.int32(), nullable=False),
        ]
    )
    errors = pa.schema(
        [
            pa.field("namespace", pa.string()),
            pa.field("repository", pa.string()),
            pa.field("tag", pa.string()),
            pa.field("error_kind", pa.string(), nullable=False),
            pa.field("http_status", pa.int32()),
            pa.field("error_code", pa.string()),
            pa.field("error_msg", pa.string()),
            pa.field("attempts", pa.int32(), nullable=False),
            pa.field("failed_at", timestamp, nullable=False),
        ]
    )
    added = {
        "2": (pa.field("extra", pa.string()),),
    }
    return {
        "TIMESTAMP": timestamp,
        "_TAGS_V1": tags_v1,
        "TAGS_ADDED": added,
        "ERRORS_SCHEMA": errors,
    }


def __getattr__(name: str) -> Any:
    """The Arrow objects, built at the first access to one (PEP 562), then plain attributes."""
    if name == "TAGS_SCHEMA":
        value: Any = tags_schema(SCHEMA_VERSION)
    elif name in ("TIMESTAMP", "TAGS_ADDED", "ERRORS_SCHEMA"):
        value = _arrow()[name]
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def tags_schema(version: str) -> pa.Schema:
    """The ``tags`` schema as schema ``version`` wrote it (``"1"`` .. :data:`SCHEMA_VERSION`)."""
    import pyarrow as pa

    if not version.isdigit() or not 1 <= int(version) <= int(SCHEMA_VERSION):
        raise ValueError(f"no tags schema version {version!r}")
    arrow = _arrow()
    fields = list(arrow["_TAGS_V1"])
    for added_in in sorted(arrow["TAGS_ADDED"], key=int):
        if int(added_in) <= int(version):
            fields.extend(arrow["TAGS_ADDED"][added_in])
    return pa.schema(fields)


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
