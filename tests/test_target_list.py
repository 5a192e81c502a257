"""The discover command's output: targets files that crawl --targets reads back as they are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawler.output.target_list import TargetListWriter, target_line
from crawler.targets import Target, iter_targets

ITEM = {"digest": "sha256:" + "ab" * 32, "size": 123, "updated": "2025-01-02T03:04:05Z", "id": 9}

_names = st.from_regex(r"[a-z][a-z0-9]{0,5}([._-][a-z0-9]{1,4})?", fullmatch=True)
_repos = st.from_regex(r"[a-z0-9]{1,5}(/[a-z0-9]{1,5}){0,2}", fullmatch=True)
_tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True)
_targets = st.builds(Target, _names, _repos, _tags)


def test_text_and_jsonl_lines() -> None:
    """Text is the target key; JSONL adds digest, size and updated as listed, nothing else."""
    target = Target("ns", "group/app", "v1")
    assert target_line(target, ITEM, "text") == b"ns/group/app:v1\n"
    record = json.loads(target_line(target, ITEM, "jsonl"))
    assert record == {
        "namespace": "ns",
        "repository": "group/app",
        "tag": "v1",
        "digest": ITEM["digest"],
        "size": 123,
        "updated": "2025-01-02T03:04:05Z",
    }
    assert json.loads(target_line(target, {}, "jsonl"))["digest"] is None


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.lists(_targets, max_size=30), st.sampled_from(["text", "jsonl"]))
def test_written_files_read_back_as_the_same_targets(
    tmp_path: Path, targets: list[Target], fmt: str
) -> None:
    """Whatever valid names, a file written in either format reads back, line by line,
    as the same targets with no invalid line."""
    path = tmp_path / f"out.{'txt' if fmt == 'text' else 'jsonl'}"
    with TargetListWriter(str(path), fmt) as writer:
        for target in targets:
            writer.write(target, ITEM)
        writer.commit()
    with iter_targets(str(path)) as reader:
        assert list(reader) == targets


def test_a_file_appears_only_once_committed(tmp_path: Path) -> None:
    """Until commit the lines sit in a hidden temporary file; an abort leaves nothing."""
    path = tmp_path / "targets.txt"
    with TargetListWriter(str(path), "text") as writer:
        writer.write(Target("ns", "repo", "v1"), {})
        assert not path.exists()
        (hidden,) = tmp_path.iterdir()
        assert hidden.name.startswith(".targets.txt.")
    assert list(tmp_path.iterdir()) == []  # left without commit: dropped
    with TargetListWriter(str(path), "text") as writer:
        writer.write(Target("ns", "repo", "v1"), {})
        writer.commit()
    assert path.read_text() == "ns/repo:v1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["targets.txt"]


def test_an_unknown_format_is_refused(tmp_path: Path) -> None:
    """Only text and jsonl exist."""
    with pytest.raises(ValueError, match="format"):
        TargetListWriter(str(tmp_path / "x"), "csv")
