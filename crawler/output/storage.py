"""Where output files live, and the one way a file is made visible: whole or not at all.

Everything the crawler writes into an output (Parquet parts, the run file, a
rewritten ``errors`` file) and its IAM token cache goes through
:class:`LocalStorage`; :class:`crawler.output.layout.Layout` says *which*
names, this module says *how* a name is written, read, listed and removed.

:class:`Storage` is the interface the sink, the checkpoint and the report
use; :class:`LocalStorage` implements it for a local (or mounted) file
system. An object store (``s3://`` through ``pyarrow.fs.S3FileSystem``)
implements the same methods: there an object appears under its final key
only when its upload completes, so :meth:`Storage.create` needs no
temporary name at all.

How a local file is published (:class:`AtomicFile`)::

    dir/.NAME.<random>.tmp   created O_CREAT|O_EXCL|O_NOFOLLOW, mode 0644 (or 0600)
      write, flush, fsync
    rename to dir/NAME        (atomic; replaces an older NAME)
    fsync dir                 (the rename survives a power cut)

A reader, or a crash at any moment, never sees a half-written ``NAME``.
The temporary name is fresh every time and created exclusively, so a
symbolic link (or any file) that someone planted in the directory is never
opened, truncated or written through; and two processes that publish the
same name (two runs sharing a token cache) never write into one temporary
file. Reads and the lock file refuse symbolic links too (``O_NOFOLLOW``).
:func:`temp_of` tells a leftover temporary file (a process killed while
writing) by its name, so ``--resume`` can remove it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from typing import Any, BinaryIO, Protocol, Self

from crawler.errors import ConfigError

__all__ = [
    "S3_SCHEME",
    "AtomicFile",
    "LocalStorage",
    "Storage",
    "fsync_dir",
    "is_object_store",
    "open_nofollow",
    "temp_of",
    "write_atomic",
]

S3_SCHEME = "s3://"
TMP_SUFFIX = ".tmp"
#: Also the fixed ``.NAME.tmp`` of earlier versions, so --resume clears their leftovers too.
_TMP_RE = re.compile(r"^\.(?P<final>.+?)(?:\.[0-9a-f]{8})?\.tmp$")


def is_object_store(location: str) -> bool:
    """Whether ``location`` is an ``s3://`` URI (see :mod:`crawler.output.objectstore`)."""
    return location.startswith(S3_SCHEME)


def temp_name(final_name: str) -> str:
    """A fresh hidden temporary name for ``final_name`` (no ``*.parquet`` glob matches it)."""
    return f".{final_name}.{secrets.token_hex(4)}{TMP_SUFFIX}"


