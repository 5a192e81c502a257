"""What a summary of an output is: the figures ``swr-crawler report`` and the end of a
crawl show, without the code that computes them (so the short form's module, which
reads no more than it needs, imports no Arrow compute).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

#: Tags of each ``(schema, tag_type)``.
SchemaCounts = Counter[tuple[int | None, int | None]]

_TAG_TYPES: dict[int | None, str] = {0: "manifest", 1: "manifest list"}


@dataclass(frozen=True, slots=True)
class NamespaceLine:
    """One namespace: how many tags, repositories and bytes it holds."""

    namespace: str
    tags: int
    repositories: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Image:
    """One image (a digest), as the "oldest" and "largest" tables show it."""

    digest: str
    reference: str
    """One ``namespace/repository:tag`` that points at it (the first in name order)."""
    tags: int
    size: int
    created: datetime | None


@dataclass(frozen=True, slots=True)
class SharedDigest:
    """A digest that several tags point at."""

    digest: str
    tags: int
    references: tuple[str, ...]
    """A few of the tags (name order)."""


@dataclass(slots=True)
class Summary:
    """Everything ``swr-crawler report`` shows; built by :func:`summarize`."""

    tags: int = 0
    images: int = 0
    """Distinct digests."""
    bytes: int = 0
    errors: int = 0
    namespaces: list[NamespaceLine] = field(default_factory=list)
    """Largest first."""
    by_schema: dict[str, int] = field(default_factory=dict)
    """``"schema 2 manifest list"`` -> tags."""
    media_types: dict[str, int] = field(default_factory=dict)
    manifest_lists: int = 0
    platforms: dict[str, int] = field(default_factory=dict)
    """``os/arch[/variant]`` -> manifest lists that carry it."""
    oldest: list[Image] = field(default_factory=list)
    largest: list[Image] = field(default_factory=list)
    shared: list[SharedDigest] = field(default_factory=list)
    shared_total: int = 0
    """How many digests are shared by more than one tag."""
    ages: dict[str, int] = field(default_factory=dict)
    """Tag age bucket (by ``created``) -> tags, in :data:`AGE_BUCKETS` order."""
    error_kinds: dict[str, int] = field(default_factory=dict)
    error_statuses: dict[str, int] = field(default_factory=dict)
    """``"404"`` (or ``"none"`` when no answer came) -> error rows."""
    as_of: datetime = field(default_factory=lambda: datetime.now(UTC))
    """The moment ages are measured from."""


def schema_labels(counted: SchemaCounts) -> dict[str, int]:
    """``"schema 2 manifest list"`` -> tags, by schema then tag type."""
    labels: dict[str, int] = {}
    for (schema, tag_type), count in sorted(
        counted.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1] or 0)
    ):
        kind = _TAG_TYPES.get(tag_type, f"tag type {tag_type}")
        labels[f"schema {schema} {kind}"] = count
    return labels


def largest_first(lines: Iterable[NamespaceLine]) -> list[NamespaceLine]:
    """Namespace lines by bytes, largest first (then by name)."""
    return sorted(lines, key=lambda line: (-line.bytes, line.namespace))


def most_first(counted: Counter[str]) -> dict[str, int]:
    """``counted`` as a dict, most frequent first (then by name)."""
    return dict(sorted(counted.items(), key=lambda kv: (-kv[1], kv[0])))
