"""A seeded, deterministic SWR catalogue that is never materialised.

Every name carries its own index (a trailing number for namespaces and
repositories, an embedded one for tags), so a lookup parses the index back,
regenerates the name from it and compares: O(1) time and memory whatever the
catalogue's size. The details of a tag come from a ``random.Random`` seeded
with a hash of (seed, indices), so the same seed always gives the same bytes.
Built answers sit in a bounded LRU because retries ask for the same key again.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
import re
import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import orjson

REGION = "cn-north-4"
REGISTRY = f"swr.{REGION}.myhuaweicloud.com"
INTERNAL_REGISTRY = "10.125.0.198:20202"
MAX_SIZE = 2**63 - 1

# Names as the API page defines them. A separator is one of "." "_" "-" (and
# "/" in repositories); two separators never touch, except "__".
_NAMESPACE_RE = re.compile(r"[a-z][a-z0-9]*(?:(?:__|[._-])[a-z0-9]+)*")
_REPOSITORY_RE = re.compile(r"[a-z0-9]+(?:(?:__|[._/-])[a-z0-9]+)*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def valid_namespace(name: str) -> bool:
    """True when ``name`` is a namespace by the API page's rules."""
    return len(name) <= 64 and _NAMESPACE_RE.fullmatch(name) is not None


def valid_repository(name: str) -> bool:
    """True when ``name`` (with ``/``, not ``$``) is a repository by the API page's rules."""
    return len(name) <= 128 and _REPOSITORY_RE.fullmatch(name) is not None


def valid_tag(name: str) -> bool:
    """True when ``name`` is a tag by the docker tag grammar."""
    return _TAG_RE.fullmatch(name) is not None


_NS_WORDS = ("acme", "platform", "data", "team", "ml", "infra", "web", "payments", "edge", "iot")
_NS_WORDS_2 = ("prod", "dev", "ops", "core", "lab", "shared", "cn", "apps")
_GROUPS = ("library", "base", "apps", "tools", "jobs", "services", "mirror")
_SUBGROUPS = ("web", "batch", "infra", "ai", "internal")
_IMAGES = (
    "nginx",
    "redis",
    "api",
    "worker",
    "gateway",
    "postgres",
    "busybox",
    "python",
    "node",
    "openjdk",
    "etl",
    "frontend",
    "scheduler",
    "tensorflow",
)
#: How the i-th namespace is spelt from its two words (each separator appears).
_NAMESPACE_SPELLINGS = (
    "{w1}{i}",
    "{w1}-{w2}{i}",
    "{w1}.{w2}{i}",
    "{w1}_{w2}{i}",
    "{w1}__{w2}{i}",
    "{w1}-{w2}-{i}",
)
#: How the r-th repository is spelt: flat or under one or two groups.
_REPOSITORY_SPELLINGS = (
    "{image}-{r}",
    "{group}/{image}{r}",
    "{group}/{image}-{r}",
    "{group}/{sub}/{image}.{r}",
    "{group}/{image}__{r}",
    "{image}_{r}",
)
_FLAVOURS = ("alpine", "slim", "bookworm", "alpine3.19", "jdk17", "ubi8")
_PLATFORMS: tuple[tuple[str, str, str | None], ...] = (
    ("linux", "amd64", None),
    ("linux", "arm64", "v8"),
    ("linux", "arm", "v7"),
    ("linux", "arm", "v6"),
    ("linux", "386", None),
    ("linux", "ppc64le", None),
    ("linux", "s390x", None),
    ("windows", "amd64", None),
)

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

#: Manifest kinds and their weights in the catalogue.
MANIFEST_KINDS: tuple[tuple[str, int], ...] = (
    ("docker_v2", 40),
    ("oci_manifest", 25),
    ("docker_list", 12),
    ("oci_index", 10),
    ("schema1", 13),
)

_KIND_NAMES = tuple(name for name, _ in MANIFEST_KINDS)
_KIND_CUMULATIVE = tuple(itertools.accumulate(weight for _, weight in MANIFEST_KINDS))
_KIND_TOTAL = _KIND_CUMULATIVE[-1]

