"""The listing filters: globs, --updated-since, --newest and what goes to the server. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.crawl.filters import (
    FilterError,
    Filters,
    is_literal,
    literal_part,
    parse_since,
)

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)

# Names as SWR allows them, plus the glob characters.
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-/"
names = st.text(_NAME_CHARS, min_size=1, max_size=20)
globs = st.text(_NAME_CHARS + "*?[]!", min_size=1, max_size=12)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", NOW - timedelta(days=30)),
        ("12h", NOW - timedelta(hours=12)),
        ("45m", NOW - timedelta(minutes=45)),
        ("90s", NOW - timedelta(seconds=90)),
        ("2w", NOW - timedelta(weeks=2)),
        ("2025-06-01", datetime(2025, 6, 1, tzinfo=UTC)),
        ("2025-06-01T12:30:00Z", datetime(2025, 6, 1, 12, 30, tzinfo=UTC)),
        ("2025-06-01T12:30:00+08:00", datetime(2025, 6, 1, 4, 30, tzinfo=UTC)),
        ("2025-06-01 12:30", datetime(2025, 6, 1, 12, 30, tzinfo=UTC)),
    ],
)
def test_parse_since_takes_ages_and_iso_times(text: str, expected: datetime) -> None:
    """An age counts back from now; an ISO time without a zone is UTC."""
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "30", "1700000000", "30 days", "d", "-3d", "2025-13-01", "x"])
def test_parse_since_refuses_anything_else(text: str) -> None:
    """A bare number (an epoch? days?), a bad date or a unit alone is refused, naming the flag."""
    with pytest.raises(FilterError, match="updated-since"):
        parse_since(text, NOW)


_LITERAL = st.text(_NAME_CHARS, min_size=1, max_size=6)
_PART = st.one_of(_LITERAL, st.just("*"), st.just("?"), st.just("[a-c]"), st.just("[!a]"))


@given(st.lists(_PART, min_size=1, max_size=6), st.data())
def test_literal_part_is_in_every_match(parts: list[str], data: st.DataObject) -> None:
    """Whatever the glob, every name it matches contains its literal part (so pushing
    that part to a substring-matching server never loses a match)."""
    glob = "".join(parts)
    filled = []
    for part in parts:
        if part == "*":
            filled.append(data.draw(st.text(_NAME_CHARS, max_size=4)))
        elif part == "?" or part == "[!a]":
            filled.append(data.draw(st.sampled_from("bz/.9")))
        elif part == "[a-c]":
            filled.append(data.draw(st.sampled_from("abc")))
        else:
            filled.append(part)
    name = "".join(filled)
    assert fnmatchcase(name, glob)
    assert literal_part(glob) in name


def test_literal_part_examples() -> None:
    """The longest run outside wildcards and sets; an unclosed bracket is a plain character."""
    assert literal_part("library/*nginx*") == "library/"
    assert literal_part("*-alpine") == "-alpine"
    assert literal_part("v1.[0-9]*.release") == ".release"
    assert literal_part("a[b") == "a[b"
    assert literal_part("*") == ""
    assert is_literal("library/nginx")
    assert not is_literal("v1.?")


@given(st.lists(globs, min_size=1, max_size=3), names)
def test_globs_match_like_fnmatchcase_on_the_whole_name(patterns: list[str], name: str) -> None:
    """A name is taken when any of the globs matches all of it, case-sensitively."""
    expected = any(fnmatchcase(name, glob) for glob in patterns)
    filters = Filters(
        namespaces=tuple(patterns), repositories=tuple(patterns), tags=tuple(patterns)
    )
    assert filters.wants_namespace(name) is expected
    assert filters.wants_repository(name) is expected
    assert filters.wants_tag_name(name) is expected


def test_star_crosses_slashes_in_repository_names() -> None:
    """``library/*`` takes repositories in nested groups too; a glob is case-sensitive."""
    filters = Filters(repositories=("library/*",))
    assert filters.wants_repository("library/web/nginx")
    assert not filters.wants_repository("base/library/nginx")
    assert not Filters(tags=("V1*",)).wants_tag_name("v1.0")


def test_no_filter_takes_everything_and_asks_for_plain_pages() -> None:
    """The empty filter takes every name and sends only the largest page size."""
    filters = Filters()
    assert filters.wants_namespace("x")
    assert filters.wants_repository("a/b")
    assert filters.namespace_names() is None
    assert filters.repository_query() == []
    assert filters.tag_query() == []
    assert not filters.ordered
    assert filters.page_size() == 1000
    selection = filters.selection()
    assert all(selection.take(f"t{i}", None) for i in range(2000))
    assert not selection.done


def test_literal_namespaces_are_listed_directly() -> None:
    """Plain namespace names skip ListNamespaces (deduplicated, in order); one glob does not."""
    assert Filters(namespaces=("b", "a", "b")).namespace_names() == ("b", "a")
    assert Filters(namespaces=("b", "team-*")).namespace_names() is None


def test_server_gets_the_literal_part_of_a_single_glob_only() -> None:
    """One repository/tag glob sends its literal part; two globs (an OR) send nothing."""
    assert Filters(repositories=("apps/*work*",)).repository_query() == [("name", "apps/")]
    assert Filters(repositories=("a*", "b*")).repository_query() == []
    assert Filters(repositories=("*",)).repository_query() == []
    assert Filters(tags=("*-alpine",)).tag_query() == [("tag", "-alpine")]
    assert Filters(tags=("v1*", "v2*")).tag_query() == []


def test_newest_and_since_ask_for_newest_first() -> None:
    """--newest alone asks for exactly N (up to a page); with another filter, full pages."""
    assert Filters(newest=5).ordered
    assert Filters(updated_since=NOW).ordered
    assert not Filters(tags=("v*",)).ordered
    assert Filters(newest=5).page_size() == 5
    assert Filters(newest=5000).page_size() == 1000
    assert Filters(newest=5, tags=("v*",)).page_size() == 1000
    assert Filters(newest=5, updated_since=NOW).page_size() == 1000


def test_selection_stops_at_the_first_older_tag() -> None:
    """Newest first: a tag older than the cut-off ends the listing; an unknown date is skipped."""
    selection = Filters(updated_since=NOW - timedelta(days=1)).selection()
    assert selection.take("a", "2026-06-15T00:00:00Z")
    assert not selection.take("b", None)  # not known to be recent
    assert not selection.take("c", "not a date")
    assert not selection.done
    # (taken, done) together: mypy would take a lone ``done`` check after the one above as dead.
    assert (selection.take("d", "2026-06-13T00:00:00Z"), selection.done) == (False, True)
    assert not selection.take("e", "2026-06-15T11:00:00Z")  # nothing once done


def test_selection_takes_the_newest_n_matching_tags() -> None:
    """--newest counts only tags the other filters take, and is done at N."""
    selection = Filters(newest=2, tags=("v*",)).selection()
    taken = [tag for tag in ("latest", "v3", "dev", "v2", "v1") if selection.take(tag, None)]
    assert taken == ["v3", "v2"]
    assert selection.done


@given(
    st.lists(
        st.tuples(st.sampled_from(["v1", "v2", "rc", "x"]), st.integers(0, 100) | st.none()),
        max_size=40,
    ),
    st.integers(0, 5),
    st.integers(0, 100) | st.none(),
)
def test_selection_equals_filtering_a_newest_first_list(
    items: list[tuple[str, int | None]], newest: int, since_day: int | None
) -> None:
    """Fed a list sorted newest first (unknown dates last), the selection takes exactly the
    first N tags that match the glob and are not older than the cut-off."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    since = None if since_day is None else base + timedelta(days=since_day)
    ordered = sorted(items, key=lambda item: -1 if item[1] is None else item[1], reverse=True)

    def stamp(day: int | None) -> str | None:
        return None if day is None else (base + timedelta(days=day)).isoformat()

    filters = Filters(tags=("v*",), updated_since=since, newest=newest)
    selection = filters.selection()
    got = [i for i, (tag, day) in enumerate(ordered) if selection.take(tag, stamp(day))]
    expected = [
        i
        for i, (tag, day) in enumerate(ordered)
        if tag.startswith("v")
        and (since is None or (day is not None and base + timedelta(days=day) >= since))
    ]
    if newest:
        expected = expected[:newest]
    assert got == expected


def test_empty_patterns_and_negative_newest_are_refused() -> None:
    """An empty glob (a typo like --tag '') or a negative --newest is an error naming the flag."""
    with pytest.raises(FilterError, match="--tag"):
        Filters(tags=("",))
    with pytest.raises(FilterError, match="newest"):
        Filters(newest=-1)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"discover": True, "updated_since": "yesterday"}, "updated-since"),
        ({"targets": "t.txt", "tags": ("v*",)}, "--tag: only with --discover"),
        ({"targets": "t.txt", "newest": 3}, "--newest: only with --discover"),
        ({"targets": "t.txt", "mode": "list"}, "--mode list is for --discover"),
    ],
)
def test_bad_filter_settings_are_usage_errors(flags: dict[str, object], message: str) -> None:
    """A filter that cannot be used is a ConfigError (exit 2) naming the flag, before any run."""
    from crawler.config import build_config
    from crawler.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        build_config({"out": "o", "endpoint": "http://127.0.0.1:9", **flags}, environ={})
