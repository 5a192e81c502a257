"""The README's "Feeding a warehouse" commands, run as written against a real dataset."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.test_dataset import crawl_day
from tests.test_schema import _write as write_version

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_block(marker: str, lang: str) -> str:
    """The README's first ``lang`` code block that holds ``marker`` or comes after it."""
    text = README.read_text()
    at = text.index(marker)
    for match in re.finditer(rf"```{lang}\n(.*?)```", text, re.S):
        if match.end() > at:
            return match[1]
    raise AssertionError(f"no {lang} block at or after {marker!r}")


async def two_versions(root: Path) -> dict[str, int]:
    """A dataset with a snapshot written by schema 1 and one crawled now; rows by date."""
    write_version(
        root / "tags" / "snapshot_date=2026-10-31" / "part-20261031T000000Z-aaaaaa-00001.parquet",
        "1",
        [{"tag": "old", "size": 1}],
    )
    _, digests = await crawl_day(root, "2026-11-01", 0)
    return {"2026-10-31": 1, "2026-11-01": len(digests)}


@pytest.mark.anyio
async def test_readme_duckdb_query_reads_every_snapshot_and_version(tmp_path: Path) -> None:
    """The README's DuckDB query, as written, counts every snapshot of two schema versions."""
    root = tmp_path / "swr"
    expected = await two_versions(root)
    sql = readme_block("DuckDB (tested", "sql").replace("ROOT", str(root))
    rows = duckdb.sql(sql).fetchall()
    got: dict[str, int] = {}
    for day, _namespace, tags, _bytes in rows:
        got[str(day)] = got.get(str(day), 0) + tags
    assert got == expected


def _java() -> str | None:
    return shutil.which("java")


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One small local Spark session (loopback only, no UI) for this module."""
    if _java() is None:
        pytest.skip("no Java runtime (java not on PATH): pyspark cannot start")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("swr-crawler-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("spark-warehouse")))
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.mark.slow
@pytest.mark.anyio
async def test_readme_spark_reading_and_table(tmp_path: Path, spark: Any) -> None:
    """Spark reads the dataset (two schema versions) as the README says, and its DDL works."""
    root = tmp_path / "swr"
    expected = await two_versions(root)
    tags = spark.read.option("mergeSchema", "true").parquet(str(root / "tags"))
    counts = {str(r[0]): r[1] for r in tags.groupBy("snapshot_date").count().collect()}
    assert counts == expected
    assert "extra" in tags.columns
    assert "snapshot_date" in tags.columns

    for statement in readme_block("-- Spark SQL", "sql").split(";"):
        statement = re.sub(r"--[^\n]*", "", statement).strip()
        if statement:
            spark.sql(statement.replace("ROOT", str(root)))
    rows = spark.sql("SELECT snapshot_date, count(*) FROM swr_tags GROUP BY 1").collect()
    assert {str(r[0]): r[1] for r in rows} == expected
    spark.sql("DROP TABLE swr_tags")