# "sha-xxxxxxxx" tags encode the tag index through an invertible affine map
# modulo 2**32 (the multiplier is odd, hence invertible).
_SHA_MUL = 0x9E3779B1
_SHA_INV = pow(_SHA_MUL, -1, 2**32)
_TAG_PATTERNS = (
    re.compile(r"v\d+\.\d+\.(\d+)"),
    re.compile(r"\d+\.\d+-rc(\d+)"),
    re.compile(r"\d+\.(\d+)-[a-z][a-z0-9.]*"),
    re.compile(r"\d+\.\d+\.(\d+)"),
)
_SHA_TAG = re.compile(r"sha-([0-9a-f]{8})")
_TRAILING_DIGITS = re.compile(r"(?:0|[1-9][0-9]*)$")

#: With a ``generation``, about one old tag in CHURN is deleted and as many re-pushed.
CHURN = 8

_EPOCH_FIRST = 1483228800  # 2017-01-01
_EPOCH_LAST = 1748736000  # 2025-06-01


def _timestamp(seconds: int, micros: int | None) -> str:
    """``2018-07-06T06:18:55Z``, or ``2019-06-10T09:26:04.537876Z`` with microseconds."""
    # time.gmtime and an f-string: several times faster than datetime.strftime.
    year, month, day, hour, minute, second = time.gmtime(seconds)[:6]
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    return f"{text}Z" if micros is None else f"{text}.{micros:06d}Z"


_M64 = 2**64 - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: a fast, well-spread 64-bit integer hash."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _salt(purpose: str) -> int:
    return int.from_bytes(hashlib.blake2b(purpose.encode(), digest_size=8).digest(), "big")


_SALTS = {
    name: _salt(name)
    for name in ("domain", "ns", "repo", "tag", "sha", "details", "repo-details", "generation")
}


