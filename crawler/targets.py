"""Targets: parse and validate ``namespace/repository:tag``, read them streamed, dedup, shard.

Pure logic (:func:`validate`, :func:`parse_reference`, :func:`target_hash`,
:class:`SeenSet`, :func:`in_shard`) is kept apart from the one piece of I/O,
:func:`iter_targets`, which reads a file or stdin one record at a time.

A reference is ``namespace/repository:tag``:

* the tag is required (no implicit ``latest``: an audit names what it checks)
  and is everything after the last ``:`` that follows the last ``/``;
* the repository is everything after the first ``/`` and may contain ``/``;
* a registry host in front is dropped. The first component is a host when it
  contains a ``:`` (a port, e.g. ``10.125.0.198:20202``) or is an SWR registry
  domain (``swr.<region>.myhuaweicloud.com`` or ``.eu``); otherwise it is the
  namespace, which may itself contain periods. So a namespace that happens to
  be spelled like an SWR domain must be written with the host in front;
* a digest reference (``@sha256:...``) is invalid: the API looks up tags.

Names follow the rules of the tag-details API page (``reference/000_*.txt``):

* namespace: 1-64 of ``[a-z0-9._-]``, starts with a lowercase letter, ends with
  a lowercase letter or digit; ``.``, ``_``, ``-`` never next to each other,
  except ``__`` (at most two underscores in a row);
* repository: 1-128 of ``[a-z0-9._/-]``, starts and ends with a lowercase letter
  or digit; ``.``, ``/``, ``_``, ``-`` never next to each other, except ``__``;
  so every ``/``-separated component starts and ends with ``[a-z0-9]``. A ``$``
  is refused: the user writes ``/``, :attr:`Target.request_path` sends ``$``;
* tag: the docker tag grammar ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``.

Every valid name is therefore ASCII; every string in an :class:`InvalidTarget`
is valid UTF-8 (undecodable bytes appear as ``\\xNN``), so both can be written
to Parquet as they are.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import sys
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from hashlib import blake2b
from itertools import chain, pairwise
from typing import IO, Final

import orjson

from crawler.errors import ConfigError

__all__ = [
    "FORMATS",
    "InvalidTarget",
    "ParsedTarget",
    "SeenSet",
    "Target",
    "TargetReader",
    "in_shard",
    "iter_targets",
    "parse_reference",
    "target_hash",
    "validate",
]

NAMESPACE_MAX: Final = 64
REPOSITORY_MAX: Final = 128
TAG_MAX: Final = 128

#: An input record longer than this (bytes, newline included) is an invalid
#: target; the rest of it is skipped without being held in memory.
MAX_LINE_BYTES: Final = 1 << 20

#: Longest text kept in :attr:`InvalidTarget.source` and its parsed fields.
SOURCE_MAX: Final = 300

#: Longest value quoted in a reason.
_QUOTE_MAX: Final = 60

#: The ``fmt`` values of :func:`iter_targets`.
FORMATS: Final = ("auto", "text", "csv", "jsonl")

CSV_COLUMNS: Final = ("namespace", "repository", "tag")

# One component of [a-z0-9]+ between single separators (or "__"): since the
# separator characters never occur inside a component the split is unique, so
# these patterns match in linear time; the length is checked before them.
_NAMESPACE_RE: Final = re.compile(r"[a-z][a-z0-9]*(?:(?:__|[._-])[a-z0-9]+)*")
_REPOSITORY_RE: Final = re.compile(r"[a-z0-9]+(?:(?:__|[./_-])[a-z0-9]+)*")
_TAG_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_SWR_HOST_RE: Final = re.compile(r"swr\.[a-z0-9-]+\.myhuaweicloud\.(?:com|eu)", re.IGNORECASE)
# The whole of a valid reference in one match, for the common case; anything it
# rejects goes through _parse_slowly, which applies the same rules one at a
# time to find the reason. The host group is possessive ("?+"): once the first
# component is a host it is never taken back as a namespace.
_REFERENCE_RE: Final = re.compile(
    r"(?:[^/:]*:[^/]*/|(?i:swr\.[a-z0-9-]+\.myhuaweicloud\.(?:com|eu))/)?+"
    rf"({_NAMESPACE_RE.pattern})/({_REPOSITORY_RE.pattern}):({_TAG_RE.pattern})"
)
_TRAILING_COMMENT_RE: Final = re.compile(r"\s#")

_LOWER: Final = frozenset("abcdefghijklmnopqrstuvwxyz")
_LOWER_DIGIT: Final = _LOWER | frozenset("0123456789")
_NAMESPACE_SEPARATORS: Final = frozenset("._-")
_REPOSITORY_SEPARATORS: Final = frozenset("./_-")
_TAG_FIRST: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ_") | _LOWER_DIGIT
_TAG_CHARS: Final = _TAG_FIRST | frozenset(".-")

_BOM: Final = b"\xef\xbb\xbf"
_STDIN_NAME: Final = "<stdin>"

_MISSING_TAG: Final = (
    "missing tag: expected namespace/repository:tag (there is no implicit 'latest')"
)
_MISSING_REPOSITORY: Final = "missing repository: expected namespace/repository:tag"


@dataclass(frozen=True, slots=True)
class Target:
    """A valid target: one tag of one repository, to be requested once."""

    namespace: str
    repository: str  # with '/', never '$'
    tag: str

    @property
    def key(self) -> str:
        """``namespace/repository:tag``: the identity used for dedup, sharding and resume."""
        return f"{self.namespace}/{self.repository}:{self.tag}"

    @property
    def request_path(self) -> str:
        """The tag-details API path; a ``/`` in the repository is sent as ``$``."""
        repository = self.repository.replace("/", "$")
        return f"/v2/manage/namespaces/{self.namespace}/repos/{repository}/tags/{self.tag}"

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class InvalidTarget:
    """An input record that is not a valid target: reported as ``invalid_target``, never requested.

    The parsed fields hold what could be parsed (``None`` where nothing could)
    and, like ``source``, are cut to :data:`SOURCE_MAX` characters.
    """

    namespace: str | None
    repository: str | None
    tag: str | None
    reason: str  # one line, names the part that failed and why
    source: str  # the raw record (line, CSV row or JSON text), cut to SOURCE_MAX

    @property
    def key(self) -> str:
        """The dedup key of an invalid entry: its source text."""
        return self.source


#: What :func:`parse_reference` and :func:`iter_targets` produce.
ParsedTarget = Target | InvalidTarget


# --------------------------------------------------------------------------- validation


def validate(namespace: str, repository: str, tag: str) -> str | None:
    """The reason the three names break the API's naming rules, or None when they are valid.

    The reason is one line naming the part that failed and why, quoting the
    value (long values cut), e.g. ``namespace 'Foo': must start with a
    lowercase letter``. Valid names take three precompiled regex matches.
    """
    if (
        len(namespace) <= NAMESPACE_MAX
        and _NAMESPACE_RE.fullmatch(namespace) is not None
        and len(repository) <= REPOSITORY_MAX
        and _REPOSITORY_RE.fullmatch(repository) is not None
        and _TAG_RE.fullmatch(tag) is not None
    ):
        return None
    return (
        _namespace_problem(namespace)
        or _repository_problem(repository)
        or _tag_problem(tag)
        or f"target {_quote(f'{namespace}/{repository}:{tag}')}: invalid"
    )


def _quote(value: str) -> str:
    """``value`` quoted for a one-line message: cut when long, escapes via repr()."""
    if len(value) > _QUOTE_MAX:
        value = value[: _QUOTE_MAX - 3] + "..."
    return repr(value)


def _namespace_problem(value: str) -> str | None:
    if len(value) <= NAMESPACE_MAX and _NAMESPACE_RE.fullmatch(value) is not None:
        return None
    return _name_problem(
        "namespace",
        value,
        NAMESPACE_MAX,
        _NAMESPACE_SEPARATORS,
        _LOWER,
        "a lowercase letter",
        "lowercase letters, digits, '.', '_' and '-'",
    )


def _repository_problem(value: str) -> str | None:
    if len(value) <= REPOSITORY_MAX and _REPOSITORY_RE.fullmatch(value) is not None:
        return None
    if "$" in value:
        return (
            f"repository {_quote(value)}: contains '$'; write '/' between path components"
            " (the crawler sends it as '$')"
        )
    return _name_problem(
        "repository",
        value,
        REPOSITORY_MAX,
        _REPOSITORY_SEPARATORS,
        _LOWER_DIGIT,
        "a lowercase letter or digit",
        "lowercase letters, digits, '.', '/', '_' and '-'",
    )


def _name_problem(
    part: str,
    value: str,
    limit: int,
    separators: frozenset[str],
    first_chars: frozenset[str],
    first_desc: str,
    allowed_desc: str,
) -> str:
    """Why a namespace or repository is invalid: the first rule broken, in the order below."""
    if not value:
        return f"{part} is empty"
    quoted = _quote(value)
    if len(value) > limit:
        return f"{part} {quoted}: {len(value)} characters long, the limit is {limit}"
    allowed = _LOWER_DIGIT | separators
    # Order: a foreign character first (the fix is another character), then
    # the ends, then uppercase ("Foo" reads best as a bad start).
    for char in value:
        if char not in allowed and not "A" <= char <= "Z":
            return f"{part} {quoted}: contains {char!r}; only {allowed_desc} are allowed"
    if value[0] not in first_chars:
        return f"{part} {quoted}: must start with {first_desc}"
    if value[-1] not in _LOWER_DIGIT:
        return f"{part} {quoted}: must end with a lowercase letter or digit"
    for char in value:
        if "A" <= char <= "Z":
            return f"{part} {quoted}: contains uppercase {char!r}; names are lowercase"
    if "___" in value:
        return f"{part} {quoted}: more than two underscores in a row"
    for here, after in pairwise(value):
        if here in separators and after in separators and here + after != "__":
            return f"{part} {quoted}: separators {here + after!r} next to each other"
    return f"{part} {quoted}: invalid"  # unreachable while the rules above mirror the regex


def _tag_problem(value: str) -> str | None:
    if _TAG_RE.fullmatch(value) is not None:
        return None
    if not value:
        return "tag is empty"
    quoted = _quote(value)
    if len(value) > TAG_MAX:
        return f"tag {quoted}: {len(value)} characters long, the limit is {TAG_MAX}"
    if value[0] not in _TAG_FIRST:
        return f"tag {quoted}: must start with a letter, digit or '_'"
    for char in value:
        if char not in _TAG_CHARS:
            return f"tag {quoted}: contains {char!r}; only letters, digits, '_', '.' and '-'"
    return f"tag {quoted}: invalid"  # unreachable while the rules above mirror the regex


# --------------------------------------------------------------------------- parsing


def parse_reference(text: str) -> ParsedTarget:
    """Parse one ``[host/]namespace/repository:tag`` reference; never raises.

    Surrounding whitespace is ignored. See the module docstring for the host
    rule; the result is a :class:`Target` or an :class:`InvalidTarget` that
    carries whatever could be parsed and a one-line reason.
    """
    return _parse(text.strip())


def _parse(text: str) -> ParsedTarget:
    """:func:`parse_reference` of an already stripped text (the readers' hot path)."""
    match = _REFERENCE_RE.fullmatch(text)
    if match is not None:
        namespace, repository, tag = match.groups()
        if len(namespace) <= NAMESPACE_MAX and len(repository) <= REPOSITORY_MAX:
            return Target(namespace, repository, tag)
    return _parse_slowly(text)


def _parse_slowly(text: str) -> ParsedTarget:
    """Split a reference by the rules step by step, to say what is wrong with it."""
    if not text:
        return _invalid(None, None, None, "empty reference", text)
    at = text.find("@")
    if at >= 0:
        namespace, repository, tag = _split(text[:at])
        digest = (
            f"digest reference {_quote(text[at:])}: the API looks up tags;"
            " write namespace/repository:tag"
        )
        return _invalid(namespace, repository, tag, digest, text)
    namespace, repository, tag = _split(text)
    if repository is None:
        return _invalid(namespace, None, tag, _MISSING_REPOSITORY, text)
    if not tag:
        return _invalid(namespace, repository, None, _MISSING_TAG, text)
    reason = validate(namespace, repository, tag)
    if reason is None:
        return Target(namespace, repository, tag)
    return _invalid(namespace, repository, tag, reason, text)


def _split(text: str) -> tuple[str, str | None, str | None]:
    """(namespace, repository, tag) of a reference, host dropped; None for a missing part."""
    colon = text.rfind(":")
    if colon > text.rfind("/"):
        name, tag = text[:colon], text[colon + 1 :]
    else:
        name, tag = text, None
    slash = name.find("/")
    if slash >= 0:
        first = name[:slash]
        if ":" in first or _SWR_HOST_RE.fullmatch(first) is not None:
            name = name[slash + 1 :]
            slash = name.find("/")
    if slash < 0:
        return name, None, tag
    return name[:slash], name[slash + 1 :], tag


def _invalid(
    namespace: str | None,
    repository: str | None,
    tag: str | None,
    reason: str,
    source: str,
) -> InvalidTarget:
    """An InvalidTarget whose strings are cut to SOURCE_MAX and safe to encode as UTF-8."""
    return InvalidTarget(
        None if namespace is None else _clip(namespace),
        None if repository is None else _clip(repository),
        None if tag is None else _clip(tag),
        reason,
        _clip(source),
    )


def _clip(value: str) -> str:
    """``value`` cut to SOURCE_MAX characters, lone surrogates turned into ``\\xNN``/``\\uNNNN``."""
    if len(value) > SOURCE_MAX:
        value = value[: SOURCE_MAX - 3] + "..."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        try:  # bytes smuggled in by errors="surrogateescape": show them as \xNN
            value = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _has_surrogates(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# --------------------------------------------------------------------------- reading


class TargetReader(Iterator[ParsedTarget]):
    """The iterator returned by :func:`iter_targets`: owns the open file, closes it when done.

    Closed when exhausted, on :meth:`close`, at the end of a ``with`` block or
    when dropped; stdin is never closed. A read error half-way through the
    file is raised as :class:`~crawler.errors.ConfigError`.
    """

    __slots__ = ("_close", "_file", "_items", "_name", "size")

    def __init__(
        self,
        items: Iterator[ParsedTarget],
        file: IO[bytes],
        name: str,
        close: Callable[[], None],
    ) -> None:
        self._close: Callable[[], None] | None = close
        self._items = items
        self._file = file
        self._name = name
        #: Size of the file in bytes when known (a regular file), else None.
        self.size: int | None = _file_size(file)

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

    @property
    def bytes_read(self) -> int | None:
        """How far into the file reading has got (for a progress bar), None when unknown."""
        if self._close is None:
            return self.size
        try:
            return self._file.tell()
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        """Release the file (idempotent)."""
        close, self._close = self._close, None
        if close is not None:
            self._items = iter(())
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
    if is_stdin:
        file: IO[bytes] = sys.stdin.buffer
    else:
        try:
            file = open(path, "rb", buffering=1 << 16)  # noqa: SIM115 - owned by the reader
        except OSError as exc:
            raise ConfigError(f"cannot read targets file {path}: {_os_reason(exc)}") from None
    close: Callable[[], None] = (lambda: None) if is_stdin else file.close
    try:
        if fmt == "csv":
            items, close = _open_csv(file, name, is_stdin)
        elif fmt == "jsonl":
            items = _read_jsonl(file)
        else:
            items = _read_text(file)
    except BaseException:
        close()
        raise
    return TargetReader(items, file, name, close)


def _format_from_extension(path: str) -> str:
    extension = os.path.splitext(path)[1].lower()
    if extension == ".csv":
        return "csv"
    if extension in (".jsonl", ".ndjson"):
        return "jsonl"
    return "text"


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _file_size(file: IO[bytes]) -> int | None:
    try:
        info = os.fstat(file.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _lines(file: IO[bytes]) -> Iterator[bytes]:
    """Raw lines, each at most MAX_LINE_BYTES + 1 bytes (longer ones are cut), BOM dropped."""
    lines: Iterator[bytes] = iter(partial(file.readline, MAX_LINE_BYTES + 1), b"")
    first = next(lines, b"")
    if first.startswith(_BOM):
        first = first[len(_BOM) :]
    return chain((first,), lines) if first else lines


def _too_long(file: IO[bytes], head: bytes) -> InvalidTarget:
    """The InvalidTarget of an over-long line; consumes the rest of it a chunk at a time."""
    rest = head
    while rest and not rest.endswith(b"\n"):
        rest = file.readline(MAX_LINE_BYTES)
    source = head[:SOURCE_MAX].decode("utf-8", "backslashreplace")
    return _invalid(None, None, None, f"line longer than {MAX_LINE_BYTES} bytes", source)


def _read_text(file: IO[bytes]) -> Iterator[ParsedTarget]:
    for raw in _lines(file):
        if len(raw) > MAX_LINE_BYTES:
            yield _too_long(file, raw)
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            result = _undecodable_line(raw, exc)
            if result is not None:
                yield result
            continue
        text = line.strip()
        if not text or text[0] == "#":
            continue
        if "#" in text:
            text = _strip_comment(text)
            if not text:
                continue
        yield _parse(text)


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
    parsed = _parse(_strip_comment(text))
    if isinstance(parsed, Target):
        return parsed
    bad = raw[exc.start : exc.start + 1].hex()
    reason = f"not valid UTF-8 (byte 0x{bad} at offset {exc.start})"
    return InvalidTarget(parsed.namespace, parsed.repository, parsed.tag, reason, _clip(text))


def _read_jsonl(file: IO[bytes]) -> Iterator[ParsedTarget]:
    for raw in _lines(file):
        if len(raw) > MAX_LINE_BYTES:
            yield _too_long(file, raw)
            continue
        data = raw.strip()
        if data:
            yield _parse_json_record(data)


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
        return _invalid(None, None, None, f"not JSON: {message}", _source_of(data))
    if not isinstance(record, dict):
        kind = _JSON_TYPE_NAMES.get(type(record), type(record).__name__)
        return _invalid(None, None, None, f"not a JSON object (got {kind})", _source_of(data))
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
    return _invalid(namespace, repository, tag, problem, _source_of(data))


def _source_of(data: bytes) -> str:
    return data[: SOURCE_MAX * 4].decode("utf-8", "backslashreplace")


def _open_csv(
    file: IO[bytes], name: str, is_stdin: bool
) -> tuple[Iterator[ParsedTarget], Callable[[], None]]:
    """Check the header now (ConfigError if a column is missing); rows are read lazily."""
    # surrogateescape: a bad byte must cost one row, not the run; see _csv_row.
    text = io.TextIOWrapper(file, encoding="utf-8-sig", errors="surrogateescape", newline="")

    def close() -> None:
        if is_stdin:
            text.detach()  # closing the wrapper would close stdin
        else:
            text.close()

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
        found = _clip(",".join(header))[:80]
        what = "column" if len(missing) == 1 else "columns"
        raise ConfigError(
            f"{name}: header lacks {what} {', '.join(repr(m) for m in missing)} (header: {found!r})"
        )
    indexes = tuple(columns.index(column) for column in CSV_COLUMNS)
    return _read_csv_rows(rows, indexes), close


def _read_csv_rows(rows: Iterator[list[str]], indexes: tuple[int, ...]) -> Iterator[ParsedTarget]:
    i_namespace, i_repository, i_tag = indexes
    width = max(indexes) + 1
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a field over csv.field_size_limit(); the reader goes on
            yield _invalid(None, None, None, f"bad CSV record: {exc}", "")
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
    if _has_surrogates(source):
        reason = f"not valid UTF-8; {reason}"
    return _invalid(namespace, repository, tag, reason, source)


# --------------------------------------------------------------------------- dedup, sharding


def target_hash(key: str) -> int:
    """A stable, nonzero, unsigned 64-bit hash of ``key``.

    BLAKE2b of the UTF-8 bytes: the same in every process and every run
    (unlike ``hash()``, which PYTHONHASHSEED salts), so shards and dedup agree
    across machines and restarts. 0 is mapped to 1 (0 marks an empty slot in
    :class:`SeenSet`).
    """
    try:
        data = key.encode()
    except UnicodeEncodeError:  # a lone surrogate: still hashable, never a valid name
        data = key.encode("utf-8", "surrogatepass")
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little") or 1


def in_shard(key: str, index: int, count: int) -> bool:
    """Whether ``key`` belongs to shard ``index`` of ``count`` (0 <= index < count).

    ``target_hash(key) % count == index``: every key is in exactly one shard,
    the same one on every machine.
    """
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index} of {count}: need count >= 1 and 0 <= index < count")
    return target_hash(key) % count == index


class SeenSet:
    """Dedup of millions of keys in about 16-32 bytes each: a set of 64-bit hashes.

    An open-addressing table in one ``array('Q')`` (0 = empty slot, see
    :func:`target_hash`), linear probing, doubled when more than half full;
    the key strings themselves are never kept. The slot comes from the high
    bits of the hash while :func:`in_shard` uses ``% count`` (the low bits
    when count is a power of two), so a shard's keys still spread over the
    whole table.

    The price is that two distinct keys with the same 64-bit hash count as one:
    for n distinct keys the chance of any collision is about n**2 / 2**65,
    ~3e-8 for a million keys and ~3e-6 for ten million. A collision would
    drop a target as a "duplicate"; at these odds that is accepted.
    """

    __slots__ = ("_len", "_limit", "_mask", "_shift", "_table")

    _MIN_BITS: Final = 4

    def __init__(self, expected: int = 0) -> None:
        """``expected``: keys to come, to size the table once (0: grow as needed)."""
        bits = self._MIN_BITS
        while (1 << bits) < 2 * expected:
            bits += 1
        self._len = 0
        self._allocate(bits)

    def _allocate(self, bits: int) -> None:
        self._table = array("Q", [0]) * (1 << bits)
        self._mask = (1 << bits) - 1
        self._shift = 64 - bits
        self._limit = 1 << (bits - 1)

    def add(self, key: str) -> bool:
        """Record ``key``; True if it is new, False if it was seen before."""
        return self.add_hash(target_hash(key))

    def add_hash(self, hashed: int) -> bool:
        """:meth:`add` of a precomputed :func:`target_hash` (nonzero, < 2**64)."""
        table = self._table
        mask = self._mask
        slot = hashed >> self._shift
        while True:
            found = table[slot]
            if found == 0:
                break
            if found == hashed:
                return False
            slot = (slot + 1) & mask
        table[slot] = hashed
        self._len += 1
        if self._len > self._limit:
            self._grow()
        return True

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        hashed = target_hash(key)
        table = self._table
        mask = self._mask
        slot = hashed >> self._shift
        while True:
            found = table[slot]
            if found == hashed:
                return True
            if found == 0:
                return False
            slot = (slot + 1) & mask

    def __len__(self) -> int:
        return self._len

    @property
    def nbytes(self) -> int:
        """Bytes held by the table (the bulk of the memory used)."""
        return self._table.buffer_info()[1] * self._table.itemsize

    def _grow(self) -> None:
        old = self._table
        self._allocate(len(old).bit_length())  # len is a power of two: bits + 1
        table = self._table
        mask = self._mask
        shift = self._shift
        for hashed in old:
            if hashed:
                slot = hashed >> shift
                while table[slot]:
                    slot = (slot + 1) & mask
                table[slot] = hashed
