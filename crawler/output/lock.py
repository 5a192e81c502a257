"""One run per output: ``flock`` on lock files inside ``--out``.

The lock is the kernel's, not the file's existence: ``fcntl.flock`` is
released when the holding process dies, however it dies (SIGKILL, OOM,
power loss), so a lock file left behind by a dead run is simply taken over.
The file's content (pid, host, start time) is only there for the message a
second run prints. The file is never deleted: unlinking a locked file would
let a third process lock a new inode while the second still holds the old one.

Which files a run locks is the layout's (:meth:`crawler.output.layout.Layout.lock_files`):
an unsharded run holds ``.lock`` exclusively; a shard holds ``.lock`` shared
and its own ``.lock-sIofN`` exclusively, so the shards of one run share an
output and an unsharded run can never write beside them (nor they beside it).

A lock file is opened without following a symbolic link, and only a
regular file with one link is written to, so a link planted in ``--out``
cannot aim the lock's truncate-and-write at another file.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from crawler.errors import ConfigError
from crawler.output.layout import Layout
from crawler.output.storage import open_nofollow

log = structlog.get_logger("crawler")


class OutputLocked(ConfigError):
    """Another live process holds the output's lock (exit 2)."""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or held) a lock, as written in the lock file."""

    pid: int | None
    host: str | None
    started_at: str | None

    def describe(self) -> str:
        """``pid 123 on host h since 2026-...`` (what is known of it)."""
        parts = [f"pid {self.pid}" if self.pid is not None else "an unknown process"]
        if self.host:
            parts.append(f"on host {self.host}")
        if self.started_at:
            parts.append(f"since {self.started_at}")
        return " ".join(parts)

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        """The holder recorded in a lock file's bytes; None when empty or unreadable."""
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        return cls.of(doc) if isinstance(doc, dict) else None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Holder:
        """The holder a decoded lock record names (fields of the wrong type: unknown)."""
        pid = doc.get("pid")
        return cls(
            pid=pid if isinstance(pid, int) else None,
            host=str(doc["host"]) if doc.get("host") else None,
            started_at=str(doc["started_at"]) if doc.get("started_at") else None,
        )


class OutputLock:
    """A non-blocking lock on ``path`` (exclusive, or shared), held until :meth:`release`."""

    def __init__(self, path: str | os.PathLike[str], *, exclusive: bool = True) -> None:
        self.path = os.fspath(path)
        self.exclusive = exclusive
        self._fd: int | None = None
        self.previous: Holder | None = None
        """The holder recorded by a dead process whose lock was taken over, if any."""

    def acquire(self) -> None:
        """Take the lock or raise :class:`OutputLocked` naming the live holder."""
        fd = open_nofollow(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                raise ConfigError(
                    f"{self.path}: not a plain lock file (a link to another file, or no regular "
                    "file); remove it"
                )
            mode = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Holder.parse(_read_all(fd))
            os.close(fd)
            who = holder.describe() if holder else "another process, or the shards of a run"
            directory = os.path.dirname(self.path) or "."
            raise OutputLocked(
                f"out {directory}: another crawl is writing here ({who}; lock file "
                f"{self.path}); wait for it to finish, or use another --out"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if not self.exclusive:
            return  # shared by several processes: the file names none of them
        self.previous = Holder.parse(_read_all(fd))
        if self.previous is not None:
            log.warning(
                "crawl.stale_lock_taken_over",
                lock=self.path,
                previous=self.previous.describe(),
            )
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps(record) + b"\n", 0)

    def release(self) -> None:
        """Empty the file (a clean end leaves no holder behind) and unlock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self.exclusive:
                os.ftruncate(fd, 0)
        except OSError:
            pass  # a full or read-only disk: the flock is what matters
        finally:
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class RunLock:
    """Every lock a run (or one shard) holds on its output, taken in the layout's order."""

    def __init__(self, layout: Layout) -> None:
        self.locks = [OutputLock(path, exclusive=ex) for path, ex in layout.lock_files()]

    def acquire(self) -> None:
        """Take every lock, or none (raising :class:`OutputLocked` for the first one refused)."""
        taken: list[OutputLock] = []
        try:
            for lock in self.locks:
                lock.acquire()
                taken.append(lock)
        except BaseException:
            for lock in reversed(taken):
                lock.release()
            raise

    def release(self) -> None:
        """Release every lock held."""
        for lock in reversed(self.locks):
            lock.release()


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
