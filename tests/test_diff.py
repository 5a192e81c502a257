"""diff: the pure comparison of two snapshots, and its terminal report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from crawler.diff import CHANGES_SCHEMA, DIFF_ERRORS_SCHEMA, Snapshot, compare, render
from crawler.output.schema import ERRORS_SCHEMA, TAGS_SCHEMA

T1 = datetime(2026, 11, 1, tzinfo=UTC)
T2 = datetime(2026, 11, 2, tzinfo=UTC)


def _tags(*rows: tuple[str, str | None, int | None, datetime | None]) -> pa.Table:
    """Rows of (``ns/repo:tag``, digest, size, updated) as a full tags table."""
    out: list[dict[str, Any]] = []
    for target, digest, size, updated in rows:
        ns, rest = target.split("/", 1)
        repo, tag = rest.rsplit(":", 1)
        out.append(
            {
                "namespace": ns,
                "repository": repo,
                "tag": tag,
                "digest": digest,
                "size": size,
                "updated": updated,
                "fetched_at": T2,
                "attempts": 1,
            }
        )
    return pa.Table.from_pylist(out, schema=TAGS_SCHEMA)


def _errors(*rows: tuple[str | None, str | None, str | None, str]) -> pa.Table:
    out = [
        {
            "namespace": ns,
            "repository": repo,
            "tag": tag,
            "error_kind": kind,
            "attempts": 1,
            "failed_at": T2,
        }
        for ns, repo, tag, kind in rows
    ]
    return pa.Table.from_pylist(out, schema=ERRORS_SCHEMA)


def _changes(diff: Any) -> list[tuple[str, str, str | None, str | None, int | None, int | None]]:
    return [
        (
            f"{r['namespace']}/{r['repository']}:{r['tag']}",
            r["change"],
            r["old_digest"],
            r["new_digest"],
            r["old_size"],
            r["new_size"],
        )
        for r in diff.changes.to_pylist()
    ]


OLD = Snapshot(
    _tags(
        ("a/app:same", "d1", 10, T1),
        ("a/app:touched", "d2", 20, T1),
        ("a/app:gone", "d3", 30, T1),
        ("a/app:moved", "d4", 40, T1),
        ("b/x/y:grew", "d5", 50, T1),
        ("b/x/y:nulldigest", None, 60, T1),
        ("b/x/y:was-ok", "d6", 70, T1),
    ),
    _errors(("b", "x/y", "was-error", "server_error")),
)
NEW = Snapshot(
    _tags(
        ("a/app:same", "d1", 10, T1),
        ("a/app:touched", "d2", 20, T2),
        ("a/app:moved", "d9", 40, T2),
        ("b/x/y:grew", "d5", 55, T2),
        ("b/x/y:nulldigest", None, 60, T1),
        ("b/x/y:was-error", "d7", 80, T2),
        ("c/new:1", "d8", 90, T2),
    ),
    _errors(("b", "x/y", "was-ok", "not_found"), (None, None, None, "invalid_target")),
)


def test_compare_finds_each_kind_of_change_and_nothing_else() -> None:
    """Each kind of change found once; a new `updated` alone, or null = null, is no change."""
    diff = compare(OLD, NEW)
    assert _changes(diff) == [
        ("a/app:gone", "removed", "d3", None, 30, None),
        ("a/app:moved", "repointed", "d4", "d9", 40, 40),
        ("b/x/y:grew", "resized", "d5", "d5", 50, 55),
        ("c/new:1", "added", None, "d8", None, 90),
    ]
    assert diff.changes.schema.equals(CHANGES_SCHEMA)
    repointed = diff.changes.filter(pa.compute.equal(diff.changes["change"], "repointed"))
    assert repointed["old_updated"].to_pylist() == [T1]
    assert repointed["new_updated"].to_pylist() == [T2]


def test_targets_in_error_on_either_side_are_reported_apart() -> None:
    """A target that failed in OLD or NEW is an error row, never added or removed."""
    diff = compare(OLD, NEW)
    assert diff.errors.schema.equals(DIFF_ERRORS_SCHEMA)
    rows = [
        (r["tag"], r["old_error_kind"], r["new_error_kind"], r["old_digest"], r["new_digest"])
        for r in diff.errors.to_pylist()
    ]
    assert sorted(rows, key=str) == sorted(
        [
            ("was-error", "server_error", None, None, "d7"),
            ("was-ok", None, "not_found", "d6", None),
            (None, None, "invalid_target", None, None),
        ],
        key=str,
    )
    assert diff.counts() == {"added": 1, "removed": 1, "repointed": 1, "resized": 1, "errors": 3}


def test_a_snapshot_against_itself_has_no_change() -> None:
    """Comparing a snapshot with itself gives no changes (its errors are still listed)."""
    diff = compare(NEW, NEW)
    assert diff.changes.num_rows == 0
    assert diff.errors.num_rows == 2  # was-ok (not_found) and the invalid target


def test_render_counts_per_namespace_and_lists_changes() -> None:
    """The terminal report has one line per namespace, a total, and one line per change."""
    lines = render(compare(OLD, NEW), listed=2)
    table = [line.split() for line in lines[: lines.index("")]]
    assert table[0] == ["namespace", "added", "removed", "repointed", "resized", "errors"]
    counts = {row[0]: row[1:] for row in table if not row[0].startswith("-")}
    assert counts["a"] == ["0", "1", "1", "0", "0"]
    assert counts["b"] == ["0", "0", "0", "1", "2"]
    assert counts["c"] == ["1", "0", "0", "0", "0"]
    assert counts["(invalid)"] == ["0", "0", "0", "0", "1"]
    assert counts["total"] == ["1", "1", "1", "1", "3"]
    assert "repointed  a/app:moved  d4 -> d9" in lines
    assert "... and 2 more (--out DIR writes them all)" in lines
