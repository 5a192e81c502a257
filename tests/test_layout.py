"""The layout: every name in an output, and what a name says."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from crawler.output.layout import Layout, PartName, kept_name, new_run_id, original_of_kept

RUN = "20260101T000000Z-abcdef"


def test_run_ids_are_what_part_names_are_parsed_with() -> None:
    """A fresh run id makes part names that parse back to it, with seq and shard."""
    run_id = new_run_id(datetime(2026, 11, 27, 7, 31, tzinfo=UTC))
    assert run_id.startswith("20261127T073100Z-")
    layout = Layout("out", (2, 4))
    name = f"{layout.part_stem(run_id)}-00007.parquet"
    assert PartName.parse(name) == PartName(run_id, (2, 4), 7, kept=False)
    assert PartName.parse(kept_name(name)) == PartName(run_id, (2, 4), 7, kept=True)
    assert original_of_kept(kept_name(name)) == name
    assert PartName.parse("part-notarunid-00001.parquet") is None


def test_unsharded_and_sharded_names() -> None:
    """Run file and lock files carry the shard's mark only when the run is sharded."""
    plain, shard = Layout("out"), Layout("out", (1, 2))
    assert plain.run_file() == "out/run.json"
    assert shard.run_file() == "out/run-s1of2.json"
    assert plain.lock_files() == [("out/.lock", True)]
    assert shard.lock_files() == [("out/.lock", False), ("out/.lock-s1of2", True)]
    assert plain.part_stem(RUN) == f"part-{RUN}"
    assert shard.part_stem(RUN) == f"part-{RUN}-s1of2"


def test_own_parts_and_stale_temps_are_this_shards_only(tmp_path: Path) -> None:
    """A shard lists its own parts and leftovers, never another shard's or a stranger's."""
    tags = tmp_path / "tags"
    tags.mkdir()
    for name in (
        f"part-{RUN}-00001.parquet",
        f"part-{RUN}-s0of2-00001.parquet",
        f".part-{RUN}-00002.parquet.0a1b2c3d.tmp",
        f".part-{RUN}-s0of2-00002.parquet.0a1b2c3d.tmp",
        "notes.parquet",
    ):
        (tags / name).write_bytes(b"")
    (tmp_path / ".run.json.12345678.tmp").write_bytes(b"")
    plain = Layout(tmp_path)
    assert [Path(p).name for p in plain.own_parts("tags")] == [f"part-{RUN}-00001.parquet"]
    assert sorted(Path(p).name for p in plain.stale_temps()) == [
        ".part-20260101T000000Z-abcdef-00002.parquet.0a1b2c3d.tmp",
        ".run.json.12345678.tmp",
    ]
    assert plain.shards_present() == {(0, 1), (0, 2)}
