"""The sandbox's list APIs keep the real service's shapes and quirks (see docs/swr-api.md)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from crawler.http.client import SwrClient
from crawler.http.credentials import StaticToken
from crawler.http.endpoint import parse_endpoint
from crawler.http.transport import Transport
from crawler.sandbox.catalogue import Catalogue
from crawler.sandbox.lists import (
    EMPTY_MANIFEST_ONE_IN,
    list_repository_tags_v2,
    list_repository_tags_v3,
    listed_without_manifest,
)
from crawler.sandbox.server import SandboxConfig, running_sandbox

CATALOGUE = Catalogue(seed=4, namespaces=1, repos_per_namespace=2, tags_per_repo=1200)
NAMESPACE = CATALOGUE.namespaces()[0]
REPOSITORY = CATALOGUE.repositories(NAMESPACE)[0]


def v3(**query: str) -> tuple[int, Any]:
    status, value, _ = list_repository_tags_v3(CATALOGUE, NAMESPACE, REPOSITORY, query)
    return status, value


@pytest.mark.parametrize("limit", ["1001", "0", "many"])
def test_a_limit_out_of_range_is_a_400_with_a_huawei_body(limit: str) -> None:
    """limit above 1,000 (or not a positive integer) answers 400 with an SWR error code."""
    status, body = v3(limit=limit)
    assert status == 400
    assert body["errors"][0]["errorCode"] == "SVCSTG.SWR.4000014"


def test_the_tag_marker_is_opaque_and_a_forged_one_is_refused() -> None:
    """nextMarker is not an offset a client could compute; one made up answers 400."""
    status, body = v3(limit="1000")
    marker = body["nextMarker"]
    assert status == 200
    assert isinstance(marker, str)
    assert marker not in ("", "1000")
    assert not marker.isdigit()
    _, following = v3(limit="1000", marker=marker)
    assert [t["tag"] for t in following["tags"]] == CATALOGUE.tags(NAMESPACE, REPOSITORY)[1000:]
    assert (following["nextMarker"], following["has_more"]) == ("", False)
    assert v3(marker="1000")[0] == 400


def test_manifest_is_empty_unless_asked_for_and_a_few_are_empty_even_then() -> None:
    """Without with_manifest every item's manifest is ""; with it, all but about one in
    EMPTY_MANIFEST_ONE_IN carry the manifest ShowRepoTag has."""
    _, bare = v3(limit="1000")
    assert {t["manifest"] for t in bare["tags"]} == {""}
    _, full = v3(limit="1000", with_manifest="true")
    items = full["tags"]
    empty = [t["tag"] for t in items if t["manifest"] == ""]
    assert 0 < len(empty) < 3 * 1000 // EMPTY_MANIFEST_ONE_IN
    assert all(listed_without_manifest(NAMESPACE, REPOSITORY, tag) for tag in empty)
    for item in items:
        if item["manifest"]:
            expected = CATALOGUE.get(NAMESPACE, REPOSITORY, item["tag"])
            assert item == expected


def test_v2_items_are_keyed_tag_with_a_capital_and_the_total_is_in_content_range() -> None:
    """v2 ListRepositoryTags: a bare array of items keyed "Tag", the total in Content-Range."""
    status, items, headers = list_repository_tags_v2(
        CATALOGUE, NAMESPACE, REPOSITORY, {"offset": "1000", "limit": "1000"}
    )
    assert status == 200
    assert isinstance(items, list)
    assert len(items) == 200
    assert all("Tag" in i and "tag" not in i and "deleted" in i for i in items)
    assert headers == {"Content-Range": "1000-1199/1200"}


@pytest.mark.anyio
async def test_v3_switched_off_answers_the_gateways_404_and_v2_still_answers() -> None:
    """With v3_tags=False the v3 tag list is 404 APIG.0101, as in a region without it."""
    config = SandboxConfig(
        seed=4, namespaces=1, repos_per_namespace=1, tags_per_repo=3, v3_tags=False
    )
    async with running_sandbox(config) as sb:
        namespace = sb.catalogue.namespaces()[0]
        repository = sb.catalogue.repositories(namespace)[0].replace("/", "$")
        transport = Transport(timeout=5, max_connections=2)
        client = SwrClient(parse_endpoint(sb.url), StaticToken("sandbox-token"), transport)
        try:
            path = f"/manage/namespaces/{namespace}/repos/{repository}/tags"
            missing = await client.get("/v3" + path, [("limit", "10")])
            present = await client.get("/v2" + path, [("limit", "10"), ("offset", "0")])
        finally:
            await transport.aclose()
    assert (missing.status, missing.error_code) == (404, "APIG.0101")
    assert present.status == 200
    assert len(orjson.loads(present.body)) == 3


def test_absent_fields_off_gives_every_tag_every_documented_field() -> None:
    """By default a few tags lack `updated`; absent_fields=False keeps all 15 fields,
    and changes nothing else of a tag."""
    fields = {
        "id", "repo_id", "tag", "image_id", "manifest", "digest", "schema", "path",
        "internal_path", "size", "is_trusted", "created", "updated", "domain_id", "tag_type",
    }  # fmt: skip
    quirky = Catalogue(seed=4, namespaces=1, repos_per_namespace=2, tags_per_repo=200)
    whole = Catalogue(
        seed=4, namespaces=1, repos_per_namespace=2, tags_per_repo=200, absent_fields=False
    )
    lacking = [t for t in quirky.targets() if not fields <= (quirky.get(*t) or {}).keys()]
    assert lacking
    assert all(fields <= (whole.get(*t) or {}).keys() for t in whole.targets())
    for target in lacking:
        assert {k: v for k, v in (whole.get(*target) or {}).items() if k != "updated"} == (
            quirky.get(*target)
        )