class Catalogue:
    """The namespaces, repositories and tags of one seeded sandbox account.

    Every repository has ``tags_per_repo`` tags, unless ``tag_counts`` is given:
    then the ``r``-th repository of each namespace has ``tag_counts[r % len]``
    (0 for an empty repository), so a registry can mix small and huge ones.
    ``len(catalogue)`` is the number of tags in all.

    ``generation`` ages the catalogue, as a registry changes from one day to
    the next: generation ``g`` > 0 has ``g`` more tags at the end of every
    repository (added), and of the tags of generation 0 other than ``latest``
    about one in :data:`CHURN` is gone (deleted) and as many are re-pushed
    (same name, a new manifest, so a new digest). :meth:`change` says which.
    """

    def __init__(
        self,
        seed: int = 0,
        namespaces: int = 3,
        repos_per_namespace: int = 10,
        tags_per_repo: int = 10,
        *,
        tag_counts: tuple[int, ...] = (),
        generation: int = 0,
        extreme_sizes: bool = False,
        cache_size: int = 4096,
        empty_namespaces: int = 0,
        absent_fields: bool = True,
    ) -> None:
        if min(namespaces, repos_per_namespace, tags_per_repo) < 1:
            raise ValueError("a catalogue needs at least one namespace, repository and tag")
        if tag_counts and (min(tag_counts) < 0 or max(tag_counts) < 1):
            raise ValueError("tag counts are >= 0, and at least one is > 0")
        if generation < 0:
            raise ValueError("a catalogue's generation is >= 0")
        if empty_namespaces < 0:
            raise ValueError("a catalogue's empty namespaces are >= 0")
        #: About 1.5 % of tags report size 0 and 1.5 % size 2^63-1 (for the tests of
        #: extremes); off, every size is the manifest's real total, as a registry's.
        self.extreme_sizes = extreme_sizes
        self.seed = seed
        self.generation = generation
        self._base = _mix(seed & _M64)
        self.namespace_count = namespaces
        self.repos_per_namespace = repos_per_namespace
        self._tag_counts = tag_counts or (tags_per_repo,)
        #: The most tags of one repository (ids are spaced by it, so they stay unique).
        self.tags_per_repo = max(self._tag_counts)
        self.domain_id = f"{self._hash('domain'):016x}{self._hash('domain', 1):016x}"
        self.domain_name = f"sandbox-{seed}"
        #: False: every tag has every documented field (see :meth:`_details`).
        self.absent_fields = absent_fields
        #: The ``empty_namespaces`` come last and hold no repository.
        self._namespace_names = [
            self._namespace_name(i) for i in range(namespaces + empty_namespaces)
        ]
        self._namespace_index = {name: i for i, name in enumerate(self._namespace_names)}
        self._entry = lru_cache(maxsize=cache_size)(self._build_entry)

    # -- hashing -------------------------------------------------------------

    def _hash(self, purpose: str, *indices: int) -> int:
        h = self._base ^ _SALTS[purpose]
        for index in indices:
            h = _mix(h ^ index)
        return _mix(h)

    # -- names ---------------------------------------------------------------

    def _namespace_name(self, i: int) -> str:
        h = self._hash("ns", i)
        w1 = _NS_WORDS[h % len(_NS_WORDS)]
        w2 = _NS_WORDS_2[(h >> 8) % len(_NS_WORDS_2)]
        # Consecutive namespaces take consecutive spellings, so even a small
        # catalogue mixes periods, underscores and hyphens.
        spelling = _NAMESPACE_SPELLINGS[(i + self.seed) % len(_NAMESPACE_SPELLINGS)]
        return spelling.format(w1=w1, w2=w2, i=i)

    def _repository_name(self, i: int, r: int) -> str:
        h = self._hash("repo", i, r)
        image = _IMAGES[h % len(_IMAGES)]
        group = _GROUPS[(h >> 8) % len(_GROUPS)]
        sub = _SUBGROUPS[(h >> 16) % len(_SUBGROUPS)]
        spelling = _REPOSITORY_SPELLINGS[(h >> 24) % len(_REPOSITORY_SPELLINGS)]
        return spelling.format(image=image, group=group, sub=sub, r=r)

    def _tag_name(self, i: int, r: int, j: int) -> str:
        if j == 0:
            return "latest"
        h = self._hash("tag", i, r, j)
        a, b = (h >> 8) % 4, (h >> 16) % 21
        style = h % 5
        if style == 0:
            return f"v{a}.{b}.{j}"
        if style == 1:
            return f"{2018 + a + b % 4}.{1 + b % 12:02d}-rc{j}"
        if style == 2:
            mask = self._hash("sha", i, r) & 0xFFFFFFFF
            return f"sha-{(j * _SHA_MUL + mask) & 0xFFFFFFFF:08x}"
        if style == 3:
            return f"{a + 1}.{j}-{_FLAVOURS[b % len(_FLAVOURS)]}"
        return f"{a}.{b}.{j}"

    def tag_count(self, r: int) -> int:
        """The number of tag slots of the ``r``-th repository (deleted tags included)."""
        count = self._tag_counts[r % len(self._tag_counts)]
        return count + self.generation if count else 0

    def change(self, i: int, r: int, j: int) -> str | None:
        """What :attr:`generation` did to tag ``j``: "added", "deleted", "repushed" or None."""
        if self.generation == 0:
            return None
        if j >= self._tag_counts[r % len(self._tag_counts)]:
            return "added"
        if j == 0:
            return None
        roll = self._hash("generation", self.generation, i, r, j) % CHURN
        return "deleted" if roll == 0 else "repushed" if roll == 1 else None

    # -- index lookups (parse the index back, regenerate, compare) ----------

    def namespace_index(self, namespace: str) -> int | None:
        """The index of a namespace of this catalogue, or None."""
        return self._namespace_index.get(namespace)

    def repository_index(self, i: int, repository: str) -> int | None:
        """The index of a repository (with ``/``) in namespace ``i``, or None."""
        if i >= self.namespace_count:
            return None  # an empty namespace
        match = _TRAILING_DIGITS.search(repository)
        if match is None:
            return None
        r = int(match.group())
        if r >= self.repos_per_namespace or self._repository_name(i, r) != repository:
            return None
        return r

    def tag_index(self, i: int, r: int, tag: str) -> int | None:
        """The index of a tag in repository ``r`` of namespace ``i``, or None."""
        count = self.tag_count(r)
        if tag == "latest":
            return 0 if count else None
        candidates: list[int] = []
        for pattern in _TAG_PATTERNS:
            match = pattern.fullmatch(tag)
            if match is not None:
                candidates.append(int(match.group(1)))
        sha = _SHA_TAG.fullmatch(tag)
        if sha is not None:
            mask = self._hash("sha", i, r) & 0xFFFFFFFF
            candidates.append(((int(sha.group(1), 16) - mask) * _SHA_INV) & 0xFFFFFFFF)
        for j in candidates:
            if 0 < j < count and self._tag_name(i, r, j) == tag:
                return None if self.change(i, r, j) == "deleted" else j
        return None

    def _indices(self, namespace: str, repository: str, tag: str) -> tuple[int, int, int] | None:
        i = self._namespace_index.get(namespace)
        if i is None:
            return None
        r = self.repository_index(i, repository)
        if r is None:
            return None
        j = self.tag_index(i, r, tag)
        if j is None:
            return None
        return i, r, j

    # -- listing -------------------------------------------------------------

    def __len__(self) -> int:
        if self.generation:
            return sum(
                self.live_tag_count(i, r)
                for i in range(self.namespace_count)
                for r in range(self.repos_per_namespace)
            )
        per_namespace = sum(self.tag_count(r) for r in range(self.repos_per_namespace))
        return self.namespace_count * per_namespace

    def live_tag_count(self, i: int, r: int) -> int:
        """The number of tags repository ``r`` of namespace ``i`` has (deleted ones not)."""
        count = self.tag_count(r)
        if not self.generation:
            return count
        return sum(self.change(i, r, j) != "deleted" for j in range(count))

    def namespaces(self) -> list[str]:
        """All namespace names, in catalogue order."""
        return list(self._namespace_names)

    def repositories(self, namespace: str) -> list[str]:
        """The repositories (with ``/``) of a namespace, in order; empty if unknown."""
        i = self._namespace_index.get(namespace)
        if i is None or i >= self.namespace_count:
            return []
        return [self._repository_name(i, r) for r in range(self.repos_per_namespace)]

    def tags(self, namespace: str, repository: str) -> list[str]:
        """The tags of a repository, in order; empty if unknown."""
        i = self._namespace_index.get(namespace)
        r = None if i is None else self.repository_index(i, repository)
        if i is None or r is None:
            return []
        return [
            self._tag_name(i, r, j)
            for j in range(self.tag_count(r))
            if self.change(i, r, j) != "deleted"
        ]

    def repository_at(self, index: int) -> tuple[str, str]:
        """(namespace, repository) of the ``index``-th repository of the whole account."""
        i, r = divmod(index, self.repos_per_namespace)
        return self._namespace_names[i], self._repository_name(i, r)

    def repository_id(self, index: int) -> int:
        """The ``repo_id`` of the ``index``-th repository of the whole account."""
        return 10_000 + index

    def repository_count(self) -> int:
        """The number of repositories across all namespaces."""
        return self.namespace_count * self.repos_per_namespace

    def targets(self) -> Iterator[tuple[str, str, str]]:
        """Every (namespace, repository, tag), namespace by namespace, in a stable order."""
        for i, namespace in enumerate(self._namespace_names[: self.namespace_count]):
            for r in range(self.repos_per_namespace):
                repository = self._repository_name(i, r)
                for j in range(self.tag_count(r)):
                    if self.change(i, r, j) != "deleted":
                        yield namespace, repository, self._tag_name(i, r, j)

    # -- details -------------------------------------------------------------

    def get(self, namespace: str, repository: str, tag: str) -> dict[str, Any] | None:
        """The tag-details object exactly as the API returns it, or None if absent."""
        entry = self._entry(namespace, repository, tag)
        return None if entry is None else dict(entry[0])

    def body(self, namespace: str, repository: str, tag: str) -> bytes | None:
        """The serialised tag-details answer, or None if absent."""
        entry = self._entry(namespace, repository, tag)
        return None if entry is None else entry[1]

    def repository_details(self, namespace: str, repository: str) -> dict[str, Any] | None:
        """Facts about a repository the list APIs report, or None if absent."""
        i = self._namespace_index.get(namespace)
        r = None if i is None else self.repository_index(i, repository)
        if i is None or r is None:
            return None
        rng = random.Random(self._hash("repo-details", i, r))
        created = _between(rng, _EPOCH_FIRST, _EPOCH_LAST - 86400 * 30)
        updated = created + _between(rng, 0, 86400 * 30)
        return {
            "id": self.repository_id(i * self.repos_per_namespace + r),
            "name": repository,
            "namespace": namespace,
            "category": rng.choice(("app_server", "linux", "framework_app", "database", "other")),
            "description": "",
            "size": _between(rng, 0, 2**40),
            "is_public": rng.random() < 0.3,
            "num_images": self.live_tag_count(i, r),
            "num_download": _between(rng, 0, 100_000),
            "created_at": _timestamp(created, _between(rng, 0, 999_999)),
            "updated_at": _timestamp(updated, _between(rng, 0, 999_999)),
            "path": f"{REGISTRY}/{namespace}/{repository}",
            "internal_path": f"{INTERNAL_REGISTRY}/{namespace}/{repository}",
        }

    def _build_entry(
        self, namespace: str, repository: str, tag: str
    ) -> tuple[dict[str, Any], bytes] | None:
        indices = self._indices(namespace, repository, tag)
        if indices is None:
            return None
        obj = self._details(namespace, repository, tag, *indices)
        return obj, orjson.dumps(obj)

    def _details(
        self, namespace: str, repository: str, tag: str, i: int, r: int, j: int
    ) -> dict[str, Any]:
        seed = self._hash("details", i, r, j)
        if self.change(i, r, j) == "repushed":
            seed = self._hash("details", i, r, j, self.generation)
        rng = random.Random(seed)
        kind = _KIND_NAMES[bisect.bisect(_KIND_CUMULATIVE, rng.random() * _KIND_TOTAL)]
        manifest, image_id, total = _MANIFEST_BUILDERS[kind](rng, f"{namespace}/{repository}", tag)
        digest = "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()

        roll = rng.random()  # drawn either way: the rest of the entry stays the same
        if self.extreme_sizes and roll < 0.015:
            size = 0
        elif self.extreme_sizes and roll < 0.03:
            size = MAX_SIZE
        else:
            size = total

        created_s = _between(rng, _EPOCH_FIRST, _EPOCH_LAST)
        created = _timestamp(created_s, _between(rng, 0, 999_999) if rng.random() < 0.5 else None)
        updated_s = created_s + _between(rng, 0, 86400 * 200)
        updated = _timestamp(updated_s, _between(rng, 0, 999_999) if rng.random() < 0.5 else None)

        repository_index = i * self.repos_per_namespace + r
        global_index = repository_index * self.tags_per_repo + j
        base = self._tag_counts[r % len(self._tag_counts)]
        if j >= base:  # added by a generation: ids after every generation-0 tag's
            slots = self.namespace_count * self.repos_per_namespace * self.tags_per_repo
            global_index = slots + repository_index * self.generation + j - base
        obj: dict[str, Any] = {
            "id": 1_000_000 + global_index,
            "repo_id": self.repository_id(i * self.repos_per_namespace + r),
            "tag": tag,
            "image_id": image_id,
            "manifest": manifest,
            "digest": digest,
            "schema": 1 if kind == "schema1" else 2,
            "path": f"{REGISTRY}/{namespace}/{repository}:{tag}",
            "internal_path": f"{INTERNAL_REGISTRY}/{namespace}/{repository}:{tag}",
            "size": size,
            "is_trusted": rng.random() < 0.1,
            "created": created,
            "updated": updated,
            "domain_id": self.domain_id,
            "tag_type": 1 if kind in ("docker_list", "oci_index") else 0,
        }
        # Clients must tolerate a missing or null field and an unknown one.
        # (About 4% lack ``updated``; absent_fields=False keeps every field, as the
        # Go SDK's "required" promises, e.g. for a benchmark of list mode.)
        quirk = rng.random()
        if quirk < 0.04:
            if self.absent_fields:
                del obj["updated"]
        elif quirk < 0.08:
            obj["updated"] = None
        if rng.random() < 0.05:
            if rng.random() < 0.5:
                obj["scanned"] = rng.random() < 0.5
            else:
                obj["image_labels"] = {"maintainer": "sandbox", "build": str(_between(rng, 1, 999))}
        return obj


