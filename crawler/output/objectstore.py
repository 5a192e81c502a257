"""Where an output lives: a local path, or ``s3://bucket/prefix`` on an S3-compatible store.

Object storage goes through pyarrow's own ``S3FileSystem`` (no S3 client of
ours), configured from the standard variables: ``AWS_ENDPOINT_URL`` (for
MinIO, Huawei OBS or a local server; absent: AWS itself), ``AWS_REGION``
(or ``AWS_DEFAULT_REGION``), ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY``
and, for temporary credentials, ``AWS_SESSION_TOKEN``. The keys are handed
to pyarrow and kept nowhere else: never in a location string (a URI with
user info is refused), a log event, ``run.json`` or an error message.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import orjson
import pyarrow.fs as pafs
import structlog

from crawler.errors import ConfigError
from crawler.output.lock import Holder, OutputLocked
from crawler.output.storage import PendingFile, is_object_store, temp_name, write_atomic

__all__ = [
    "ObjectFile",
    "ObjectRunLock",
    "ObjectStorage",
    "open_location",
    "read_whole",
    "write_whole",
]

log = structlog.get_logger("crawler")


def open_location(location: str, environ: Mapping[str, str]) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path)`` for a local path or ``s3://bucket/prefix``.

    ConfigError (exit 2) for a malformed URI or ``AWS_ENDPOINT_URL``.
    """
    if not is_object_store(location):
        if "://" in location:
            raise ConfigError(
                f"{location!r}: only local paths and s3://bucket/prefix are supported"
            )
        return pafs.LocalFileSystem(), location
    parts = urlsplit(location)
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            "an s3:// location is s3://bucket/prefix: keys go in AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, never in the URI"
        )
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not bucket:
        raise ConfigError(f"{location!r}: no bucket (s3://bucket/prefix)")
    return _s3(environ), f"{bucket}/{prefix}" if prefix else bucket


def _s3(environ: Mapping[str, str]) -> pafs.S3FileSystem:
    options: dict[str, object] = {}
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        url = urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/"):
            raise ConfigError("AWS_ENDPOINT_URL must be http(s)://host[:port], without a path")
        if url.username or url.password:
            raise ConfigError("AWS_ENDPOINT_URL must not carry user info (keys go in AWS_*)")
        options["endpoint_override"] = url.netloc
        options["scheme"] = url.scheme
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    access_key = environ.get("AWS_ACCESS_KEY_ID")
    secret_key = environ.get("AWS_SECRET_ACCESS_KEY")
    if bool(access_key) != bool(secret_key):
        raise ConfigError("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither")
    if access_key:
        options["access_key"] = access_key
        options["secret_key"] = secret_key
        if environ.get("AWS_SESSION_TOKEN"):
            options["session_token"] = environ["AWS_SESSION_TOKEN"]
    return pafs.S3FileSystem(**options)


# --- an output on object storage ---------------------------------------------------

#: Seconds an object-store lock lives without renewal; renewed every third of it.
LEASE_SECONDS: Final = 60.0