def temp_of(name: str) -> str | None:
    """The final name a temporary file ``name`` was being written for; None if it is none."""
    match = _TMP_RE.match(name)
    return match["final"] if match else None


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_nofollow(path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
    """``os.open`` that never follows a symbolic link at ``path`` (ELOOP: a clear ConfigError)."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(
                f"{os.fspath(path)}: is a symbolic link; the crawler never follows one "
                "inside its output: remove it"
            ) from None
        raise


class PendingFile(Protocol):
    """A file being written that becomes visible under its name only on :meth:`commit`.

    :class:`AtomicFile` locally; :class:`crawler.output.objectstore.ObjectFile` on S3.
    Both inherit the context manager: commit on success, discard on an exception.
    """

    stream: Any
    """The binary stream to write to (Parquet writers take it as is)."""

    def commit(self) -> None:
        """Publish the file under its final name, whole."""
        ...

    def discard(self) -> None:
        """Drop the file; its final name is untouched."""
        ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


class AtomicFile(PendingFile):
    """A file being written under a hidden temporary name until :meth:`commit` publishes it.

    :attr:`stream` is a binary file object (Parquet writers take it as is).
    Use it as a context manager (commit on success, discard on an exception)
    or call :meth:`commit` / :meth:`discard` yourself, from one thread.
    """

    def __init__(self, path: str | os.PathLike[str], *, mode: int = 0o644) -> None:
        self.path = os.fspath(path)
        directory, name = os.path.split(self.path)
        self.directory = directory or "."
        self.tmp = os.path.join(self.directory, temp_name(name))
        fd = open_nofollow(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        self.stream: BinaryIO = os.fdopen(fd, "wb")

    def commit(self) -> None:
        """Flush, fsync, rename to the final name and fsync the directory."""
        try:
            self.stream.flush()
            os.fsync(self.stream.fileno())
            self.stream.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()  # a full disk leaves no stray temporary file
            raise
        fsync_dir(self.directory)

    def discard(self) -> None:
        """Close and remove the temporary file; the final name is untouched."""
        # Closing flushes; on a full disk that fails, and the file goes anyway.
        with contextlib.suppress(OSError):
            self.stream.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` whole or not at all (see :class:`AtomicFile`)."""
    with AtomicFile(path, mode=mode) as file:
        file.stream.write(data)


class Storage(Protocol):
    """The file operations an output needs. Paths are ``/``-separated strings.

    Blocking: call from a worker thread when on the event loop.
    """

    def join(self, *parts: str) -> str:
        """``parts`` joined with ``/``."""
        ...

    def make_dirs(self, path: str) -> None:
        """Create directory ``path`` (and parents); a file or link there is a ConfigError."""
        ...

    def list(self, directory: str) -> list[str]:
        """Names in ``directory``; [] if it does not exist; ConfigError if it is no directory."""
        ...

    def check_dir(self, path: str) -> None:
        """ConfigError unless ``path`` is absent or a directory of its own (no link to one)."""
        ...

    def exists(self, path: str) -> bool:
        """Whether anything is at ``path``."""
        ...

    def read_bytes(self, path: str) -> bytes:
        """The whole content of ``path`` (FileNotFoundError if absent)."""
        ...

    def open_input(self, path: str) -> BinaryIO:
        """``path`` opened for reading (pyarrow's readers take the file object)."""
        ...

    def create(self, path: str) -> PendingFile:
        """A new file that becomes visible at ``path`` only when committed."""
        ...

    def delete(self, path: str) -> None:
        """Remove ``path`` durably (absent already is fine)."""
        ...


class LocalStorage:
    """:class:`Storage` on a local file system; see the module docstring."""

    def join(self, *parts: str) -> str:
        """``parts`` joined with the OS separator."""
        return os.path.join(*parts)

    def make_dirs(self, path: str) -> None:
        """Create ``path`` (and parents); refuse a symbolic link or a file there."""
        try:
            os.makedirs(path, exist_ok=True)
        except FileExistsError:
            pass  # a file there: said below
        except NotADirectoryError:
            raise ConfigError(f"{path}: a parent of it is not a directory") from None
        self.check_dir(path)

    def check_dir(self, path: str) -> None:
        """Refuse a symbolic link or a file at ``path`` (absent is fine)."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(info.st_mode):
            raise ConfigError(
                f"{path}: is a symbolic link; the crawler never follows one inside its "
                "output: remove it"
            )
        if not stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"{path}: is not a directory; move it away")

    def list(self, directory: str) -> list[str]:
        """Names in ``directory`` ([] when it does not exist)."""
        try:
            return os.listdir(directory)
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            raise ConfigError(f"{directory}: is not a directory; move it away") from None

    def exists(self, path: str) -> bool:
        """Whether anything (a link too) is at ``path``."""
        return os.path.lexists(path)

    def read_bytes(self, path: str) -> bytes:
        """The content of ``path``, never through a symbolic link."""
        with self.open_input(path) as fh:
            return fh.read()

    def open_input(self, path: str) -> BinaryIO:
        """``path`` for reading, never through a symbolic link."""
        return os.fdopen(open_nofollow(path, os.O_RDONLY), "rb")

    def create(self, path: str, *, mode: int = 0o644) -> AtomicFile:
        """A new file published at ``path`` on commit."""
        return AtomicFile(path, mode=mode)

    def delete(self, path: str) -> None:
        """Unlink ``path`` and fsync its directory."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        fsync_dir(os.path.dirname(path) or ".")
