"""Target files read one record at a time: text, CSV and JSON lines, or stdin.

:func:`iter_targets` is the one piece of I/O of :mod:`crawler.targets`: it
holds one record at a time whatever the file's size, and turns every record
into a :class:`~crawler.targets.names.Target` or an
:class:`~crawler.targets.names.InvalidTarget` (with its line number).
"""

from __future__ import annotations

import csv
import io
import os
import re
import select
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from typing import IO, Any, Final

import orjson

from crawler.errors import ConfigError
from crawler.targets.names import (
    SOURCE_MAX,
    InvalidTarget,
    ParsedTarget,
    Target,
    clip,
    has_surrogates,
    invalid,
    parse_stripped,
    validate,
)

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "MAX_LINE_BYTES",
    "ReadInterrupted",
    "TargetReader",
    "iter_targets",
]

#: An input record longer than this (bytes, newline included) is an invalid
#: target; the rest of it is skipped without being held in memory.
MAX_LINE_BYTES: Final = 1 << 20

#: The ``fmt`` values of :func:`iter_targets` (and of ``--targets-format``).
FORMATS: Final = ("auto", "text", "csv", "jsonl")

CSV_COLUMNS: Final = ("namespace", "repository", "tag")

_TRAILING_COMMENT_RE: Final = re.compile(r"\s#")
_BOM: Final = b"\xef\xbb\xbf"
_STDIN_NAME: Final = "<stdin>"


class ReadInterrupted(Exception):
    """A read was ended by :meth:`TargetReader.interrupt` (the run stopped)."""


class _StoppableFile(io.RawIOBase):
    """A file descriptor read so that another thread can end a read at any time.

    A read may block for ever (a pipe or FIFO whose writer stays open) or never
    end (``/dev/zero``): each one first waits for the file or a wake-up pipe,
    so :meth:`interrupt` ends it at once and the reading thread returns.
    """

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._wake_read, self._wake_write = os.pipe()
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)
        self._poll.register(self._wake_read, select.POLLIN)
        # Held while the descriptor is read, closed or woken: a close from the
        # event loop never lands between the wait and the read of another thread.
        self._lock = threading.Lock()
        self._interrupted = False

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def readinto(self, buffer: Any) -> int:
        self._poll.poll()
        with self._lock:
            if self._interrupted or self.closed:
                raise ReadInterrupted("the targets read was stopped")
            return os.readv(self._fd, [buffer])

    def interrupt(self) -> None:
        """End the read in progress (from any thread); every later read fails."""
        with self._lock:
            if not self._interrupted and not self.closed:
                self._interrupted = True
                os.write(self._wake_write, b"\0")

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                for fd in (self._fd, self._wake_read, self._wake_write):
                    os.close(fd)
                super().close()


