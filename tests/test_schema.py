"""Schema versions: each only adds nullable columns, and old and new files read as one table."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from crawler.output.normalize import tag_row
from crawler.output.schema import SCHEMA_VERSION, TAGS_SCHEMA, tags_schema, with_metadata

FETCHED_AT = datetime(2026, 11, 27, 7, 31, tzinfo=UTC)
VERSIONS = [str(v) for v in range(1, int(SCHEMA_VERSION) + 1)]


@pytest.mark.parametrize("version", VERSIONS[1:])
def test_a_version_only_appends_nullable_columns(version: str) -> None:
    """Version N is version N-1 with nullable columns appended: nothing removed or retyped."""
    old, new = tags_schema(str(int(version) - 1)), tags_schema(version)
    assert len(new) > len(old)
    assert new.names[: len(old)] == old.names
    assert all(new.field(i).equals(old.field(i)) for i in range(len(old)))
    assert all(new.field(i).nullable for i in range(len(old), len(new)))


def test_the_current_version_is_what_the_sink_writes() -> None:
    """TAGS_SCHEMA is the newest version's schema; an unknown version is refused."""
    assert tags_schema(SCHEMA_VERSION).equals(TAGS_SCHEMA)
    with pytest.raises(ValueError, match="no tags schema version"):
        tags_schema(str(int(SCHEMA_VERSION) + 1))


def _write(path: Path, version: str, bodies: list[dict[str, object]]) -> None:
    """What crawler version ``version`` would have written: its schema's columns of each row."""
    schema = tags_schema(version)
    rows = [
        tag_row("ns", "repo", str(body["tag"]), json.dumps(body).encode(), FETCHED_AT, 1)._asdict()
        for body in bodies
    ]
    table = pa.Table.from_pylist(rows, schema=TAGS_SCHEMA).select(schema.names)
    path.parent.mkdir(parents=True)
    pq.write_table(table.cast(with_metadata(schema, "r")), path)


def test_v1_and_v2_snapshots_read_as_one_table(tmp_path: Path) -> None:
    """A v1 and a v2 snapshot read together (DuckDB union_by_name, pyarrow unify_schemas)."""
    root = tmp_path / "tags"
    _write(root / "snapshot_date=2026-11-01" / "old.parquet", "1", [{"tag": "a", "size": 1}])
    _write(
        root / "snapshot_date=2026-11-02" / "new.parquet",
        "2",
        [{"tag": "a", "size": 2, "scanned": None}, {"tag": "b", "size": 3}],
    )
    expected = [
        ("2026-11-01", "a", 1, None),
        ("2026-11-02", "a", 2, '{"scanned":null}'),
        ("2026-11-02", "b", 3, None),
    ]

    con = duckdb.connect()
    got = con.execute(
        "SELECT CAST(snapshot_date AS VARCHAR), tag, size, extra FROM read_parquet(?, "
        "hive_partitioning=true, union_by_name=true) ORDER BY ALL",
        [f"{root}/**/*.parquet"],
    ).fetchall()
    assert got == expected

    files = sorted(root.glob("*/*.parquet"))
    partition = pa.schema([pa.field("snapshot_date", pa.date32())])
    schema = pa.unify_schemas([*(pq.read_schema(f) for f in files), partition])
    partitioning = ds.partitioning(partition, flavor="hive")
    dataset = ds.dataset(root, format="parquet", partitioning=partitioning, schema=schema)
    table = dataset.to_table(columns=["snapshot_date", "tag", "size", "extra"])
    rows = sorted(
        (str(r["snapshot_date"]), r["tag"], r["size"], r["extra"]) for r in table.to_pylist()
    )
    assert rows == expected
