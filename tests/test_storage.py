"""Local storage: whole-or-nothing writes, never through a planted symbolic link."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from crawler.errors import ConfigError
from crawler.output.storage import AtomicFile, LocalStorage, temp_of, write_atomic


def test_write_atomic_replaces_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """The new content replaces the old and no temporary file stays behind."""
    target = tmp_path / "run.json"
    target.write_text("old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_a_discarded_file_leaves_the_old_content(tmp_path: Path) -> None:
    """An exception while writing keeps the published file as it was, and removes the temp."""
    target = tmp_path / "run.json"
    target.write_text("old")

    def write_then_fail() -> None:
        with AtomicFile(target) as file:
            file.stream.write(b"half")
            raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_private_files_are_created_0600(tmp_path: Path) -> None:
    """mode=0o600 holds from creation: the published file is readable by its owner only."""
    target = tmp_path / "token.json"
    write_atomic(target, b"secret", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_links_at_old_and_new_temporary_names_are_never_followed(tmp_path: Path) -> None:
    """A symlink planted at the temp name (old fixed form) is left alone; its victim untouched."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".run.json.tmp").symlink_to(victim)
    write_atomic(out / "run.json", b"{}")
    assert victim.read_text() == "precious"
    assert (out / "run.json").read_bytes() == b"{}"
    assert not (out / "run.json").is_symlink()


def test_reading_through_a_symlink_is_refused(tmp_path: Path) -> None:
    """open_input on a symlink is a one-line ConfigError, not a read of the link's target."""
    (tmp_path / "secret").write_text("x")
    (tmp_path / "run.json").symlink_to(tmp_path / "secret")
    with pytest.raises(ConfigError, match="symbolic link"):
        LocalStorage().read_bytes(str(tmp_path / "run.json"))


def test_make_dirs_refuses_a_link_or_a_file(tmp_path: Path) -> None:
    """A dataset directory that is a symlink, or a plain file, is refused with its name."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "tags").symlink_to(elsewhere)
    (tmp_path / "errors").write_text("a file")
    storage = LocalStorage()
    with pytest.raises(ConfigError, match="tags: is a symbolic link"):
        storage.make_dirs(str(tmp_path / "tags"))
    with pytest.raises(ConfigError, match="errors: is not a directory"):
        storage.make_dirs(str(tmp_path / "errors"))
    with pytest.raises(ConfigError, match="errors: is not a directory"):
        storage.list(str(tmp_path / "errors"))
    storage.make_dirs(str(tmp_path / "new" / "tags"))
    assert (tmp_path / "new" / "tags").is_dir()


def test_temp_of_recognises_temporary_names_only() -> None:
    """temp_of maps a temporary name (current and earlier forms) back to its final name."""
    assert temp_of(".part-r-00001.parquet.0a1b2c3d.tmp") == "part-r-00001.parquet"
    assert temp_of(".run.json.tmp") == "run.json"
    assert temp_of("part-r-00001.parquet") is None
    assert temp_of("run.json.tmp") is None


def test_the_temporary_file_is_not_group_or_world_readable_when_private(tmp_path: Path) -> None:
    """While a private file is being written, its temporary file is 0600 already."""
    file = AtomicFile(tmp_path / "token.json", mode=0o600)
    try:
        assert stat.S_IMODE(os.stat(file.tmp).st_mode) == 0o600
    finally:
        file.discard()
