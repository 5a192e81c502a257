"""The sandbox catalogue: deterministic, valid names, realistic and awkward tag details."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.sandbox.catalogue import MAX_SIZE, Catalogue
from tests.e2e_helpers import TAG_FIELDS

# The API page's rules, written again here independently of the sandbox's own.
NAMESPACE = re.compile(r"^(?=.{1,64}$)[a-z](?:[a-z0-9]|__(?=[a-z0-9])|[._-](?=[a-z0-9]))*$")
REPOSITORY = re.compile(r"^(?=.{1,128}$)[a-z0-9](?:[a-z0-9]|__(?=[a-z0-9])|[./_-](?=[a-z0-9]))*$")
TAG = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    """Two catalogues with one seed serve identical bodies; a different seed changes them."""
    first, second, other = Catalogue(seed=5), Catalogue(seed=5), Catalogue(seed=6)
    targets = list(first.targets())
    assert targets == list(second.targets())
    assert all(first.body(*t) == second.body(*t) for t in targets)
    assert targets != list(other.targets())


def test_targets_are_unique_and_match_len() -> None:
    """targets() yields len(catalogue) distinct targets, each of which get() finds."""
    catalogue = Catalogue(seed=1, namespaces=4, repos_per_namespace=7, tags_per_repo=9)
    targets = list(catalogue.targets())
    assert len(targets) == len(catalogue) == 4 * 7 * 9
    assert len(set(targets)) == len(targets)
    assert all(catalogue.get(*t) is not None for t in targets)


def test_every_name_follows_the_api_page_rules() -> None:
    """Namespaces, repositories and tags are all valid, and the awkward shapes all occur."""
    catalogue = Catalogue(seed=3, namespaces=12, repos_per_namespace=20, tags_per_repo=12)
    targets = list(catalogue.targets())
    for namespace, repository, tag in targets:
        assert NAMESPACE.match(namespace), namespace
        assert REPOSITORY.match(repository), repository
        assert TAG.match(tag), tag
    namespaces = catalogue.namespaces()
    for separator in (".", "_", "-", "__"):
        assert any(separator in ns for ns in namespaces), separator
    repositories = {repo for _, repo, _ in targets}
    assert sum("/" in repo for repo in repositories) > len(repositories) / 3
    tags = {tag for _, _, tag in targets}
    assert "latest" in tags
    assert any(re.fullmatch(r"v\d+\.\d+\.\d+", t) for t in tags)
    assert any(re.fullmatch(r"\d{4}\.\d\d-rc\d+", t) for t in tags)
    assert any(re.fullmatch(r"sha-[0-9a-f]{8}", t) for t in tags)


def test_details_have_the_api_fields_and_types() -> None:
    """Every object has the API page's fields with their JSON types, manifest as a string."""
    catalogue = Catalogue()
    for target in catalogue.targets():
        obj = catalogue.get(*target)
        assert obj is not None
        assert [key for key in TAG_FIELDS if key in obj] == [k for k in obj if k in TAG_FIELDS]
        assert set(TAG_FIELDS) - {"updated"} <= obj.keys()
        assert obj["tag"] == target[2]
        assert isinstance(obj["manifest"], str)
        assert isinstance(obj["is_trusted"], bool)
        assert 0 <= obj["size"] <= MAX_SIZE
        assert obj["digest"] == "sha256:" + hashlib.sha256(obj["manifest"].encode()).hexdigest()
        assert obj["path"].endswith(f"/{target[0]}/{target[1]}:{target[2]}")
        assert json.loads(catalogue.body(*target) or b"") == obj


def test_manifest_kinds_all_occur_with_their_schema_and_tag_type() -> None:
    """docker v2, OCI manifest, docker list, OCI index and schema 1 all occur, consistently."""
    catalogue = Catalogue()
    kinds: Counter[str] = Counter()
    for target in catalogue.targets():
        obj = catalogue.get(*target)
        assert obj is not None
        manifest = json.loads(obj["manifest"])
        media_type = manifest.get("mediaType")
        if manifest["schemaVersion"] == 1:
            kinds["schema1"] += 1
            assert (obj["schema"], obj["tag_type"]) == (1, 0)
            assert manifest["fsLayers"]
            assert manifest["signatures"]
            assert media_type is None
        elif "manifests" in manifest:
            kinds[media_type] += 1
            assert (obj["schema"], obj["tag_type"]) == (2, 1)
            assert all(
                {"os", "architecture"} <= m["platform"].keys() for m in manifest["manifests"]
            )
        else:
            kinds[media_type] += 1
            assert (obj["schema"], obj["tag_type"]) == (2, 0)
            assert manifest["config"]["digest"].startswith("sha256:")
    assert set(kinds) == {
        "schema1",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    }
    variants = [
        m["platform"].get("variant")
        for t in catalogue.targets()
        for m in json.loads((catalogue.get(*t) or {})["manifest"]).get("manifests", [])
    ]
    assert any(variants)