class TargetReader(Iterator[ParsedTarget]):
    """The iterator returned by :func:`iter_targets`: owns the open file, closes it when done.

    Closed when exhausted, on :meth:`close`, at the end of a ``with`` block or
    when dropped (stdin is read through a duplicate of its descriptor, so
    closing never closes stdin). A read error half-way through the file is
    raised as :class:`~crawler.errors.ConfigError`; :meth:`interrupt` ends a
    read that blocks, from another thread.
    """

    __slots__ = ("_close", "_items", "_name", "_raw")

    def __init__(
        self,
        items: Iterator[ParsedTarget],
        raw: _StoppableFile,
        name: str,
        close: Callable[[], None],
    ) -> None:
        self._close: Callable[[], None] | None = close
        self._items = items
        self._raw = raw
        self._name = name

    def __next__(self) -> ParsedTarget:
        try:
            return next(self._items)
        except StopIteration:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise ConfigError(f"cannot read targets file {self._name}: {_os_reason(exc)}") from None

    def __iter__(self) -> TargetReader:
        return self

    def interrupt(self) -> None:
        """End a read in progress in another thread (it raises :class:`ReadInterrupted`)."""
        self._raw.interrupt()

    def close(self) -> None:
        """Release the file (idempotent)."""
        close, self._close = self._close, None
        if close is not None:
            self._items = iter(())
            self._raw.interrupt()
            close()

    def __enter__(self) -> TargetReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def iter_targets(path: str, fmt: str = "auto") -> TargetReader:
    """Read targets from ``path`` (``-`` for stdin), one record at a time, in input order.

    ``fmt`` is ``text``, ``csv``, ``jsonl`` or ``auto`` (by extension: ``.csv``;
    ``.jsonl``/``.ndjson``; anything else, and stdin, is text). Memory stays
    flat whatever the file size: one record is held at a time, and a record
    longer than :data:`MAX_LINE_BYTES` becomes an InvalidTarget whose rest is
    skipped. A UTF-8 byte-order mark at the start is ignored.

    * text: one reference a line (see :func:`parse_reference`, so a registry
      host in front is dropped). Surrounding whitespace is stripped and CRLF
      line ends are fine. Blank lines and lines whose first non-blank
      character is ``#`` are ignored, as is a trailing comment: a ``#`` preceded
      by whitespace and everything after it (``ns/repo:v1  # prod``). A ``#``
      with no whitespace before it stays part of the reference, which makes it
      invalid (``#`` is in no name), so a typo is reported, not hidden. A line
      that is not valid UTF-8 becomes an InvalidTarget (with the bytes shown
      as ``\\xNN``), unless the bad bytes are only in a comment.
    * csv: the first row is a header naming ``namespace``, ``repository`` and
      ``tag`` (any order, case and surrounding spaces ignored; other columns
      ignored). Fields are stripped; a row with a missing or empty field is an
      InvalidTarget; rows whose fields are all empty are skipped. No host
      stripping: the columns are the names.
    * jsonl: one JSON object a line with string values under those keys (other
      keys ignored; values are taken as they are, not stripped); blank lines
      are skipped. A line that is not JSON, not an object, lacks a key or has
      a non-string value is an InvalidTarget.

    Raises :class:`~crawler.errors.ConfigError` (one line naming the path) when
    the file cannot be opened or read, ``fmt`` is unknown, or a CSV header
    lacks a column; the file is opened and a CSV header checked by this call,
    not at the first ``next()``.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown targets format {fmt!r}: expected one of {', '.join(FORMATS)}")
    is_stdin = path == "-"
    name = _STDIN_NAME if is_stdin else path
    if fmt == "auto":
        fmt = _format_from_extension(path) if not is_stdin else "text"
    fd = _open_fd(path, name)
    raw = _StoppableFile(fd)
    file = io.BufferedReader(raw, 1 << 16)
    close: Callable[[], None] = file.close
    try:
        if fmt == "csv":
            items, close = _open_csv(file, name)
        elif fmt == "jsonl":
            items = _read_jsonl(file)
        else:
            items = _read_text(file)
    except BaseException:
        close()
        raise
    return TargetReader(items, raw, name, close)


def _open_fd(path: str, name: str) -> int:
    """A descriptor of the file, or a duplicate of stdin's (so closing it leaves stdin open)."""
    try:
        fd = (
            os.dup(sys.stdin.fileno()) if path == "-" else os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        )
    except (OSError, ValueError) as exc:  # ValueError: sys.stdin has no descriptor
        reason = _os_reason(exc) if isinstance(exc, OSError) else "stdin has no file descriptor"
        raise ConfigError(f"cannot read targets file {name}: {reason}") from None
    if stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(f"cannot read targets file {name}: Is a directory")
    return fd


