"""The two kinds of output row, as typed tuples: one ``tags`` row, one ``errors`` row.

Each field is a column of :mod:`crawler.output.schema`, in schema order
(``tests/test_rows.py`` holds the two in step), and a value is the Python
type pyarrow converts to that column's type. The sink appends a row's
values column by column by position, so a row cannot miss a column or carry
one the schema does not have.

:func:`tag_row <crawler.output.normalize.tag_row>` builds ``tags`` rows from
an API answer; :func:`error_row` is the one constructor of ``errors`` rows,
for a target that failed and for an input line that is not a target.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple, Protocol

from crawler.errors import ErrorKind

__all__ = ["ErrorRow", "Named", "TagRow", "error_row"]


class TagRow(NamedTuple):
    """One ``tags`` row: a tag fetched with HTTP 200 (columns documented in the README)."""

    namespace: str
    repository: str
    tag: str
    id: int | None
    repo_id: int | None
    image_id: str | None
    digest: str | None
    path: str | None
    internal_path: str | None
    domain_id: str | None
    schema: int | None
    tag_type: int | None
    size: int | None
    is_trusted: bool | None
    created: datetime | None
    updated: datetime | None
    manifest: str | None
    manifest_media_type: str | None
    config_digest: str | None
    layer_count: int | None
    layers_size: int | None
    platforms: list[str] | None
    fetched_at: datetime
    attempts: int
    extra: str | None


class ErrorRow(NamedTuple):
    """One ``errors`` row: a target that did not end in a 200, or an input line that is none."""

    namespace: str | None
    repository: str | None
    tag: str | None
    error_kind: str
    http_status: int | None
    error_code: str | None
    error_msg: str | None
    attempts: int
    failed_at: datetime


class Named(Protocol):
    """Anything that names a target: a parsed target, or what could be read of an invalid line."""

    @property
    def namespace(self) -> str | None: ...

    @property
    def repository(self) -> str | None: ...

    @property
    def tag(self) -> str | None: ...


def error_row(
    target: Named,
    kind: ErrorKind,
    *,
    attempts: int,
    failed_at: datetime,
    http_status: int | None = None,
    error_code: str | None = None,
    error_msg: str | None = None,
) -> ErrorRow:
    """The ``errors`` row of ``target``, which ended as ``kind`` after ``attempts`` requests."""
    return ErrorRow(
        target.namespace,
        target.repository,
        target.tag,
        kind.value,
        http_status,
        error_code,
        error_msg,
        attempts,
        failed_at,
    )
