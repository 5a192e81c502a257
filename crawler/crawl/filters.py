"""Which part of a registry a listing takes: the filters of ``crawl --discover`` and ``discover``.

Pure: names, timestamps and list items in, decisions out.

- ``--namespace``, ``--repository``, ``--tag``: shell globs (:func:`fnmatch.fnmatchcase`,
  case-sensitive) matched against the whole name; each is repeatable and a name
  is taken when it matches any of them. ``*`` matches ``/`` too, so
  ``library/*`` takes ``library/web/nginx``.
- ``--updated-since``: an ISO date or date-time (UTC when it has no zone), or an
  age such as ``30d``, ``12h``, ``45m``, ``2w`` counted back from the start of the run.
  A tag whose ``updated`` is absent is not known to be recent, and is left out.
- ``--newest N``: the ``N`` most recently updated tags of each repository
  among those the other filters take.

What the list APIs can narrow is pushed to the server (``docs/swr-api.md``):
a namespace glob without wildcards is listed directly instead of through
ListNamespaces; the longest literal part of a single repository or tag glob
goes as the ``name``/``tag`` query parameter, which the service matches as a
substring ("fuzzy"), so the server's answer is a superset and the exact glob is
still applied here; ``--updated-since`` and ``--newest`` ask for the tags in
``order_column=updated_at&order_type=desc``, so the listing of a repository
stops at the first tag older than the cut-off, or once ``N`` are taken.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from crawler.output.normalize import parse_timestamp

_WILDCARDS = frozenset("*?[")
_AGE = re.compile(r"([0-9]+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: A page of the tag list: the largest the API allows.
MAX_PAGE = 1000


class FilterError(ValueError):
    """A filter that no listing could use (its message names the flag)."""


def parse_since(text: str, now: datetime) -> datetime:
    """``--updated-since``: an ISO date/date-time, or an age (``30d``) before ``now``."""
    value = text.strip()
    age = _AGE.fullmatch(value)
    if age is not None:
        return now - timedelta(seconds=int(age.group(1)) * _UNIT_SECONDS[age.group(2)])
    parsed = None
    if value[:4].isdigit() and value[4:5] == "-":  # an ISO date, never an epoch number
        try:
            datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        else:
            parsed = parse_timestamp(value)
    if parsed is None:
        raise FilterError(
            f"updated-since {text!r}: expected an ISO date or date-time "
            "(2025-06-01, 2025-06-01T12:00:00Z) or an age (30d, 12h, 45m, 2w)"
        )
    return parsed


def is_literal(glob: str) -> bool:
    """True when ``glob`` has no wildcard: it matches exactly one name, itself."""
    return not _WILDCARDS & set(glob)


def literal_part(glob: str) -> str:
    """The longest run of ``glob`` outside wildcards and ``[...]`` sets: every match holds it."""
    runs: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(glob):
        char = glob[i]
        if char in "*?":
            runs.append("".join(current))
            current = []
        elif char == "[":
            end = _set_end(glob, i)
            if end is None:
                current.append(char)  # fnmatch reads an unclosed "[" as itself
            else:
                runs.append("".join(current))
                current = []
                i = end
        else:
            current.append(char)
        i += 1
    runs.append("".join(current))
    return max(runs, key=len)


def _set_end(glob: str, start: int) -> int | None:
    """Index of the ``]`` closing the set that opens at ``start`` (fnmatch's rules), or None."""
    j = start + 1
    if j < len(glob) and glob[j] == "!":
        j += 1
    if j < len(glob) and glob[j] == "]":
        j += 1
    end = glob.find("]", j)
    return None if end < 0 else end


def _matches(name: str, globs: Sequence[str]) -> bool:
    return not globs or any(fnmatchcase(name, glob) for glob in globs)


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters of one listing; the empty default takes everything."""

    namespaces: tuple[str, ...] = ()
    repositories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    updated_since: datetime | None = None
    newest: int = 0
    """Most tags per repository, the most recently updated first; 0 = all."""

    def __post_init__(self) -> None:
        for flag, globs in (
            ("namespace", self.namespaces),
            ("repository", self.repositories),
            ("tag", self.tags),
        ):
            if any(not glob for glob in globs):
                raise FilterError(f"--{flag}: an empty pattern matches nothing")
        if self.newest < 0:
            raise FilterError(f"newest must be >= 0 (got {self.newest})")

    @property
    def ordered(self) -> bool:
        """Whether the tag lists are asked for newest first (and may stop early)."""
        return self.updated_since is not None or self.newest > 0

    def namespace_names(self) -> tuple[str, ...] | None:
        """The namespaces to list directly, when every namespace glob is a plain name;
        None when ListNamespaces must be asked (no glob, or one with a wildcard)."""
        if self.namespaces and all(is_literal(glob) for glob in self.namespaces):
            return tuple(dict.fromkeys(self.namespaces))
        return None

    def wants_namespace(self, namespace: str) -> bool:
        """Whether a namespace is taken."""
        return _matches(namespace, self.namespaces)

    def wants_repository(self, repository: str) -> bool:
        """Whether a repository (its name with ``/``) is taken."""
        return _matches(repository, self.repositories)

    def wants_tag_name(self, tag: str) -> bool:
        """Whether a tag name passes ``--tag``."""
        return _matches(tag, self.tags)

    def repository_query(self) -> list[tuple[str, str]]:
        """Query parameters narrowing ListRepoDetails (a superset of what is taken)."""
        if len(self.repositories) == 1:
            part = literal_part(self.repositories[0])
            if part:
                return [("name", part)]
        return []

    def tag_query(self) -> list[tuple[str, str]]:
        """Query parameters narrowing the tag list (a superset of what is taken); the
        order (:attr:`ordered`) and the page size (:meth:`page_size`) come apart."""
        if len(self.tags) == 1:
            part = literal_part(self.tags[0])
            if part:
                return [("tag", part)]
        return []

    def page_size(self, largest: int = MAX_PAGE) -> int:
        """The tag-list page to ask for: ``largest``, unless ``--newest N`` alone needs fewer."""
        if self.newest and not self.tags and self.updated_since is None:
            return min(self.newest, largest)  # every item is taken: ask for no more
        return largest

    def selection(self) -> TagSelection:
        """A fresh selection for the tag list of one repository."""
        return TagSelection(self)


@dataclass(slots=True)
class TagSelection:
    """The tags of one repository's listing that are taken, fed in the server's order.

    With :attr:`Filters.ordered` the items come newest first: the listing is
    :attr:`done` at the first item older than ``--updated-since`` or once
    ``--newest`` items are taken, and no further page need be asked for.
    """

    filters: Filters
    taken: int = 0
    done: bool = False

    def take(self, tag: str, updated: object) -> bool:
        """Whether the item (its tag name and raw ``updated`` value) is taken."""
        if self.done:
            return False
        since = self.filters.updated_since
        if since is not None:
            when = parse_timestamp(updated)
            if when is None:
                return False
            if when < since:
                self.done = True  # newest first: every later item is older still
                return False
        if not self.filters.wants_tag_name(tag):
            return False
        self.taken += 1
        if self.filters.newest and self.taken >= self.filters.newest:
            self.done = True
        return True
