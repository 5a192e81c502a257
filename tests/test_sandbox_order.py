"""The sandbox's tag-list ordering and filter parameters, and repositories of mixed sizes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crawler.sandbox.catalogue import Catalogue
from crawler.sandbox.lists import (
    list_repo_details_v3,
    list_repository_tags_v2,
    list_repository_tags_v3,
)
from tests.e2e_helpers import catalogue_keys

CATALOGUE = Catalogue(seed=4, namespaces=2, repos_per_namespace=3, tags_per_repo=40)
NS = CATALOGUE.namespaces()[0]
REPO = CATALOGUE.repositories(NS)[1]


def _updated(tag: str) -> datetime:
    details = CATALOGUE.get(NS, REPO, tag)
    assert details is not None
    text = details.get("updated")
    return datetime.min.replace(tzinfo=UTC) if text is None else datetime.fromisoformat(text)


def _walk_v3(query: dict[str, str]) -> list[str]:
    """Every tag of REPO in the order the v3 list gives them, page after page."""
    tags: list[str] = []
    marker = ""
    while True:
        status, body, _ = list_repository_tags_v3(
            CATALOGUE, NS, REPO, {**query, "limit": "7", **({"marker": marker} if marker else {})}
        )
        assert status == 200
        tags += [item["tag"] for item in body["tags"]]
        marker = body["nextMarker"]
        if not body["has_more"]:
            return tags


def test_v3_tags_newest_first_across_pages() -> None:
    """order_column=updated_at desc: every page continues the same order, nulls last."""
    tags = _walk_v3({"order_column": "updated_at", "order_type": "desc"})
    assert sorted(tags) == sorted(CATALOGUE.tags(NS, REPO))
    times = [_updated(tag) for tag in tags]
    assert times == sorted(times, reverse=True)
    undated = [tag for tag in tags if _updated(tag).year == 1]
    assert undated, "the seed was chosen so that some tags have no updated"
    assert tags[len(tags) - len(undated) :] == undated


def test_v3_tags_by_name_ascending_with_a_fuzzy_tag_filter() -> None:
    """order_column=tag asc sorts by name; the tag parameter keeps names containing it."""
    tags = _walk_v3({"order_column": "tag", "order_type": "asc", "tag": "."})
    assert tags == sorted(t for t in CATALOGUE.tags(NS, REPO) if "." in t)


def test_v2_tags_take_the_same_order() -> None:
    """The v2 list orders the same way (items keyed "Tag")."""
    status, items, _ = list_repository_tags_v2(
        CATALOGUE,
        NS,
        REPO,
        {"order_column": "updated_at", "order_type": "asc", "offset": "0", "limit": "1000"},
    )
    assert status == 200
    times = [_updated(item["Tag"]) for item in items]
    assert times == sorted(times)


@pytest.mark.parametrize(
    "query",
    [
        {"order_column": "updated_at"},
        {"order_type": "desc"},
        {"order_column": "size", "order_type": "desc"},
        {"order_column": "tag", "order_type": "down"},
    ],
)
def test_ordering_parameters_are_checked(query: dict[str, str]) -> None:
    """order_column and order_type go together, with the documented values, else 400."""
    status, body, _ = list_repository_tags_v3(CATALOGUE, NS, REPO, query)
    assert status == 400
    assert body["errors"][0]["errorCode"] == "SVCSTG.SWR.4000014"


def test_tag_counts_cycle_over_repositories() -> None:
    """tag_counts gives each namespace's repositories their own sizes, empty ones included."""
    catalogue = Catalogue(seed=2, namespaces=2, repos_per_namespace=4, tag_counts=(3, 0, 1200))
    sizes = [3, 0, 1200, 3]
    assert len(catalogue) == 2 * sum(sizes)
    assert len(list(catalogue.targets())) == len(catalogue)
    keys = set(catalogue_keys(catalogue))
    assert len(keys) == len(catalogue)
    ids = set()
    for namespace in catalogue.namespaces():
        for r, repository in enumerate(catalogue.repositories(namespace)):
            tags = catalogue.tags(namespace, repository)
            assert len(tags) == sizes[r]
            details = catalogue.repository_details(namespace, repository)
            assert details is not None
            assert details["num_images"] == sizes[r]
            for tag in tags:
                item = catalogue.get(namespace, repository, tag)
                assert item is not None
                ids.add(item["id"])
            if not sizes[r]:
                assert catalogue.get(namespace, repository, "latest") is None
    assert len(ids) == len(catalogue)  # tag ids stay unique across repositories


def test_repository_list_reports_mixed_num_images() -> None:
    """ListRepoDetails' num_images is each repository's own tag count."""
    catalogue = Catalogue(seed=2, namespaces=1, repos_per_namespace=3, tag_counts=(1, 1001))
    status, body, _ = list_repo_details_v3(catalogue, {"limit": "10"})
    assert status == 200
    assert [repo["num_images"] for repo in body["repos"]] == [1, 1001, 1]
