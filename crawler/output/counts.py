"""What the published files of a run hold: ``tags`` rows and ``errors`` rows by kind."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from crawler.output.layout import Layout, kept_name

__all__ = ["DatasetCounts", "count_rows"]


@dataclass(frozen=True, slots=True)
class DatasetCounts:
    """What the published files of a run hold."""

    ok: int
    errors: dict[str, int]

    @property
    def targets(self) -> int:
        """Distinct targets recorded (each is in exactly one row)."""
        return self.ok + sum(self.errors.values())


def count_rows(layout: Layout) -> DatasetCounts:
    """Rows of ``tags`` (from the footers) and ``errors`` by kind (one column read).

    Blocking: call it in a worker thread.
    """
    tags, errors_files = layout.own_parts("tags"), list(_error_files(layout))
    if not tags and not errors_files:
        return DatasetCounts(0, {})  # a fresh output: a crawl starts without importing pyarrow
    import pyarrow.compute as pc

    from crawler.output.parts import PartFile
    from crawler.output.schema import ERRORS_SCHEMA, TAGS_SCHEMA

    ok = 0
    for path in tags:
        with PartFile(layout.storage, path, TAGS_SCHEMA) as part:
            ok += part.num_rows
    errors: Counter[str] = Counter()
    for path in errors_files:
        with PartFile(layout.storage, path, ERRORS_SCHEMA) as part:
            kinds = part.read(["error_kind"]).column("error_kind")
        for entry in pc.value_counts(kinds).to_pylist():
            errors[str(entry["values"])] += int(entry["counts"])
    return DatasetCounts(ok, dict(sorted(errors.items())))


def _error_files(layout: Layout) -> Iterator[str]:
    parts = layout.own_parts("errors")
    paths = set(parts)
    for path in parts:
        directory, _, name = path.rpartition("/")
        # mid-rewrite: the original and its .kept twin; count the twin only
        if layout.storage.join(directory, kept_name(name)) not in paths:
            yield path
