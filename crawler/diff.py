"""What changed between two snapshots of the catalogue: pure comparison of Arrow tables.

A snapshot is the ``tags`` and ``errors`` rows of one run (or of one date of a
dataset). Compared by target (namespace, repository, tag), a tag is:

* ``added``: in NEW's tags, not in OLD's;
* ``removed``: in OLD's tags, not in NEW's;
* ``repointed``: in both, with another digest (a mutable tag was moved; the
  size columns are filled too, whether or not the size changed);
* ``resized``: in both, same digest, another size.

A change of ``updated`` alone is no change. A target that ended as an error
in either snapshot is never ``added`` or ``removed`` (a failed fetch says
nothing about the tag): it goes to :attr:`Diff.errors`, with what each side
knew of it. Null digests and sizes compare as values (null = null).

No I/O here: :mod:`crawler.diff_command` reads the snapshots and writes
the results.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from crawler.output.schema import KEY_COLUMNS, TIMESTAMP

__all__ = [
    "CHANGES_SCHEMA",
    "CHANGE_KINDS",
    "DIFF_ERRORS_SCHEMA",
    "ERROR_COLUMNS",
    "TAG_COLUMNS",
    "Diff",
    "Snapshot",
    "compare",
    "render",
]

CHANGE_KINDS: Final = ("added", "removed", "repointed", "resized")

#: The ``tags`` columns a comparison reads (Parquet projection: nothing else is loaded).
TAG_COLUMNS: Final = (*KEY_COLUMNS, "digest", "size", "updated")
#: The ``errors`` columns a comparison reads.
ERROR_COLUMNS: Final = (*KEY_COLUMNS, "error_kind")

_KEY_FIELDS: Final = [pa.field(name, pa.string(), nullable=False) for name in KEY_COLUMNS]

CHANGES_SCHEMA: Final = pa.schema(
    [
        *_KEY_FIELDS,
        pa.field("change", pa.string(), nullable=False),
        pa.field("old_digest", pa.string()),
        pa.field("new_digest", pa.string()),
        pa.field("old_size", pa.int64()),
        pa.field("new_size", pa.int64()),
        pa.field("old_updated", TIMESTAMP),
        pa.field("new_updated", TIMESTAMP),
    ]
)

#: An invalid target's row may lack any of its names.
_ERROR_KEY_FIELDS: Final = [pa.field(name, pa.string()) for name in KEY_COLUMNS]

DIFF_ERRORS_SCHEMA: Final = pa.schema(
    [
        *_ERROR_KEY_FIELDS,
        pa.field("old_error_kind", pa.string()),
        pa.field("new_error_kind", pa.string()),
        pa.field("old_digest", pa.string()),
        pa.field("new_digest", pa.string()),
    ]
)


@dataclass(frozen=True)
class Snapshot:
    """The rows of one snapshot: ``tags`` with :data:`TAG_COLUMNS`, ``errors`` with
    :data:`ERROR_COLUMNS` (other columns are ignored)."""

    tags: pa.Table
    errors: pa.Table


@dataclass(frozen=True)
class Diff:
    """Changed tags (:data:`CHANGES_SCHEMA`), targets in error (:data:`DIFF_ERRORS_SCHEMA`)."""

    changes: pa.Table
    errors: pa.Table

    def counts(self) -> Counter[str]:
        """How many changes of each kind, and ``errors``."""
        found = Counter(self.changes.column("change").to_pylist())
        found["errors"] = self.errors.num_rows
        return found

    def by_namespace(self) -> dict[str, Counter[str]]:
        """:meth:`counts` per namespace, namespaces sorted (:data:`INVALID` for none)."""
        per: dict[str, Counter[str]] = {}
        for namespace, change in zip(
            self.changes.column("namespace").to_pylist(),
            self.changes.column("change").to_pylist(),
            strict=True,
        ):
            per.setdefault(namespace, Counter())[change] += 1
        for namespace in self.errors.column("namespace").to_pylist():
            per.setdefault(namespace or INVALID, Counter())["errors"] += 1
        return dict(sorted(per.items()))


#: The namespace column of the report for invalid targets that have none.
INVALID: Final = "(invalid)"


def _side(tags: pa.Table, suffix: str) -> pa.Table:
    """Key columns plus ``digest``/``size``/``updated`` renamed ``<suffix>_...`` and a marker."""
    table = tags.select(list(TAG_COLUMNS)).cast(
        pa.schema(
            [
                *_KEY_FIELDS,
                pa.field("digest", pa.string()),
                pa.field("size", pa.int64()),
                pa.field("updated", TIMESTAMP),
            ]
        )
    )
    table = table.rename_columns(
        [*KEY_COLUMNS, f"{suffix}_digest", f"{suffix}_size", f"{suffix}_updated"]
    )
    return table.append_column(f"{suffix}_seen", pa.array([True] * table.num_rows, pa.bool_()))


def _error_keys(errors: pa.Table) -> pa.Table:
    return pa.table([errors.column(k).cast(pa.string()) for k in KEY_COLUMNS], names=KEY_COLUMNS)


def _differs(left: pa.ChunkedArray, right: pa.ChunkedArray) -> pa.ChunkedArray:
    """Null-safe ``left != right``: null equals null, null differs from a value."""
    unequal = pc.not_equal(left, right)
    one_null = pc.xor(pc.is_null(left), pc.is_null(right))
    return pc.or_kleene(pc.fill_null(unequal, False), one_null)


def compare(old: Snapshot, new: Snapshot) -> Diff:
    """The changes from ``old`` to ``new`` (see the module docstring); rows sorted by target."""
    joined = _side(old.tags, "old").join(
        _side(new.tags, "new"), list(KEY_COLUMNS), join_type="full outer"
    )
    in_old = pc.fill_null(joined.column("old_seen"), False)
    in_new = pc.fill_null(joined.column("new_seen"), False)
    both = pc.and_(in_old, in_new)
    repointed = pc.and_(both, _differs(joined.column("old_digest"), joined.column("new_digest")))
    resized = pc.and_(
        pc.and_(both, pc.invert(repointed)),
        _differs(joined.column("old_size"), joined.column("new_size")),
    )
    change = pc.case_when(
        pc.make_struct(pc.invert(in_old), pc.invert(in_new), repointed, resized),
        *CHANGE_KINDS,
    )

    failed = (
        pa.concat_tables([_error_keys(old.errors), _error_keys(new.errors)])
        .group_by(list(KEY_COLUMNS))
        .aggregate([])
    )
    failed = failed.append_column("_failed", pa.array([True] * failed.num_rows, pa.bool_()))
    joined = joined.append_column("change", change)
    joined = joined.join(failed, list(KEY_COLUMNS), join_type="left outer")
    not_failed = pc.invert(pc.fill_null(joined.column("_failed"), False))
    changes = joined.filter(pc.and_(pc.is_valid(joined.column("change")), not_failed))
    changes = changes.select(CHANGES_SCHEMA.names).cast(CHANGES_SCHEMA)

    errors = _error_rows(old, new, joined)
    return Diff(_sorted(changes), _sorted(errors))


def _error_rows(old: Snapshot, new: Snapshot, joined: pa.Table) -> pa.Table:
    # A join never matches null keys, and an invalid target may lack names: they are
    # joined as "" (no valid name is empty) and given back as null.
    def kinds(errors: pa.Table, name: str) -> pa.Table:
        columns = [pc.fill_null(errors.column(key).cast(pa.string()), "") for key in KEY_COLUMNS]
        return pa.table([*columns, errors.column("error_kind")], names=[*KEY_COLUMNS, name])

    table = kinds(old.errors, "old_error_kind").join(
        kinds(new.errors, "new_error_kind"), list(KEY_COLUMNS), join_type="full outer"
    )
    digests = joined.select([*KEY_COLUMNS, "old_digest", "new_digest"])
    table = table.join(digests, list(KEY_COLUMNS), join_type="left outer")
    for key in KEY_COLUMNS:
        column = table.column(key)
        index = table.schema.get_field_index(key)
        table = table.set_column(index, key, pc.if_else(pc.equal(column, ""), None, column))
    return table.select(DIFF_ERRORS_SCHEMA.names).cast(DIFF_ERRORS_SCHEMA)


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([(name, "ascending") for name in KEY_COLUMNS])


# --- the terminal report ---------------------------------------------------------

#: How many changed tags the terminal report lists one by one (the counts cover all).
LISTED: Final = 20
_COLUMNS: Final = (*CHANGE_KINDS, "errors")


def render(diff: Diff, *, listed: int = LISTED) -> list[str]:
    """The terminal report: counts per namespace, a total, then the first changed tags."""
    per = diff.by_namespace()
    header = ("namespace", *_COLUMNS)
    body = [(namespace, *(str(c[k]) for k in _COLUMNS)) for namespace, c in per.items()]
    total = diff.counts()
    body.append(("total", *(str(total[k]) for k in _COLUMNS)))
    lines = _aligned([header, *body])
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))

    shown = diff.changes.slice(0, listed).to_pylist()
    if shown:
        lines.append("")
    for row in shown:
        target = f"{row['namespace']}/{row['repository']}:{row['tag']}"
        lines.append(f"{row['change']:<9}  {target}  {_what(row)}")
    if diff.changes.num_rows > listed:
        lines.append(f"... and {diff.changes.num_rows - listed} more (--out DIR writes them all)")
    for row in diff.errors.slice(0, listed).to_pylist():
        target = f"{row['namespace']}/{row['repository']}:{row['tag']}"
        lines.append(
            f"error      {target}  {row['old_error_kind'] or 'ok'} -> "
            f"{row['new_error_kind'] or 'ok'}"
        )
    return lines


def _what(row: dict[str, object]) -> str:
    change = row["change"]
    if change == "added":
        return f"{row['new_digest']} ({row['new_size']} bytes)"
    if change == "removed":
        return f"{row['old_digest']} ({row['old_size']} bytes)"
    if change == "repointed":
        return f"{row['old_digest']} -> {row['new_digest']}"
    return f"{row['old_size']} -> {row['new_size']} bytes"


def _aligned(rows: Iterable[tuple[str, ...]]) -> list[str]:
    rows = list(rows)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
