"""Target names: parse and validate ``namespace/repository:tag``. Pure.

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

Names follow the rules of the tag-details API (``docs/swr-api.md``, "Names"):

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

import re
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Final

__all__ = [
    "InvalidTarget",
    "ParsedTarget",
    "Target",
    "api_repository",
    "clip",
    "has_surrogates",
    "invalid",
    "parse_reference",
    "parse_stripped",
    "validate",
]

NAMESPACE_MAX: Final = 64
REPOSITORY_MAX: Final = 128
TAG_MAX: Final = 128

#: Longest text kept in :attr:`InvalidTarget.source` and its parsed fields.
SOURCE_MAX: Final = 300

#: Longest value quoted in a reason.
_QUOTE_MAX: Final = 60

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

_LOWER: Final = frozenset("abcdefghijklmnopqrstuvwxyz")
_LOWER_DIGIT: Final = _LOWER | frozenset("0123456789")
_NAMESPACE_SEPARATORS: Final = frozenset("._-")
_REPOSITORY_SEPARATORS: Final = frozenset("./_-")
_TAG_FIRST: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ_") | _LOWER_DIGIT
_TAG_CHARS: Final = _TAG_FIRST | frozenset(".-")


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
        """The tag-details API path (the repository as :func:`api_repository` spells it)."""
        repository = api_repository(self.repository)
        return f"/v2/manage/namespaces/{self.namespace}/repos/{repository}/tags/{self.tag}"

    def __str__(self) -> str:
        return self.key


def api_repository(repository: str) -> str:
    """A repository name as an API path segment: every ``/`` is sent as ``$``."""
    return repository.replace("/", "$")


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
    line: int | None = field(default=None, compare=False)
    """The record's line number in its file (1 = the first line), when read from one."""

    @property
    def key(self) -> str:
        """The dedup key of an invalid entry: its source text."""
        return self.source

    @property
    def message(self) -> str:
        """The reason with the line it was found on: the ``error_msg`` of its row."""
        return self.reason if self.line is None else f"line {self.line}: {self.reason}"


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
    return parse_stripped(text.strip())


def parse_stripped(text: str) -> ParsedTarget:
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
        return invalid(None, None, None, "empty reference", text)
    at = text.find("@")
    if at >= 0:
        namespace, repository, tag = _split(text[:at])
        digest = (
            f"digest reference {_quote(text[at:])}: the API looks up tags;"
            " write namespace/repository:tag"
        )
        return invalid(namespace, repository, tag, digest, text)
    namespace, repository, tag = _split(text)
    if repository is None:
        return invalid(namespace, None, tag, _MISSING_REPOSITORY, text)
    if not tag:
        return invalid(namespace, repository, None, _MISSING_TAG, text)
    reason = validate(namespace, repository, tag)
    if reason is None:
        return Target(namespace, repository, tag)
    return invalid(namespace, repository, tag, reason, text)


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


def invalid(
    namespace: str | None,
    repository: str | None,
    tag: str | None,
    reason: str,
    source: str,
) -> InvalidTarget:
    """An InvalidTarget whose strings are cut to SOURCE_MAX and safe to encode as UTF-8."""
    return InvalidTarget(
        None if namespace is None else clip(namespace),
        None if repository is None else clip(repository),
        None if tag is None else clip(tag),
        reason,
        clip(source),
    )


def clip(value: str) -> str:
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


def has_surrogates(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
