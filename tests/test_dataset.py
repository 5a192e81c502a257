"""crawl --dataset: sandbox crawls as hive partitions, read as one table, replaced per date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from crawler.cli import cli
from crawler.config import build_config
from crawler.errors import ConfigError
from crawler.run.runner import RunResult
from tests.e2e_helpers import crawl_snapshot

pytestmark = pytest.mark.anyio

SMALL = {"seed": 21, "namespaces": 2, "repos_per_namespace": 3, "tags_per_repo": 8}
Digests = dict[str, str]


async def crawl_day(
    root: Path, day: str, generation: int, **settings: Any
) -> tuple[RunResult | None, Digests]:
    """Crawl every tag of catalogue ``generation`` as the ``day`` snapshot of ``root``."""
    return await crawl_snapshot(
        SMALL, str(root), day, generation, targets_dir=root.parent, **settings
    )


def by_date_duckdb(root: Path) -> dict[str, Digests]:
    rows = duckdb.sql(
        f"SELECT CAST(snapshot_date AS VARCHAR), namespace || '/' || repository || ':' || tag, "
        f"digest FROM read_parquet('{root}/tags/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    out: dict[str, Digests] = {}
    for day, target, digest in rows:
        assert target not in out.setdefault(day, {}), (day, target)
        out[day][target] = digest
    return out


def by_date_pyarrow(root: Path) -> dict[str, Digests]:
    table = ds.dataset(root / "tags", format="parquet", partitioning="hive").to_table(
        columns=["snapshot_date", "namespace", "repository", "tag", "digest"]
    )
    out: dict[str, Digests] = {}
    for r in table.to_pylist():
        out.setdefault(str(r["snapshot_date"]), {})[
            f"{r['namespace']}/{r['repository']}:{r['tag']}"
        ] = r["digest"]
    return out


async def test_two_days_read_as_one_table_and_diff_finds_the_changes(tmp_path: Path) -> None:
    """Day 1 and day 2 (catalogue changed) read as one table; diff ROOT@d1 ROOT@d2 is exact."""
    root = tmp_path / "swr"
    first, day1 = await crawl_day(root, "2026-11-01", 0)
    second, day2 = await crawl_day(root, "2026-11-02", 1)
    assert first is not None
    assert first.exit_code == 0
    assert second is not None
    assert second.exit_code == 0

    expected = {"2026-11-01": day1, "2026-11-02": day2}
    assert by_date_duckdb(root) == expected
    assert by_date_pyarrow(root) == expected
    for part in (root / "tags").glob("*/*.parquet"):
        assert "snapshot_date" not in pq.read_schema(part).names
    assert sorted(p.name for p in (root / "runs").iterdir()) == [
        "snapshot_date=2026-11-01",
        "snapshot_date=2026-11-02",
    ]
    assert not list((root / "_staging").glob("snapshot_date=*"))  # published, staging gone

    result = CliRunner().invoke(
        cli, ["diff", f"{root}@2026-11-01", f"{root}@2026-11-02", "--out", str(tmp_path / "d")]
    )
    assert result.exit_code == 0, result.output
    got = duckdb.sql(
        f"SELECT namespace || '/' || repository || ':' || tag, change "
        f"FROM '{tmp_path}/d/changes.parquet'"
    ).fetchall()
    want = {(k, "added") for k in day2.keys() - day1.keys()}
    want |= {(k, "removed") for k in day1.keys() - day2.keys()}
    want |= {(k, "repointed") for k in day1.keys() & day2.keys() if day1[k] != day2[k]}
    assert set(got) == want
    assert {change for _, change in want} == {"added", "removed", "repointed"}


async def test_a_rerun_replaces_its_date_and_a_failed_one_leaves_it_whole(tmp_path: Path) -> None:
    """A failed re-run leaves the date's old rows; its --resume completes and replaces them."""
    root = tmp_path / "swr"
    await crawl_day(root, "2026-11-01", 0)
    _, old = await crawl_day(root, "2026-11-02", 1)

    # A re-run whose credential is refused stops incomplete: the old rows stay, whole.
    stopped, new = await crawl_day(root, "2026-11-02", 2, token="wrong")
    assert stopped is not None
    assert not stopped.report.complete
    assert by_date_duckdb(root)["2026-11-02"] == old
    assert list((root / "_staging").glob("snapshot_date=2026-11-02"))

    resumed, new = await crawl_day(root, "2026-11-02", 2, resume=True)
    assert resumed is not None
    assert resumed.report.complete
    tables = by_date_duckdb(root)
    assert tables["2026-11-02"] == new != old
    assert len(tables["2026-11-01"]) > 0

    # Once published, --resume for that date does nothing more.
    again, _ = await crawl_day(root, "2026-11-02", 2, resume=True)
    assert again is None
    assert by_date_duckdb(root)["2026-11-02"] == new