def _format_from_extension(path: str) -> str:
    extension = os.path.splitext(path)[1].lower()
    if extension == ".csv":
        return "csv"
    if extension in (".jsonl", ".ndjson"):
        return "jsonl"
    return "text"


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _lines(file: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line), each at most MAX_LINE_BYTES + 1 bytes (longer ones are cut).

    A BOM at the start is dropped. Lines end at LF, CRLF or a lone CR (old Mac
    files): a CR never joins two lines into one reference.
    """
    number = 0
    for raw in iter(partial(file.readline, MAX_LINE_BYTES + 1), b""):
        if number == 0 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if b"\r" in raw and len(raw) <= MAX_LINE_BYTES:
            pieces = raw.replace(b"\r\n", b"\n").split(b"\r")
            if len(pieces) > 1:
                for piece in pieces if pieces[-1] else pieces[:-1]:
                    number += 1
                    yield number, piece
                continue
        number += 1
        yield number, raw


def _numbered(item: ParsedTarget, number: int) -> ParsedTarget:
    """``item`` with its line number, if it is invalid (a valid target needs none)."""
    return item if isinstance(item, Target) else replace(item, line=number)


def _too_long(file: IO[bytes], head: bytes) -> InvalidTarget:
    """The InvalidTarget of an over-long line; consumes the rest of it a chunk at a time."""
    rest = head
    while rest and not rest.endswith(b"\n"):
        rest = file.readline(MAX_LINE_BYTES)
    source = head[:SOURCE_MAX].decode("utf-8", "backslashreplace")
    return invalid(None, None, None, f"line longer than {MAX_LINE_BYTES} bytes", source)


def _read_text(file: IO[bytes]) -> Iterator[ParsedTarget]:
    for number, raw in _lines(file):
        if len(raw) > MAX_LINE_BYTES:
            yield _numbered(_too_long(file, raw), number)
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            result = _undecodable_line(raw, exc)
            if result is not None:
                yield _numbered(result, number)
            continue
        text = line.strip()
        if not text or text[0] == "#":
            continue
        if "#" in text:
            text = _strip_comment(text)
            if not text:
                continue
        parsed = parse_stripped(text)
        yield parsed if isinstance(parsed, Target) else replace(parsed, line=number)


def _strip_comment(text: str) -> str:
    match = _TRAILING_COMMENT_RE.search(text)
    return text if match is None else text[: match.start()].rstrip()


def _undecodable_line(raw: bytes, exc: UnicodeDecodeError) -> ParsedTarget | None:
    """A line with bytes that are not UTF-8, read with them shown as ``\\xNN``.

    None for a comment line, the Target when the bad bytes are only in a
    trailing comment (or a dropped host), else an InvalidTarget carrying the
    parts that could be parsed.
    """
    text = raw.decode("utf-8", "backslashreplace").strip()
    if text.startswith("#"):
        return None
    parsed = parse_stripped(_strip_comment(text))
    if isinstance(parsed, Target):
        return parsed
    bad = raw[exc.start : exc.start + 1].hex()
    reason = f"not valid UTF-8 (byte 0x{bad} at offset {exc.start})"
    return InvalidTarget(parsed.namespace, parsed.repository, parsed.tag, reason, clip(text))


def _read_jsonl(file: IO[bytes]) -> Iterator[ParsedTarget]:
    for number, raw in _lines(file):
        if len(raw) > MAX_LINE_BYTES:
            yield _numbered(_too_long(file, raw), number)
            continue
        data = raw.strip()
        if data:
            yield _numbered(_parse_json_record(data), number)


_JSON_TYPE_NAMES: Final = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _parse_json_record(data: bytes) -> ParsedTarget:
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        message = " ".join(str(exc).split())
        return invalid(None, None, None, f"not JSON: {message}", _source_of(data))
    if not isinstance(record, dict):
        kind = _JSON_TYPE_NAMES.get(type(record), type(record).__name__)
        return invalid(None, None, None, f"not a JSON object (got {kind})", _source_of(data))
    values: list[str | None] = []
    problem: str | None = None
    for column in CSV_COLUMNS:
        value = record.get(column)
        if isinstance(value, str):
            values.append(value)
            continue
        values.append(None)
        if problem is None:
            if column not in record:
                problem = f"missing key {column!r}"
            else:
                kind = _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
                problem = f"key {column!r} is not a string (got {kind})"
    namespace, repository, tag = values
    if problem is None:
        assert namespace is not None
        assert repository is not None
        assert tag is not None
        problem = validate(namespace, repository, tag)
        if problem is None:
            return Target(namespace, repository, tag)
    return invalid(namespace, repository, tag, problem, _source_of(data))


def _source_of(data: bytes) -> str:
    return data[: SOURCE_MAX * 4].decode("utf-8", "backslashreplace")


def _open_csv(file: IO[bytes], name: str) -> tuple[Iterator[ParsedTarget], Callable[[], None]]:
    """Check the header now (ConfigError if a column is missing); rows are read lazily."""
    # surrogateescape: a bad byte must cost one row, not the run; see _csv_row.
    text = io.TextIOWrapper(file, encoding="utf-8-sig", errors="surrogateescape", newline="")
    close = text.close
    rows = csv.reader(text)
    try:
        header = next(rows, None)
    except csv.Error as exc:
        close()
        raise ConfigError(f"{name}: unreadable CSV header: {exc}") from None
    except BaseException:
        close()
        raise
    if header is None:
        close()
        raise ConfigError(
            f"{name}: empty file, expected a CSV header with namespace,repository,tag"
        )
    columns = [cell.strip().lower() for cell in header]
    missing = [column for column in CSV_COLUMNS if column not in columns]
    if missing:
        close()
        found = clip(",".join(header))[:80]
        what = "column" if len(missing) == 1 else "columns"
        raise ConfigError(
            f"{name}: header lacks {what} {', '.join(repr(m) for m in missing)} (header: {found!r})"
        )
    indexes = tuple(columns.index(column) for column in CSV_COLUMNS)
    return (_numbered(item, rows.line_num) for item in _read_csv_rows(rows, indexes)), close


def _read_csv_rows(rows: Iterator[list[str]], indexes: tuple[int, ...]) -> Iterator[ParsedTarget]:
    i_namespace, i_repository, i_tag = indexes
    width = max(indexes) + 1
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a field over csv.field_size_limit(); the reader goes on
            # Its text is unknown: the line number makes it a row of its own, not a "duplicate".
            where = f"<unparseable CSV record ending on line {rows.line_num}>"  # type: ignore[attr-defined]
            yield invalid(None, None, None, f"bad CSV record: {exc}", where)
            continue
        if len(row) >= width:
            namespace = row[i_namespace].strip()
            repository = row[i_repository].strip()
            tag = row[i_tag].strip()
            if namespace and repository and tag:
                reason = validate(namespace, repository, tag)
                if reason is None:
                    yield Target(namespace, repository, tag)
                    continue
                yield _csv_invalid(row, namespace, repository, tag, reason)
                continue
        if any(cell.strip() for cell in row):
            yield _csv_incomplete(row, indexes)


def _csv_incomplete(row: list[str], indexes: tuple[int, ...]) -> InvalidTarget:
    values: list[str | None] = []
    problem = ""
    for column, index in zip(CSV_COLUMNS, indexes, strict=True):
        value = row[index].strip() if index < len(row) else None
        values.append(value or None)
        if not problem and value is None:
            problem = f"missing field {column!r}"
        elif not problem and not value:
            problem = f"empty field {column!r}"
    return _csv_invalid(row, values[0], values[1], values[2], problem)


def _csv_invalid(
    row: list[str],
    namespace: str | None,
    repository: str | None,
    tag: str | None,
    reason: str,
) -> InvalidTarget:
    source = ",".join(row)
    if has_surrogates(source):
        reason = f"not valid UTF-8; {reason}"
    return invalid(namespace, repository, tag, reason, source)
