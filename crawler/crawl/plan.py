"""Planned crawls of a targets file (``--mode auto``): the wanted tags, grouped by repository.

A repository with ``k`` wanted tags costs ``k`` ShowRepoTag requests one by
one, or ``ceil(num_images / 1000)`` tag-list pages (at least one) listed:
:func:`should_list` picks the cheaper, and one by one on a tie or when the
repository's size is unknown.

Grouping needs the whole file: a repository's last target may be its last
line. Held in memory, a million targets would take ~100 MB of strings, so
:class:`Spill` writes them to disk in sorted runs (:data:`RUN_KEYS` keys, ~10 MB
while one is sorted), merges the runs into one sorted file and hands out one
:class:`Group` per repository, in order, with its count; a group's tags are read
back from that file when wanted. Memory stays bounded by one run whatever the
file's size or shape (a single repository of a million wanted tags included).
Targets are validated names (ASCII, no tab or newline), so a line
``namespace\\trepository\\ttag`` sorts exactly like the tuple.
"""

from __future__ import annotations

import heapq
import itertools
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from crawler.crawl.paging import PAGE_SIZE
from crawler.targets import SeenSet, Target

#: Targets sorted in memory before a run is written out.
RUN_KEYS = 100_000
#: Prefix of the spill directory (hidden, so no reader of ``--out`` trips over it).
SPILL_PREFIX = ".plan-"

_BUFFER = 1 << 16


def list_pages(num_images: int, page_size: int = PAGE_SIZE) -> int:
    """Tag-list pages needed for a repository of ``num_images`` tags (an empty one: 1)."""
    return max(1, -(-num_images // page_size))


def should_list(wanted: int, num_images: int | None, page_size: int = PAGE_SIZE) -> bool:
    """Whether listing a repository costs fewer requests than fetching ``wanted`` tags.

    Unknown size (the repository was not in ListRepoDetails): fetch one by one,
    so a missing repository still ends in ``not_found`` rows.
    """
    return num_images is not None and list_pages(num_images, page_size) < wanted


@dataclass(frozen=True, slots=True)
class Group:
    """The wanted tags of one repository: a range of the merged spill file."""

    namespace: str
    repository: str
    count: int
    """Distinct wanted tags."""
    path: Path
    start: int
    end: int

    def tags(self) -> Iterator[str]:
        """The wanted tags, in sorted order, read back from disk."""
        with self.path.open("rb", buffering=_BUFFER) as file:
            file.seek(self.start)
            left = self.end - self.start
            for line in file:
                left -= len(line)
                yield line.rstrip(b"\n").rsplit(b"\t", 1)[1].decode()
                if left <= 0:
                    return

    def targets(self) -> Iterator[Target]:
        """The wanted tags as targets."""
        for tag in self.tags():
            yield Target(self.namespace, self.repository, tag)


class Spill:
    """Targets in, one :class:`Group` per repository out, in sorted order, in bounded memory.

    Synchronous file I/O: run it in a worker thread. Use as a context manager;
    the spill directory (created under ``parent``) is removed on exit.
    """

    def __init__(self, parent: Path, *, tag: str = "", run_keys: int = RUN_KEYS) -> None:
        """``tag`` tells this run's spill from another shard's in the same ``parent``;
        a spill left by a killed run with the same tag is removed first."""
        prefix = f"{SPILL_PREFIX}{tag}-"
        for stale in parent.glob(f"{prefix}*"):
            shutil.rmtree(stale, ignore_errors=True)
        self._dir = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        self._run_keys = run_keys
        self._pending: list[bytes] = []
        self._runs: list[Path] = []
        self.targets = 0
        """Targets added."""

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the spill files."""
        shutil.rmtree(self._dir, ignore_errors=True)

    def add(self, target: Target) -> None:
        """Take one (deduplicated) target."""
        self._pending.append(f"{target.namespace}\t{target.repository}\t{target.tag}\n".encode())
        self.targets += 1
        if len(self._pending) >= self._run_keys:
            self._write_run()

    def _write_run(self) -> None:
        self._pending.sort()
        path = self._dir / f"run-{len(self._runs):06d}"
        with path.open("wb", buffering=_BUFFER) as file:
            file.writelines(self._pending)
        self._runs.append(path)
        self._pending = []

    def groups(self) -> Iterator[Group]:
        """Every repository's wanted tags, sorted by (namespace, repository); call once."""
        if self._pending or not self._runs:
            self._write_run()
        merged = self._dir / "merged"
        with ExitStack() as stack, merged.open("wb", buffering=_BUFFER) as out:
            files: list[IO[bytes]] = [
                stack.enter_context(run.open("rb", buffering=_BUFFER)) for run in self._runs
            ]
            previous = None
            for line in heapq.merge(*files):
                if line != previous:  # a duplicate would be two rows for one target
                    out.write(line)
                    previous = line
        for run in self._runs:
            run.unlink()
        self._runs = []
        yield from _scan(merged)


def _scan(path: Path) -> Iterator[Group]:
    """Cut the sorted file into groups of one repository each."""
    with path.open("rb", buffering=_BUFFER) as file:
        offset = 0
        keyed = ((_repository_key(line), line) for line in file)
        for key, lines in itertools.groupby(keyed, key=lambda pair: pair[0]):
            start = offset
            count = 0
            for _, line in lines:
                offset += len(line)
                count += 1
            namespace, repository = key.decode().split("\t")
            yield Group(namespace, repository, count, path, start, offset)


def _repository_key(line: bytes) -> bytes:
    return line[: line.rindex(b"\t")]


class WantedTags:
    """The wanted tags of one repository being listed: "is it wanted, and not yet taken?".

    A :class:`~crawler.targets.SeenSet` of the wanted tags, made for their count
    (so it never grows and a tag's slot stays put), with one mark byte per slot:
    under 40 bytes a wanted tag, whatever the repository's size. Two tags with
    the same 64-bit hash would count as one (odds as for the dedup table).
    """

    __slots__ = ("_marks", "_wanted", "taken")

    def __init__(self, tags: Iterable[str], count: int) -> None:
        """``tags``: the wanted tags (distinct), ``count`` of them."""
        self._wanted = SeenSet(count)
        for tag in tags:
            self._wanted.add(tag)
        self._marks = bytearray(self._wanted.slots)
        self.taken = 0
        """Wanted tags taken so far."""

    def take(self, tag: str) -> bool:
        """True the first time a wanted ``tag`` is offered; False if unwanted or taken."""
        slot = self._wanted.slot(tag)
        if slot is None or self._marks[slot]:
            return False
        self._marks[slot] = 1
        self.taken += 1
        return True

    @property
    def nbytes(self) -> int:
        """Bytes held by the table and the marks."""
        return self._wanted.nbytes + len(self._marks)

    def untaken(self, tags: Iterable[str]) -> Iterator[str]:
        """Those of ``tags`` (the wanted ones again) not taken yet; takes them."""
        return (tag for tag in tags if self.take(tag))
