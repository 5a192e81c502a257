"""Planned crawls: the list-or-fetch decision and the disk-backed grouping by repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawler.crawl.plan import Spill, WantedTags, list_pages, should_list
from crawler.targets import Target


@pytest.mark.parametrize(
    ("wanted", "num_images", "listed"),
    [
        (1, 1, False),  # one request either way: fetch (exact, no manifest gaps)
        (2, 1, True),
        (2, 1000, True),
        (2, 1001, False),  # two pages against two fetches: a tie fetches
        (3, 1001, True),
        (1000, 1_000_000, False),
        (1000, 999_000, True),
        (5, 0, True),  # an empty repository: one page proves the tags are gone
        (50, None, False),  # not in ListRepoDetails: fetch, so 404s stay not_found
    ],
)
def test_should_list_when_pages_are_fewer_than_fetches(
    wanted: int, num_images: int | None, listed: bool
) -> None:
    """List a repository only when its pages (1,000 tags each) are fewer than its wanted tags."""
    assert should_list(wanted, num_images) is listed


def test_list_pages_rounds_up() -> None:
    """1,000 tags are one page, 1,001 two; an empty repository still costs one request."""
    assert [list_pages(n) for n in (0, 1, 1000, 1001, 2000, 2001)] == [1, 1, 1, 2, 2, 3]


_NS = st.sampled_from(["a", "b-1", "ns.x", "z"])
_REPO = st.sampled_from(["r", "g/r", "g/r/s", "r2", "r-2"])
_TAG = st.text("abcAB01._-", min_size=1, max_size=5).filter(lambda t: t[0] not in ".-")


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60, deadline=None
)
@given(st.lists(st.tuples(_NS, _REPO, _TAG), max_size=120), st.integers(1, 7))
def test_groups_hold_every_target_once_in_repository_order(
    tmp_path: Path, triples: list[tuple[str, str, str]], run_keys: int
) -> None:
    """Whatever the input order and run size, each repository comes out once, in sorted
    order, with a count equal to its distinct targets, and its tags read back exactly."""
    distinct = list(dict.fromkeys(triples))
    with Spill(tmp_path, run_keys=run_keys) as spill:
        for namespace, repository, tag in distinct:
            spill.add(Target(namespace, repository, tag))
        groups = list(spill.groups())
        keys = [(g.namespace, g.repository) for g in groups]
        assert keys == sorted({(ns, repo) for ns, repo, _ in distinct})
        read_back = [(g.namespace, g.repository, tag) for g in groups for tag in g.tags()]
        assert sorted(read_back) == sorted(distinct)
        assert len(read_back) == len(distinct)
        for group in groups:
            assert group.count == sum(
                1 for ns, repo, _ in distinct if (ns, repo) == (group.namespace, group.repository)
            )
            assert list(group.targets()) == [
                Target(group.namespace, group.repository, tag) for tag in group.tags()
            ]
    assert not list(tmp_path.iterdir())  # the spill directory is gone


def test_a_duplicate_that_reaches_the_spill_is_one_target(tmp_path: Path) -> None:
    """The same key in two runs merges into one line: never two rows for one target."""
    with Spill(tmp_path, run_keys=1) as spill:
        for _ in range(3):
            spill.add(Target("ns", "repo", "v1"))
        spill.add(Target("ns", "repo", "v2"))
        (group,) = spill.groups()
        assert (group.count, list(group.tags())) == (2, ["v1", "v2"])


def test_a_killed_runs_spill_is_removed_but_not_another_shards(tmp_path: Path) -> None:
    """A spill directory left with this run's tag is removed at start; another tag's stays."""
    (tmp_path / ".plan-s0of2-old").mkdir()
    (tmp_path / ".plan-s1of2-live").mkdir()
    with Spill(tmp_path, tag="s0of2"):
        names = sorted(p.name for p in tmp_path.iterdir())
        assert ".plan-s0of2-old" not in names
        assert ".plan-s1of2-live" in names
        assert len(names) == 2


def test_an_empty_input_has_no_groups(tmp_path: Path) -> None:
    """No targets: no groups, and nothing left on disk."""
    with Spill(tmp_path) as spill:
        assert list(spill.groups()) == []
    assert not list(tmp_path.iterdir())


@given(
    st.sets(_TAG, max_size=80),
    st.lists(_TAG, max_size=120),
)
def test_wanted_tags_take_each_wanted_tag_once(wanted: set[str], offered: list[str]) -> None:
    """A listing's items are taken only when wanted and the first time; what is left
    untaken afterwards is exactly the wanted tags the listing did not offer."""
    tags = WantedTags(sorted(wanted), len(wanted))
    taken = [tag for tag in offered if tags.take(tag)]
    assert taken == list(dict.fromkeys(tag for tag in offered if tag in wanted))
    assert tags.taken == len(taken)
    assert sorted(tags.untaken(sorted(wanted))) == sorted(wanted - set(offered))
    assert tags.taken == len(wanted)
    assert list(tags.untaken(sorted(wanted))) == []  # nothing is left twice


def test_wanted_tags_stay_small_for_a_huge_repository() -> None:
    """A hundred thousand wanted tags take under 40 bytes each (table and marks)."""
    count = 100_000
    tags = WantedTags((f"v{i}" for i in range(count)), count)
    assert tags.nbytes / count < 40
    assert tags.take("v99999")
    assert not tags.take("v100000")