# -- manifests -----------------------------------------------------------------
# Each builder returns (manifest text, image id, total size).


def _between(rng: random.Random, low: int, high: int) -> int:
    """Like ``rng.randint(low, high)``, a few times faster (ranges here stay below 2**53)."""
    return low + int(rng.random() * (high - low + 1))


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def _compact(obj: object) -> str:
    # orjson's output is json.dumps(obj, separators=(",", ":")), much faster.
    return orjson.dumps(obj).decode()


def _pretty(obj: object, indent: int) -> str:
    text = orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode()
    if indent == 2:
        return text
    # Re-indent orjson's two-space output (a string value never holds a raw newline).
    return "\n".join(
        " " * ((len(line) - len(stripped)) // 2 * indent) + stripped
        for line in text.split("\n")
        for stripped in (line.lstrip(" "),)
    )


def _layers(rng: random.Random, media_type: str) -> list[dict[str, Any]]:
    return [
        {
            "mediaType": media_type,
            "size": _between(rng, 32, 80_000_000),
            "digest": f"sha256:{_hex(rng)}",
        }
        for _ in range(_between(rng, 1, 12))
    ]


def _docker_v2(rng: random.Random, name: str, tag: str) -> tuple[str, str, int]:
    config_hex = _hex(rng)
    config = {"mediaType": DOCKER_CONFIG, "size": _between(rng, 800, 20_000)}
    layers = _layers(rng, DOCKER_LAYER)
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_V2,
        "config": {**config, "digest": f"sha256:{config_hex}"},
        "layers": layers,
    }
    total = config["size"] + sum(layer["size"] for layer in layers)
    return _compact(manifest), config_hex, total


