"""``swr-crawler demo``: it replaces only its own output, and ends with the report."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from crawler.cli import cli
from crawler.demo import DEMO_MARK, check_demo_out
from crawler.errors import ConfigError


def test_an_absent_or_empty_folder_is_accepted(tmp_path: Path) -> None:
    """Nothing to lose: the demo may write there."""
    check_demo_out(tmp_path / "absent")
    check_demo_out(tmp_path)


def test_an_earlier_demo_output_is_accepted(tmp_path: Path) -> None:
    """A folder holding the demo's mark and only the demo's names may be replaced."""
    for name in ("tags", "errors"):
        (tmp_path / name).mkdir()
    for name in (DEMO_MARK, "run.json", "targets.txt", "catalogue.txt", "report.html"):
        (tmp_path / name).write_text("x")
    check_demo_out(tmp_path)


@pytest.mark.parametrize(
    "names",
    [
        ["notes.txt"],
        ["tags", "run.json"],  # a real crawl's output: no demo mark
        [DEMO_MARK, "run.json", "precious.parquet"],
    ],
)
def test_anything_else_is_refused_and_named(tmp_path: Path, names: list[str]) -> None:
    """A file the demo did not write (or a folder without its mark) is refused by name."""
    for name in names:
        (tmp_path / name).write_text("x")
    with pytest.raises(ConfigError, match="did not write") as raised:
        check_demo_out(tmp_path)
    assert names[-1] in str(raised.value)


def test_demo_refuses_a_real_run_and_deletes_nothing(tmp_path: Path) -> None:
    """demo --out on a real crawl's output: exit 2, one line, every file still there."""
    (tmp_path / "tags").mkdir()
    (tmp_path / "tags" / "part-1.parquet").write_bytes(b"PAR1")
    (tmp_path / "run.json").write_text("{}")
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 2
    assert "did not write" in result.output
    assert (tmp_path / "tags" / "part-1.parquet").read_bytes() == b"PAR1"
    assert (tmp_path / "run.json").read_text() == "{}"


@pytest.mark.slow
def test_demo_runs_twice_and_ends_with_a_realistic_report(tmp_path: Path) -> None:
    """The demo crawls its sandbox, ends with the report and an HTML page; sizes are
    realistic (none 0, none near 2^63); a second demo into the same folder works."""
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--targets", "300", "--no-progress", "--rate", "0"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "Namespaces (by bytes)" in first.output
    assert "Errors by kind" in first.output
    assert (out / "report.html").read_text().count("<svg") == 3
    smallest, largest = duckdb.sql(
        f"SELECT min(size), max(size) FROM read_parquet('{out}/tags/*.parquet')"
    ).fetchone() or (None, None)
    assert smallest is not None
    assert smallest > 0
    assert largest is not None
    assert largest < 2**40
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/tags/*.parquet')").fetchone()
    assert rows == (300,)
