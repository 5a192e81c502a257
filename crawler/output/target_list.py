"""``swr-crawler discover``'s output: the targets it listed, as a targets file.

``text``: one ``namespace/repository:tag`` a line. ``jsonl``: one object a line
with ``namespace``, ``repository``, ``tag`` and the list's ``digest``, ``size``
and ``updated`` (as the service sent them). Both are read back by ``crawl
--targets`` as they are (the JSONL reader ignores the extra keys).

A file is written under a hidden temporary name and renamed once complete, so
a listing that failed or was stopped never leaves a partial file that looks
whole; standard output is written as it goes.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Final

import orjson

from crawler.output.storage import AtomicFile
from crawler.targets import Target

FORMATS: Final = ("text", "jsonl")
#: The list-item fields a JSONL line carries besides the target's names.
JSONL_FIELDS: Final = ("digest", "size", "updated")


def target_line(target: Target, item: Mapping[str, object], fmt: str) -> bytes:
    """One line of the output (newline included) for a listed tag."""
    if fmt == "text":
        return f"{target.key}\n".encode()
    record: dict[str, object] = {
        "namespace": target.namespace,
        "repository": target.repository,
        "tag": target.tag,
    }
    for name in JSONL_FIELDS:
        record[name] = item.get(name)
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


class TargetListWriter:
    """Writes listed targets to a file (published whole at :meth:`commit`) or to stdout."""

    def __init__(self, output: str, fmt: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)} (got {fmt!r})")
        self._fmt = fmt
        self._atomic: AtomicFile | None = None
        self.lines = 0
        if output == "-":
            self._file: IO[bytes] = sys.stdout.buffer
        else:
            self._atomic = AtomicFile(Path(output))
            self._file = self._atomic.stream

    def write(self, target: Target, item: Mapping[str, object]) -> None:
        """Add one listed tag."""
        self._file.write(target_line(target, item, self._fmt))
        self.lines += 1

    def commit(self) -> None:
        """The listing is complete: make the file visible under its name."""
        self._end(publish=True)

    def abort(self) -> None:
        """The listing failed: drop the partial file (standard output keeps what it got)."""
        self._end(publish=False)

    def _end(self, *, publish: bool) -> None:
        if self._atomic is None:
            self._file.flush()
            return
        if publish:
            self._atomic.commit()
        else:
            self._atomic.discard()
        self._atomic = None

    def __enter__(self) -> TargetListWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._atomic is not None:
            self.abort()