class ObjectFile(PendingFile):
    """A new object, uploaded under a hidden temporary key until :meth:`commit` publishes it.

    Closing a pyarrow output stream completes its upload, so an upload cut
    short by an exception would still appear whole-looking under its key:
    the upload goes to ``.NAME.<random>.tmp`` (no ``*.parquet`` glob, no
    warehouse reader sees it), and :meth:`commit` copies it server-side to
    ``NAME`` (one request: the object appears whole) and deletes the
    temporary one. A killed process leaves at most a temporary object (or an
    unfinished multipart upload, which is never visible); ``--resume``
    deletes such leftovers.
    """

    def __init__(self, fs: pafs.FileSystem, path: str) -> None:
        self._fs = fs
        self.path = path
        directory, _, name = path.rpartition("/")
        self.tmp = f"{directory}/{temp_name(name)}"
        self.stream: Any = fs.open_output_stream(self.tmp)

    def commit(self) -> None:
        """Finish the upload, copy it to the final key, delete the temporary object."""
        try:
            self.stream.close()
            self._fs.copy_file(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise
        self._fs.delete_file(self.tmp)

    def discard(self) -> None:
        """Drop the upload; the final key is untouched."""
        with contextlib.suppress(OSError):
            self.stream.close()
        with contextlib.suppress(OSError):
            self._fs.delete_file(self.tmp)


class ObjectStorage:
    """:class:`crawler.output.storage.Storage` on a pyarrow file system (an S3 bucket).

    Paths are ``bucket/prefix/...``; directories are only key prefixes.
    """

    def __init__(self, fs: pafs.FileSystem) -> None:
        self.fs = fs

    def join(self, *parts: str) -> str:
        """``parts`` joined with ``/``."""
        return "/".join(part.strip("/") for part in parts if part)

    def make_dirs(self, path: str) -> None:
        """Nothing to do: a key prefix exists once an object is under it."""

    def check_dir(self, path: str) -> None:
        """ConfigError when an object sits where a directory (a key prefix) is wanted."""
        if self.fs.get_file_info(path).type == pafs.FileType.File:
            raise ConfigError(f"{path}: is an object, not a directory; move it away")

    def list(self, directory: str) -> list[str]:
        """Names directly under ``directory`` ([] when there are none)."""
        selector = pafs.FileSelector(directory, allow_not_found=True)
        return [info.base_name for info in self.fs.get_file_info(selector)]

    def exists(self, path: str) -> bool:
        """Whether an object (or a prefix) is at ``path``."""
        found: bool = self.fs.get_file_info(path).type != pafs.FileType.NotFound
        return found

    def read_bytes(self, path: str) -> bytes:
        """The object's content (FileNotFoundError if absent)."""
        return read_whole(self.fs, path)

    def open_input(self, path: str) -> Any:
        """``path`` for random-access reading (Parquet readers take it as is)."""
        return self.fs.open_input_file(path)

    def create(self, path: str) -> ObjectFile:
        """A new object published at ``path`` on commit."""
        return ObjectFile(self.fs, path)

    def delete(self, path: str) -> None:
        """Delete the object (absent already is fine)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(path)


class ObjectRunLock:
    """One run per output prefix on object storage, where no ``flock`` exists: a lease.

    The lock is an object (the layout's exclusive lock names) holding its
    holder (pid, host, start) and ``expires``, an epoch second; a thread
    renews it every third of :data:`LEASE_SECONDS`. A run that finds a lock
    object takes it over when the lease has expired, or when the holder is a
    process of this host that no longer exists (a SIGKILLed run, resumed on the
    same machine); otherwise it is refused (exit 2, like a held ``flock``).
    After writing its lease a run reads it back and gives up if another
    run's lease is there (two starts in the same instant). Correctness does
    not rest on the lock: every object name carries its run id, so two runs
    never write one key. A shard takes its own lease only (the shared lock
    that keeps an unsharded run away from shards exists on local disks only).
    """

    def __init__(self, storage: ObjectStorage, paths: list[str], *, clock: Any = time.time):
        self._storage = storage
        self._paths = paths
        self._clock = clock
        self._token = secrets.token_hex(8)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> bytes:
        return orjson.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "expires": self._clock() + LEASE_SECONDS,
                "token": self._token,
            }
        )

    def acquire(self) -> None:
        """Take every lease or raise :class:`OutputLocked` naming the live holder."""
        for path in self._paths:
            self._check_free(path)
        for path in self._paths:
            write_whole(self._storage.fs, path, self._record())
        for path in self._paths:
            lease = _lease(self._storage, path)
            if lease is None or lease.get("token") != self._token:
                raise OutputLocked(f"out {path}: another crawl took the lock at the same moment")
        self._thread = threading.Thread(target=self._renew, name="swr-lease", daemon=True)
        self._thread.start()

    def _check_free(self, path: str) -> None:
        doc = _lease(self._storage, path)
        if not doc:
            return
        holder = Holder.of(doc).describe()
        expires = doc.get("expires")
        expired = not isinstance(expires, int | float) or expires < self._clock()
        if expired or _dead_here(doc):
            log.warning("crawl.stale_lock_taken_over", lock=path, previous=holder)
            return
        raise OutputLocked(
            f"out {path.rpartition('/')[0]}: another crawl is writing here ({holder}; "
            f"lease {path}); wait for it to finish, or use another --out"
        )

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 3):
            for path in self._paths:
                with contextlib.suppress(OSError):  # the next renewal tries again
                    write_whole(self._storage.fs, path, self._record())

    def release(self) -> None:
        """Stop renewing and delete the leases (a clean end leaves no holder behind)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
            for path in self._paths:
                with contextlib.suppress(OSError):
                    self._storage.delete(path)


def _lease(storage: ObjectStorage, path: str) -> dict[str, Any] | None:
    """The lease record at ``path``, decoded; None when there is none or it is no JSON
    object."""
    try:
        doc = orjson.loads(storage.read_bytes(path))
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _dead_here(doc: dict[str, Any]) -> bool:
    """Whether the lease's holder is a process of this host that has ended."""
    pid = doc.get("pid")
    if doc.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return pid == os.getpid()  # our own pid, from an earlier process that had it


def read_whole(fs: pafs.FileSystem, path: str) -> bytes:
    """The whole content of the file (or object) at ``path`` (FileNotFoundError if absent)."""
    with fs.open_input_stream(path) as stream:
        data: bytes = stream.read()
    return data


def write_whole(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """``data`` at ``path``, whole or not at all (a rename locally; one upload on S3)."""
    if isinstance(fs, pafs.LocalFileSystem):
        write_atomic(path, data)
        return
    with fs.open_output_stream(path) as stream:
        stream.write(data)