def _oci_manifest(rng: random.Random, name: str, tag: str) -> tuple[str, str, int]:
    config_hex = _hex(rng)
    config_size = _between(rng, 800, 20_000)
    layers = _layers(rng, OCI_LAYER)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": f"sha256:{config_hex}", "size": config_size},
        "layers": layers,
    }
    if rng.random() < 0.4:
        manifest["annotations"] = {
            "org.opencontainers.image.source": f"https://example.com/{name}",
            "org.opencontainers.image.version": tag,
        }
    total = config_size + sum(layer["size"] for layer in layers)
    return _compact(manifest), config_hex, total


def _index(
    rng: random.Random, list_type: str, child_type: str, pretty: bool
) -> tuple[str, str, int]:
    platforms = rng.sample(_PLATFORMS, _between(rng, 2, 5))
    children: list[dict[str, Any]] = []
    first = _hex(rng)
    for os_name, arch, variant in platforms:
        platform: dict[str, str] = {"architecture": arch, "os": os_name}
        if variant is not None:
            platform["variant"] = variant
        if os_name == "windows":
            platform["os.version"] = "10.0.17763.5576"
        children.append(
            {
                "mediaType": child_type,
                "size": _between(rng, 400, 3000),
                "digest": f"sha256:{_hex(rng) if children else first}",
                "platform": platform,
            }
        )
    manifest = {"schemaVersion": 2, "mediaType": list_type, "manifests": children}
    text = _pretty(manifest, 2) if pretty else _compact(manifest)
    total = _between(rng, 1_000_000, 900_000_000) * len(children)
    return text, first, total