def test_sizes_are_realistic_unless_extremes_are_asked_for() -> None:
    """By default every size is the manifest's total (no 0, no 2^63-1); the extremes
    replace a few sizes and change nothing else."""
    plain, extreme = Catalogue(), Catalogue(extreme_sizes=True)
    changed = 0
    for target in plain.targets():
        a, b = plain.get(*target) or {}, extreme.get(*target) or {}
        assert 0 < a["size"] < 2**40
        changed += a["size"] != b["size"]
        assert {**a, "size": 0} == {**b, "size": 0}
    assert 0 < changed < len(plain) // 10


def test_awkward_values_occur() -> None:
    """Extreme sizes (when asked for), both timestamp formats, absent/null updated and
    unknown fields all occur."""
    catalogue = Catalogue(extreme_sizes=True)
    objects = [catalogue.get(*t) or {} for t in catalogue.targets()]
    sizes = {obj["size"] for obj in objects}
    assert {0, MAX_SIZE} <= sizes
    created = [obj["created"] for obj in objects]
    assert all(TIMESTAMP.match(value) for value in created)
    assert any("." in value for value in created)
    assert any("." not in value for value in created)
    assert all(datetime.fromisoformat(v.replace("Z", "+00:00")) for v in created)
    assert any("updated" not in obj for obj in objects)
    assert any("updated" in obj and obj["updated"] is None for obj in objects)
    assert any(set(obj) - set(TAG_FIELDS) for obj in objects)
    assert any(obj["is_trusted"] for obj in objects)
    assert not all(o["is_trusted"] for o in objects)


def test_unknown_targets_are_absent() -> None:
    """Near misses (wrong index, unknown names, another repo's tag) are not found."""
    catalogue = Catalogue(tags_per_repo=5)
    namespace, repository, tag = next(t for t in catalogue.targets() if t[2] != "latest")
    assert catalogue.get(namespace, repository, tag + "0") is None
    assert catalogue.get(namespace + "x", repository, tag) is None
    assert catalogue.get(namespace, repository + "9", tag) is None
    assert catalogue.body(namespace, repository, "v0.0.99") is None
    other_repo = catalogue.repositories(namespace)[1]
    foreign = catalogue.tags(namespace, other_repo)[1]
    if foreign not in catalogue.tags(namespace, repository):
        assert catalogue.get(namespace, repository, foreign) is None


_SMALL = Catalogue(tags_per_repo=3)
_SMALL_TARGETS = frozenset(_SMALL.targets())
_NAME_PARTS = st.text(alphabet="abcsv0123456789.-_/$", max_size=24) | st.text(max_size=12)


@settings(max_examples=200, deadline=None)
@given(_NAME_PARTS, _NAME_PARTS, _NAME_PARTS | st.sampled_from(["latest", "sha-00000000"]))
def test_arbitrary_lookups_never_crash(namespace: str, repository: str, tag: str) -> None:
    """Any strings at all: get() answers None or the object of a real target."""
    obj = _SMALL.get(namespace, repository, tag)
    assert (obj is not None) == ((namespace, repository, tag) in _SMALL_TARGETS)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**40),
    st.integers(1, 4),
    st.integers(1, 6),
    st.integers(1, 40),
)
def test_every_seed_and_shape_round_trips(seed: int, ns: int, repos: int, tags: int) -> None:
    """For any seed and size, every listed target is found and names stay valid."""
    catalogue = Catalogue(seed, ns, repos, tags)
    targets = list(catalogue.targets())
    assert len(set(targets)) == len(catalogue)
    for namespace, repository, tag in targets:
        assert NAMESPACE.match(namespace)
        assert REPOSITORY.match(repository)
        assert TAG.match(tag)
        assert catalogue.body(namespace, repository, tag) is not None


def test_list_helpers_agree_with_targets() -> None:
    """namespaces()/repositories()/tags() describe exactly what targets() yields."""
    catalogue = Catalogue(seed=2, namespaces=2, repos_per_namespace=3, tags_per_repo=4)
    rebuilt = [
        (ns, repo, tag)
        for ns in catalogue.namespaces()
        for repo in catalogue.repositories(ns)
        for tag in catalogue.tags(ns, repo)
    ]
    assert rebuilt == list(catalogue.targets())
    assert catalogue.repositories("nope") == []
    assert catalogue.tags("nope", "x") == []


def test_a_later_generation_adds_deletes_and_repushes_tags() -> None:
    """Generation 1 keeps most tags as they were, and has added, deleted and re-pushed ones."""
    old, new = Catalogue(5, 2, 3, 12), Catalogue(5, 2, 3, 12, generation=1)
    old_tags, new_tags = set(old.targets()), set(new.targets())
    added, deleted = new_tags - old_tags, old_tags - new_tags
    repushed = {
        t
        for t in old_tags & new_tags
        if old.get(*t)["digest"] != new.get(*t)["digest"]  # type: ignore[index]
    }
    assert len(added) == 2 * 3  # one more tag in every repository
    assert deleted
    assert repushed
    assert all(new.get(*t) is None for t in deleted)
    assert all(tag != "latest" for _, _, tag in deleted | repushed)
    assert len(new) == len(new_tags) == len(old) + len(added) - len(deleted)
    unchanged = old_tags & new_tags - repushed
    assert all(old.body(*t) == new.body(*t) for t in unchanged)
