"""Every name in an output, in one place: datasets, part files, run file, locks, run ids.

An output directory (``--out``) holds::

    OUT/tags/part-<run id>[-sIofN]-<seq>.parquet          tags rows
    OUT/errors/part-<run id>[-sIofN]-<seq>[.kept].parquet  errors rows (.kept: by --resume)
    OUT/run[-sIofN].json                                  the run file
    OUT/.lock[-sIofN]                                     the lock(s)

``-sIofN`` marks the files of shard I of a run split N ways (``--shard I/N``);
an unsharded run's names carry no mark. A run id is
``YYYYMMDDTHHMMSSZ-xxxxxx`` (:func:`new_run_id`): part names sort by time,
and each process's files are its own. Temporary files are the storage's
business (:func:`crawler.output.storage.temp_name`): a published name
never refers to a half-written file.

:class:`Layout` answers every "where" question for one run (or one shard)
and :class:`~crawler.output.storage.Storage` does every "how"; the sink, the
checkpoint, the report and the runner ask these two and never build a name
or touch a file themselves.

Extending it (a dataset root with hive partitions and a staging prefix,
object storage): subclass :class:`Layout` and override :meth:`dataset_dir`
(where a dataset's parts are written and read), :meth:`run_file` and
:meth:`lock_files`, and pass another :class:`Storage`. The part-name
functions stay as they are, so every reader of names (``--resume``,
counts, temporary-file clean-up) keeps working.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from crawler.output.storage import LocalStorage, Storage, temp_of

__all__ = [
    "DATASETS",
    "KEPT",
    "Layout",
    "PartName",
    "Shard",
    "new_run_id",
    "shard_suffix",
]

#: The two datasets of an output, in the order they are written and read.
DATASETS: tuple[str, str] = ("tags", "errors")
#: The mark of an ``errors`` file that ``--resume`` rewrote without its transient rows.
KEPT = ".kept"

#: ``(index, count)`` of ``--shard I/N``; ``(0, 1)`` for an unsharded run.
Shard = tuple[int, int]

_RUN_ID = r"\d{8}T\d{6}Z-[0-9a-f]+"
_PART_RE = re.compile(
    rf"^part-(?P<run>{_RUN_ID})(?:-s(?P<index>\d+)of(?P<count>\d+))?-(?P<seq>\d+)"
    r"(?P<kept>\.kept)?\.parquet$"
)
_RUN_FILE_RE = re.compile(r"^run(?:-s(?P<index>\d+)of(?P<count>\d+))?\.json$")


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id such as ``20261127T073100Z-3fa9c1``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def shard_suffix(shard: Shard) -> str:
    """``""`` for an unsharded run, else ``-sIofN``: the mark of a shard's files."""
    index, count = shard
    return f"-s{index}of{count}" if count > 1 else ""


def _shard_of(match: re.Match[str]) -> Shard:
    count = match["count"]
    return (int(match["index"]), int(count)) if count else (0, 1)


@dataclass(frozen=True, slots=True)
class PartName:
    """What a part file's name says."""

    run_id: str
    shard: Shard
    seq: int
    kept: bool

    @classmethod
    def parse(cls, name: str) -> PartName | None:
        """The parts of ``name``; None if it is not a part file's name."""
        match = _PART_RE.match(name)
        if match is None:
            return None
        return cls(match["run"], _shard_of(match), int(match["seq"]), match["kept"] is not None)


def part_stem(run_id: str, shard: Shard) -> str:
    """``part-<run id>[-sIofN]``: the common start of one process's part names."""
    return f"part-{run_id}{shard_suffix(shard)}"


def part_file(stem: str, seq: int) -> str:
    """The name of part ``seq`` (from 1) of ``stem``."""
    return f"{stem}-{seq:05d}.parquet"


def kept_name(name: str) -> str:
    """The name ``--resume`` gives the rewrite of part file ``name``."""
    return name.removesuffix(".parquet") + f"{KEPT}.parquet"


def original_of_kept(name: str) -> str | None:
    """The part file that ``name`` (a ``.kept`` rewrite) replaces; None if not a rewrite."""
    suffix = f"{KEPT}.parquet"
    return name.removesuffix(suffix) + ".parquet" if name.endswith(suffix) else None


class Layout:
    """The names of one run's files (or one shard's) in an output rooted at ``root``.

    ``root`` is a path in ``storage`` (a local directory for :class:`LocalStorage`).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        shard: Shard = (0, 1),
        storage: Storage | None = None,
    ) -> None:
        self.root = os.fspath(root)
        self.shard: Shard = shard if shard[1] > 1 else (0, 1)
        self.storage: Storage = storage if storage is not None else LocalStorage()

    def __repr__(self) -> str:
        return f"Layout({self.root!r}, shard={self.shard})"

    # --- where (override these for another arrangement) -------------------
    def dataset_dir(self, dataset: str) -> str:
        """The directory of ``dataset`` (``tags`` or ``errors``)."""
        return self.storage.join(self.root, dataset)

    @property
    def run_file_name(self) -> str:
        """``run.json``, or ``run-sIofN.json`` for one shard of a sharded run."""
        return f"run{shard_suffix(self.shard)}.json"

    def run_file(self) -> str:
        """The path of this run's (this shard's) run file."""
        return self.storage.join(self.root, self.run_file_name)

    def lock_files(self) -> list[tuple[str, bool]]:
        """The lock files to take, in order, each with whether it is exclusive.

        An unsharded run holds ``.lock`` exclusively; a shard holds ``.lock``
        shared (shards of one run coexist; an unsharded run beside them cannot)
        and its own ``.lock-sIofN`` exclusively.
        """
        common = self.storage.join(self.root, ".lock")
        if self.shard[1] == 1:
            return [(common, True)]
        own = self.storage.join(self.root, f".lock{shard_suffix(self.shard)}")
        return [(common, False), (own, True)]

    # --- names ------------------------------------------------------------
    def part_stem(self, run_id: str) -> str:
        """``part-<run id>[-sIofN]`` for a process of this run."""
        return part_stem(run_id, self.shard)

    def is_own(self, name: str) -> bool:
        """Whether ``name`` is a part file of this shard (of any process of the run)."""
        part = PartName.parse(name)
        return part is not None and part.shard == self.shard

    def own_parts(self, dataset: str) -> list[str]:
        """Paths of this shard's published part files of ``dataset``, sorted by name."""
        directory = self.dataset_dir(dataset)
        names = sorted(n for n in self.storage.list(directory) if self.is_own(n))
        return [self.storage.join(directory, n) for n in names]

    def stale_temps(self) -> list[str]:
        """Paths of temporary files a killed process of this shard left behind."""
        found = [
            self.storage.join(self.root, name)
            for name in self.storage.list(self.root)
            if temp_of(name) == self.run_file_name
        ]
        for dataset in DATASETS:
            directory = self.dataset_dir(dataset)
            for name in self.storage.list(directory):
                final = temp_of(name)
                if final is not None and self.is_own(final):
                    found.append(self.storage.join(directory, name))
        return found

    def shards_present(self) -> set[Shard]:
        """The shards of every run whose files are in this output (run files and parts)."""
        found = {
            _shard_of(match)
            for name in self.storage.list(self.root)
            if (match := _RUN_FILE_RE.match(name))
        }
        for dataset in DATASETS:
            for name in self.storage.list(self.dataset_dir(dataset)):
                part = PartName.parse(name)
                if part is not None:
                    found.add(part.shard)
        return found