def _docker_list(rng: random.Random, name: str, tag: str) -> tuple[str, str, int]:
    return _index(rng, DOCKER_LIST, DOCKER_V2, pretty=False)


def _oci_index(rng: random.Random, name: str, tag: str) -> tuple[str, str, int]:
    # OCI indexes often come from tools that pretty-print; the bytes must survive.
    return _index(rng, OCI_INDEX, OCI_MANIFEST, pretty=True)


_SCHEMA1_PROTECTED = (
    "eyJmb3JtYXRMZW5ndGgiOjIxMjksImZvcm1hdFRhaWwiOiJDbjAiLCJ0aW1lIjoiMjAxNi0wNS0wNFQxODoyODoyNVoifQ"
)


def _schema1(rng: random.Random, name: str, tag: str) -> tuple[str, str, int]:
    count = _between(rng, 1, 6)
    ids = [_hex(rng) for _ in range(count)]
    history = []
    for n, layer_id in enumerate(ids):
        compat: dict[str, Any] = {"id": layer_id, "created": "2016-05-04T18:28:25.283413Z"}
        if n + 1 < count:
            compat["parent"] = ids[n + 1]
        history.append({"v1Compatibility": _compact(compat)})
    signed = {
        "schemaVersion": 1,
        "name": name,
        "tag": tag,
        "architecture": "amd64",
        "fsLayers": [{"blobSum": f"sha256:{_hex(rng)}"} for _ in range(count)],
        "history": history,
        "signatures": [
            {
                "header": {
                    "jwk": {
                        "crv": "P-256",
                        "kid": "J2N5:7SB4:ZLSK:4J5R:CAIG:XSOI:DCMH:HPYG:Z3EE:6LYG:CWKV:KW6R",
                        "kty": "EC",
                        "x": "bpWTN2cwrkd2J3l8JU1rgeH2IW0Eg1O4lK5BZ9jHv2Q",
                        "y": "7lbeANPA8dh6d6ymXWbbL4iKEwYAeUZ4YKgfhdOkyRA",
                    },
                    "alg": "ES256",
                },
                "signature": f"{_hex(rng)[:43]}_{_hex(rng)[:42]}",
                "protected": _SCHEMA1_PROTECTED,
            }
        ],
    }
    # docker wrote signed schema-1 manifests with a three-space indent.
    total = sum(_between(rng, 32, 50_000_000) for _ in range(count))
    return _pretty(signed, 3), ids[0], total


_MANIFEST_BUILDERS = {
    "docker_v2": _docker_v2,
    "oci_manifest": _oci_manifest,
    "docker_list": _docker_list,
    "oci_index": _oci_index,
    "schema1": _schema1,
}