async def test_published_files_are_few_and_sized_by_the_settings(tmp_path: Path) -> None:
    """Many small staged files become files of --file-rows rows in --row-group-rows groups."""
    root = tmp_path / "swr"
    result, day = await crawl_day(
        root, "2026-11-01", 0, commit_seconds=0.001, file_rows=20, row_group_rows=8
    )
    assert result is not None
    assert result.report.complete
    parts = sorted((root / "tags" / "snapshot_date=2026-11-01").glob("*.parquet"))
    rows = [pq.read_metadata(p).num_rows for p in parts]
    assert sum(rows) == len(day)
    assert rows == [20] * (len(day) // 20) + ([len(day) % 20] if len(day) % 20 else [])
    for part, n in zip(parts, rows, strict=True):
        meta = pq.read_metadata(part)
        groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert groups == [8] * (n // 8) + ([n % 8] if n % 8 else []), part.name


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"out": "o", "dataset": "d"}, "give --out DIR or --dataset ROOT"),
        ({}, "give --out DIR or --dataset ROOT"),
        ({"out": "o", "snapshot_date": "2026-11-01"}, "only applies with --dataset"),
        ({"dataset": "d", "snapshot_date": "2026-13-01"}, "no such date"),
        ({"dataset": "d", "snapshot_date": "yesterday"}, "a snapshot date is YYYY-MM-DD"),
        ({"out": "gs://bucket/run"}, "a local directory or s3://bucket/prefix"),
    ],
)
def test_dataset_flags_are_checked(flags: dict[str, str], message: str) -> None:
    """--out xor --dataset; --snapshot-date only with --dataset, and a real YYYY-MM-DD."""
    with pytest.raises(ConfigError, match=message):
        build_config({"endpoint": "http://127.0.0.1:1", **flags}, environ={})


def test_publication_keeps_only_the_newest_run_whoever_publishes(tmp_path: Path) -> None:
    """Each publisher deletes the runs older than the newest present, its own if it lost."""
    from crawler.output.commit import _replace

    older, newer = "20261102T010000Z-ffffff", "20261102T020000Z-000000"
    same_second = "20261102T020000Z-aaaaaa"
    fs = pafs.LocalFileSystem()
    for run in (older, newer):
        (tmp_path / f"part-{run}-00001.parquet").write_bytes(b"x")
    (tmp_path / f"part-{older}-s0of2-00001.parquet").write_bytes(b"x")

    # The older run publishes after the newer one: it removes its own files.
    assert _replace(fs, str(tmp_path), (0, 1), older) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"part-{newer}-00001.parquet"]

    # A re-run started in the same second as the last run replaces it.
    (tmp_path / f"part-{same_second}-00001.parquet").write_bytes(b"x")
    assert _replace(fs, str(tmp_path), (0, 1), same_second) == 1
    assert [p.name for p in tmp_path.iterdir()] == [f"part-{same_second}-00001.parquet"]

    # Shard 1/2 only ever touches shard 1/2's files.
    (tmp_path / f"part-{older}-s1of2-00001.parquet").write_bytes(b"x")
    assert _replace(fs, str(tmp_path), (1, 2), older) == 0


async def test_a_publication_cut_short_is_finished_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the new files moved in, before the old were deleted: the next run finishes."""
    import crawler.output.commit as commit_module

    root = tmp_path / "swr"
    _, old = await crawl_day(root, "2026-11-02", 0)

    def crash(*args: Any) -> int:
        raise OSError("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(commit_module, "_replace", crash)
        with pytest.raises(OSError, match="power cut"):
            await crawl_day(root, "2026-11-02", 1)
    assert list((root / "_staging").glob("snapshot_date=2026-11-02/commit.json"))

    finished, new = await crawl_day(root, "2026-11-02", 1, resume=True)
    assert finished is None  # the commit was finished, and the date is published
    assert by_date_duckdb(root)["2026-11-02"] == new != old
    assert not list((root / "_staging").glob("snapshot_date=*"))
    assert len(list((root / "runs" / "snapshot_date=2026-11-02").iterdir())) == 2
