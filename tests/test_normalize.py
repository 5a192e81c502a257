"""crawler.output.normalize: API bodies -> rows, manifests -> facts, timestamps, error bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pyarrow as pa
import pytest
from huaweicloudsdkswr.v2.model.show_repo_tag_response import ShowRepoTagResponse
from hypothesis import given
from hypothesis import strategies as st

from crawler.output.normalize import (
    API_FIELDS,
    DecodeError,
    ManifestFacts,
    decode_object,
    manifest_facts,
    parse_timestamp,
    tag_row,
)
from crawler.output.schema import TAGS_SCHEMA

FETCHED_AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

# --- realistic manifests ----------------------------------------------------------

#: The manifest of the API page's example response, exactly as the page gives it.
DOCKER_V2 = (
    '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
    '"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1862,'
    '"digest":"sha256:741f24a795d6d93d7c6edd11780d63c13e16c39615dd9d223378a57a836f2ee6"},'
    '"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":1292800,'
    '"digest":"sha256:8ac8bfaff55af948c796026ee867448c5b5b5d9dd3549f4006d9759b25d4a893"},'
    '{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":10240,'
    '"digest":"sha256:77ddbf3a9fe11e81761a0f9df43a28e3e6f29bbb53c0c8cf71cd7efa69729aed"}]}'
)

#: The API page's example response body, verbatim.
API_PAGE_BODY = (
    b"""{
  "id" : 0,
  "repo_id" : 0,
  "tag" : "latest",
  "image_id" : "741f24a795d6d93d7c6edd11780d63c13e16c39615dd9d223378a57a836f2ee6",
  "manifest" : """
    + json.dumps(DOCKER_V2).encode()
    + b""",
  "digest" : "sha256:57b605845a6367c34bfb6ea6477f16852f59aa1861a2b51d10ab77ae0a1dc9c3",
  "schema" : 2,
  "path" : "swr.cn-north-1.myhuaweicloud.com/namespace/busybox:latest",
  "internal_path" : "10.125.0.198:20202/namespace/busybox:latest",
  "size" : 1304902,
  "is_trusted" : false,
  "created" : "2018-07-06T06:18:55Z",
  "updated" : "2018-07-06T06:18:55Z",
  "domain_id" : "050*****************6d70a960",
  "tag_type" : 0
}"""
)

CONFIG_DIGEST = "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7"

TAGS_COLUMNS = tuple(TAGS_SCHEMA.names)


def _sha(n: int) -> str:
    return "sha256:" + f"{n:x}".rjust(64, "0")


OCI_MANIFEST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "size": 7023,
        "digest": CONFIG_DIGEST,
    },
    "layers": [
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "size": 32654,
            "digest": _sha(1),
        },
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "size": 16724,
            "digest": _sha(2),
        },
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
            "size": 73109,
            "digest": _sha(3),
        },
    ],
    "annotations": {"org.opencontainers.image.created": "2024-05-01T00:00:00Z"},
}

#: OCI allows omitting mediaType (a SHOULD); nothing in the document says which type it is.
OCI_MANIFEST_NO_MEDIA_TYPE = {k: v for k, v in OCI_MANIFEST.items() if k != "mediaType"}

DOCKER_MANIFEST_LIST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
    "manifests": [
        {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "size": 527,
            "digest": _sha(10),
            "platform": {"architecture": "amd64", "os": "linux"},
        },
        {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "size": 527,
            "digest": _sha(11),
            "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
        },
        {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "size": 527,
            "digest": _sha(12),
            "platform": {"architecture": "arm", "os": "linux", "variant": "v7"},
        },
        {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "size": 1125,
            "digest": _sha(13),
            "platform": {
                "architecture": "amd64",
                "os": "windows",
                "os.version": "10.0.17763.5576",
            },
        },
    ],
}

#: What `docker buildx build --platform linux/amd64,linux/arm64 --provenance=true` pushes.
OCI_INDEX: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": _sha(20),
            "size": 1054,
            "platform": {"architecture": "amd64", "os": "linux"},
        },
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": _sha(21),
            "size": 1054,
            "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
        },
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": _sha(22),
            "size": 839,
            "annotations": {
                "vnd.docker.reference.digest": _sha(20),
                "vnd.docker.reference.type": "attestation-manifest",
            },
            "platform": {"architecture": "unknown", "os": "unknown"},
        },
        {
            # An entry without a platform (an artifact): no os/arch to report.
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": _sha(23),
            "size": 600,
            "artifactType": "application/vnd.example.sbom",
        },
    ],
}

OCI_INDEX_NO_MEDIA_TYPE = {k: v for k, v in OCI_INDEX.items() if k != "mediaType"}

#: A schema-1 signed manifest (prettyjws: three-space indent, as the registry serves it).
SCHEMA1_SIGNED = json.dumps(
    {
        "schemaVersion": 1,
        "name": "library/busybox",
        "tag": "1.24",
        "architecture": "amd64",
        "fsLayers": [
            {"blobSum": "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"},
            {"blobSum": "sha256:385e281300cc6d88bdd155e0931fbdfbb1801c2b0265340a40481ee2b733ae66"},
        ],
        "history": [
            {"v1Compatibility": '{"id":"47bcc53f74dc","parent":"1834950e52ce","os":"linux"}'},
            {"v1Compatibility": '{"id":"1834950e52ce","created":"2016-03-03T21:46:31Z"}'},
        ],
        "signatures": [
            {
                "header": {
                    "jwk": {
                        "crv": "P-256",
                        "kid": "OUJK:7FEB:XA6D:ZK2S:HMBN:4X3D:6WEK:SXLI:HJ63:X4JX:3RGA:7T7W",
                        "kty": "EC",
                        "x": "S8Xhs5tFmPlxNsIrB7ak8TgD8h5IbNmbXTJdXl8eyv4",
                        "y": "xIrgDoDMyLzbU9dQo_ZAf2v3bBKcMYOJx3NeCeJWVsI",
                    },
                    "alg": "ES256",
                },
                "signature": "mQ8bCZGRMgmxiAngsO7Y6sG_UuUlN3LuzU0ZZ7lnmHVZwwLwJcqjlXFdaSYUgT9hRLcw",
                "protected": "eyJmb3JtYXRMZW5ndGgiOjY2MjgsImZvcm1hdFRhaWwiOiJDbjAiLCJ0aW1lIjoi",
            }
        ],
    },
    indent=3,
)


def _compact(document: object) -> str:
    return orjson.dumps(document).decode()


def _body(**fields: object) -> bytes:
    # json, not orjson: test bodies may hold integers beyond 64 bits, as a server may send.
    return json.dumps(fields).encode()


def _row(body: bytes, **target: str) -> dict[str, Any]:
    return tag_row(
        target.get("namespace", "ns"),
        target.get("repository", "repo"),
        target.get("tag", "v1"),
        body,
        FETCHED_AT,
        1,
    )._asdict()


# --- manifest_facts ---------------------------------------------------------------

DOCKER_V2_FACTS = ManifestFacts(
    media_type="application/vnd.docker.distribution.manifest.v2+json",
    config_digest="sha256:741f24a795d6d93d7c6edd11780d63c13e16c39615dd9d223378a57a836f2ee6",
    layer_count=2,
    layers_size=1292800 + 10240,
    platforms=None,
)
NO_FACTS = ManifestFacts(None, None, None, None, None)
OCI_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
#: The OCI image spec's empty descriptor (the digest of ``{}``).
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
#: An artifact with no layers (as some signatures and attestations are).
OCI_ARTIFACT_WITHOUT_LAYERS = {
    "schemaVersion": 2,
    "mediaType": OCI_MEDIA_TYPE,
    "artifactType": "application/vnd.example.signature.v1+json",
    "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2},
    "layers": [],
}


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        pytest.param(DOCKER_V2, DOCKER_V2_FACTS, id="docker-v2-api-page"),
        pytest.param(
            _compact(OCI_MANIFEST),
            ManifestFacts(
                "application/vnd.oci.image.manifest.v1+json",
                CONFIG_DIGEST,
                3,
                32654 + 16724 + 73109,
                None,
            ),
            id="oci-manifest",
        ),
        pytest.param(
            _compact(OCI_MANIFEST_NO_MEDIA_TYPE),
            ManifestFacts(None, CONFIG_DIGEST, 3, 32654 + 16724 + 73109, None),
            id="oci-manifest-without-media-type",
        ),
        pytest.param(
            json.dumps(DOCKER_MANIFEST_LIST, indent=2),
            ManifestFacts(
                "application/vnd.docker.distribution.manifest.list.v2+json",
                None,
                None,
                None,
                ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "windows/amd64"],
            ),
            id="docker-manifest-list",
        ),
        pytest.param(
            _compact(OCI_INDEX),
            ManifestFacts(
                "application/vnd.oci.image.index.v1+json",
                None,
                None,
                None,
                ["linux/amd64", "linux/arm64/v8", "unknown/unknown"],
            ),
            id="oci-index-with-attestation",
        ),
        pytest.param(
            _compact(OCI_INDEX_NO_MEDIA_TYPE),
            ManifestFacts(
                None, None, None, None, ["linux/amd64", "linux/arm64/v8", "unknown/unknown"]
            ),
            id="oci-index-without-media-type",
        ),
        pytest.param(
            _compact({**OCI_INDEX, "manifests": []}),
            ManifestFacts("application/vnd.oci.image.index.v1+json", None, None, None, []),
            id="empty-index",
        ),
        pytest.param(
            _compact({"mediaType": "application/vnd.oci.image.index.v1+json"}),
            ManifestFacts("application/vnd.oci.image.index.v1+json", None, None, None, None),
            id="index-without-manifests-array",
        ),
        pytest.param(SCHEMA1_SIGNED, ManifestFacts(None, None, 2, None, None), id="schema1-signed"),
        pytest.param(
            _compact(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {"digest": CONFIG_DIGEST},
                    "layers": [{"digest": _sha(1)}, {"digest": _sha(2), "size": 5}],
                }
            ),
            ManifestFacts(
                "application/vnd.docker.distribution.manifest.v2+json", CONFIG_DIGEST, 2, 5, None
            ),
            id="some-layers-without-size",
        ),
        pytest.param(
            _compact({"schemaVersion": 2, "config": {"digest": CONFIG_DIGEST}, "layers": [{}, {}]}),
            ManifestFacts(None, CONFIG_DIGEST, 2, None, None),
            id="no-layer-has-a-size",
        ),
        pytest.param(
            _compact(OCI_ARTIFACT_WITHOUT_LAYERS),
            ManifestFacts(OCI_MEDIA_TYPE, EMPTY_DIGEST, 0, 0, None),
            id="oci-artifact-with-no-layers-sums-to-0",
        ),
        pytest.param(
            _compact({"mediaType": OCI_MEDIA_TYPE, "config": {}, "layers": [{"size": 0}]}),
            ManifestFacts(OCI_MEDIA_TYPE, None, 1, 0, None),
            id="one-empty-layer-sums-to-0",
        ),
        pytest.param(
            _compact({"schemaVersion": 1, "fsLayers": []}),
            ManifestFacts(None, None, 0, None, None),
            id="schema1-without-layers-says-no-size",
        ),
        pytest.param(
            _compact({"mediaType": OCI_MEDIA_TYPE, "config": {"size": 2}}),
            ManifestFacts(OCI_MEDIA_TYPE, None, None, None, None),
            id="no-layers-array-says-nothing",
        ),
        pytest.param(
            _compact(
                {
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [{"digest": _sha(1)}, {"digest": _sha(2), "platform": {}}],
                }
            ),
            ManifestFacts("application/vnd.oci.image.index.v1+json", None, None, None, []),
            id="index-whose-entries-name-no-platform",
        ),
        pytest.param(
            _compact({"schemaVersion": 2, "layers": [{"size": 2**62}, {"size": 2**62}]}),
            ManifestFacts(None, None, 2, None, None),
            id="layers-size-overflows-int64",
        ),
        pytest.param(
            _compact({"layers": [{"size": -5}, {"size": "7"}, {"size": 1.0}, {"size": True}]}),
            ManifestFacts(None, None, 4, 8, None),
            id="layer-sizes-coerced-negative-and-bool-ignored",
        ),
        pytest.param(
            _compact({"mediaType": 7, "config": "sha256:x", "layers": "many"}),
            NO_FACTS,
            id="wrong-types-everywhere",
        ),
        pytest.param("", NO_FACTS, id="empty-string"),
        pytest.param(None, NO_FACTS, id="none"),
        pytest.param("{not json", NO_FACTS, id="invalid-json"),
        pytest.param("[1, 2]", NO_FACTS, id="json-array"),
        pytest.param('"a string"', NO_FACTS, id="json-string"),
        pytest.param("null", NO_FACTS, id="json-null"),
    ],
)
def test_manifest_facts(manifest: str | None, expected: ManifestFacts) -> None:
    """Each manifest kind yields the documented facts; unusable ones yield all-null facts."""
    assert manifest_facts(manifest) == expected


def test_manifest_list_platform_entries_need_os_and_arch() -> None:
    """Entries lacking os or architecture are left out, not invented; os.version is not appended."""
    index = {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"platform": {"os": "linux"}},
            {"platform": {"architecture": "amd64"}},
            {"platform": {"os": "", "architecture": "amd64"}},
            {"platform": "linux/amd64"},
            "not an object",
            {"platform": {"os": "linux", "architecture": "s390x", "variant": ""}},
        ],
    }
    assert manifest_facts(_compact(index)).platforms == ["linux/s390x"]


# --- parse_timestamp ---------------------------------------------------------------

T0 = datetime(2018, 7, 6, 6, 18, 55, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2018-07-06T06:18:55Z", T0),
        ("2019-06-10T09:26:04.537876Z", datetime(2019, 6, 10, 9, 26, 4, 537876, tzinfo=UTC)),
        ("2018-07-06T06:18:55.5Z", T0.replace(microsecond=500000)),
        ("2018-07-06T06:18:55.123Z", T0.replace(microsecond=123000)),
        ("2018-07-06T06:18:55.1234567Z", T0.replace(microsecond=123456)),
        ("2018-07-06T06:18:55.999999999Z", T0.replace(microsecond=999999)),
        ("2018-07-06T14:18:55+08:00", T0),
        ("2018-07-06T14:18:55+0800", T0),
        ("2018-07-06T01:18:55-05:00", T0),
        ("2018-07-06T14:18:55.123456789+08:00", T0.replace(microsecond=123456)),
        ("2018-07-06T06:18:55+00:00", T0),
        ("2018-07-06 06:18:55", T0),
        ("2018-07-06T06:18:55", T0),
        ("2018-07-06 06:18:55.25", T0.replace(microsecond=250000)),
        ("2018-07-06T06:18:55z", T0),
        ("2018-07-06 06:18:55 UTC", T0),
        ("  2018-07-06T06:18:55Z\n", T0),
        (1530857935, T0),
        (1530857935.25, T0.replace(microsecond=250000)),
        (1530857935123, T0.replace(microsecond=123000)),
        (1530857935123.9, T0.replace(microsecond=123900)),
        ("1530857935", T0),
        ("1530857935123", T0.replace(microsecond=123000)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (-1.5, datetime(1969, 12, 31, 23, 59, 58, 500000, tzinfo=UTC)),
        (None, None),
        ("", None),
        ("   ", None),
        ("not a time", None),
        ("2018-13-06T06:18:55Z", None),
        ("2018-07-06T24:00:00Z", None),
        ("0001-01-01T00:00:00+08:00", None),
        (True, None),
        (False, None),
        (1e300, None),
        (float("nan"), None),
        (float("inf"), None),
        (10**30, None),
        ([2018, 7, 6], None),
        ({"seconds": 1}, None),
    ],
    ids=repr,
)
def test_parse_timestamp(value: object, expected: datetime | None) -> None:
    """Every form the API uses parses to the same UTC instant; junk gives None."""
    parsed = parse_timestamp(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is UTC


@given(
    instant=st.datetimes(
        min_value=datetime(1900, 1, 2), max_value=datetime(2200, 12, 30), timezones=st.just(UTC)
    ),
    sub_micro_nanos=st.integers(0, 999),
    digits=st.integers(0, 9),
    offset_minutes=st.integers(-(23 * 60 + 59), 23 * 60 + 59),
    zone_style=st.sampled_from(["Z", "colon", "compact", "naive-T", "naive-space"]),
)
def test_parse_timestamp_roundtrip(
    instant: datetime, sub_micro_nanos: int, digits: int, offset_minutes: int, zone_style: str
) -> None:
    """A formatted instant (any fraction length, any offset) parses back to it, truncated to µs."""
    nanos = f"{instant.microsecond * 1000 + sub_micro_nanos:09d}"
    fraction = nanos[:digits]
    expected = instant.replace(microsecond=int(fraction.ljust(6, "0")[:6]))
    if zone_style in ("colon", "compact"):
        offset = timedelta(minutes=offset_minutes)
        sign = "-" if offset_minutes < 0 else "+"
        hours, minutes = divmod(abs(offset_minutes), 60)
        zone = (
            f"{sign}{hours:02d}:{minutes:02d}"
            if zone_style == "colon"
            else f"{sign}{hours:02d}{minutes:02d}"
        )
    else:
        offset = timedelta(0)
        zone = "Z" if zone_style == "Z" else ""
    local = (instant + offset).replace(tzinfo=None, microsecond=0)
    text = local.isoformat(sep=" " if zone_style == "naive-space" else "T")
    text += ("." + fraction if fraction else "") + zone
    assert parse_timestamp(text) == expected


# --- tag_row -------------------------------------------------------------------------


def test_tag_row_api_page_example() -> None:
    """The API page's example response becomes exactly the expected row."""
    row = tag_row("namespace", "busybox", "latest", API_PAGE_BODY, FETCHED_AT, 3)
    assert row._asdict() == {
        "namespace": "namespace",
        "repository": "busybox",
        "tag": "latest",
        "id": 0,
        "repo_id": 0,
        "image_id": "741f24a795d6d93d7c6edd11780d63c13e16c39615dd9d223378a57a836f2ee6",
        "digest": "sha256:57b605845a6367c34bfb6ea6477f16852f59aa1861a2b51d10ab77ae0a1dc9c3",
        "path": "swr.cn-north-1.myhuaweicloud.com/namespace/busybox:latest",
        "internal_path": "10.125.0.198:20202/namespace/busybox:latest",
        "domain_id": "050*****************6d70a960",
        "schema": 2,
        "tag_type": 0,
        "size": 1304902,
        "is_trusted": False,
        "created": T0,
        "updated": T0,
        "manifest": DOCKER_V2,
        "manifest_media_type": DOCKER_V2_FACTS.media_type,
        "config_digest": DOCKER_V2_FACTS.config_digest,
        "layer_count": 2,
        "layers_size": 1303040,
        "platforms": None,
        "fetched_at": FETCHED_AT,
        "attempts": 3,
        "extra": None,
    }


def test_tag_row_keys_are_the_schema_columns_in_order() -> None:
    """A row's keys are TAGS_COLUMNS, in order, for a full body and for an empty one."""
    assert tuple(_row(API_PAGE_BODY)) == TAGS_COLUMNS
    assert tuple(_row(b"{}")) == TAGS_COLUMNS


def test_tag_row_puts_each_field_in_its_own_column() -> None:
    """Each documented field, given a value no other field has, lands in the column of its
    name (the row is built positionally: two swapped fields would show here)."""
    texts = {name: f"{name}-value" for name in ("image_id", "digest", "path", "internal_path")}
    numbers = {"id": 11, "repo_id": 12, "schema": 13, "tag_type": 14, "size": 15}
    body = _body(
        **texts,
        **numbers,
        domain_id=16,
        is_trusted=True,
        created="2024-01-02T03:04:05Z",
        updated="2025-06-07T08:09:10Z",
        manifest=DOCKER_V2,
    )
    row = _row(body)
    assert {name: row[name] for name in texts} == texts
    assert {name: row[name] for name in numbers} == numbers
    assert (row["domain_id"], row["is_trusted"]) == ("16", True)
    assert row["created"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert row["updated"] == datetime(2025, 6, 7, 8, 9, 10, tzinfo=UTC)
    assert row["manifest"] == DOCKER_V2
    assert row["manifest_media_type"] == DOCKER_V2_FACTS.media_type
    assert row["config_digest"] == DOCKER_V2_FACTS.config_digest
    assert (row["layer_count"], row["layers_size"]) == (2, 1303040)
    assert (row["fetched_at"], row["attempts"], row["extra"]) == (FETCHED_AT, 1, None)


def test_tag_row_target_comes_from_arguments_not_body() -> None:
    """namespace/repository/tag are the target's (repository with '/'), whatever the body says."""
    body = _body(tag="other", namespace="evil", repository="x$y")
    row = _row(body, namespace="team.a", repository="group/sub/app", tag="1.2.3")
    assert (row["namespace"], row["repository"], row["tag"]) == ("team.a", "group/sub/app", "1.2.3")


def test_tag_row_missing_and_null_fields() -> None:
    """Missing and null documented fields become None, and leave ``extra`` null."""
    row = _row(_body(id=None, size=None, manifest=None, tag="v1"))
    columns = [c for c in TAGS_COLUMNS[3:] if c not in ("fetched_at", "attempts")]
    assert all(row[column] is None for column in columns)
    assert row["fetched_at"] == FETCHED_AT
    assert row["attempts"] == 1


def test_tag_row_keeps_unknown_fields_in_extra() -> None:
    """Undocumented fields land in ``extra`` as sent, in order, a null one included."""
    row = _row(_body(id=7, deleted=True, scanned=None, Tag="x", labels={"a": [1, "b"]}, digest="d"))
    assert row["id"] == 7
    assert row["digest"] == "d"
    assert isinstance(row["extra"], str)
    assert list(json.loads(row["extra"]).items()) == [
        ("deleted", True),
        ("scanned", None),
        ("Tag", "x"),
        ("labels", {"a": [1, "b"]}),
    ]


def test_the_documented_fields_are_the_sdks_tag_model() -> None:
    """What tag_row keeps out of ``extra`` is exactly the fields of the official SDK's tag model."""
    assert set(ShowRepoTagResponse.attribute_map.values()) == API_FIELDS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (False, False),
        (True, True),
        ("false", False),
        ("False", False),
        (" FALSE ", False),
        ("true", True),
        ("True", True),
        (0, False),
        (1, True),
        ("0", False),
        ("1", True),
        ("yes", None),
        ("", None),
        (2, None),
        (None, None),
        ([], None),
    ],
    ids=repr,
)
def test_tag_row_is_trusted(value: object, expected: bool | None) -> None:
    """Booleans are read for what they say: the string "false" is False (the SDK says True)."""
    assert _row(_body(is_trusted=value))["is_trusted"] is expected


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("size", 1304902, 1304902),
        ("size", "1304902", 1304902),
        ("size", " 42 ", 42),
        ("size", "42.000", 42),
        ("size", 42.0, 42),
        ("size", 42.5, None),
        ("size", "42.5", None),
        ("size", "1_000", None),
        ("size", "4e2", None),
        ("size", "", None),
        ("size", "٤٢", None),
        ("size", True, None),
        ("size", 0, 0),
        ("size", 2**63 - 1, 2**63 - 1),
        ("size", 2**63, None),
        ("size", -1, None),
        ("size", "9223372036854775808", None),
        ("size", 1e19, None),
        ("size", float(2**53), 2**53),
        ("size", float(2**53 + 2), None),
        ("size", "9" * 5000, None),
        ("id", -(2**63), -(2**63)),
        ("id", -(2**63) - 1, None),
        ("id", "7", 7),
        ("repo_id", 2**64 - 1, None),
        ("schema", 2, 2),
        ("schema", "1", 1),
        ("schema", 2.0, 2),
        ("schema", 2**31 - 1, 2**31 - 1),
        ("schema", 2**31, None),
        ("tag_type", -(2**31), -(2**31)),
        ("tag_type", -(2**31) - 1, None),
        ("tag_type", "1", 1),
        ("tag_type", {"kind": 1}, None),
    ],
    ids=repr,
)
def test_tag_row_int_columns(column: str, value: object, expected: int | None) -> None:
    """Ints come from numbers, integral floats or decimal strings; out of range -> None."""
    cell = _row(_body(**{column: value}))[column]
    assert cell == expected
    assert expected is None or type(cell) is int


@pytest.mark.parametrize(
    "raw",
    [
        b'{"size": 18446744073709551616}',
        b'{"size": 99999999999999999999999999999}',
        b'{"size": -9223372036854775809}',
        b'{"size": 1e400}',
    ],
    ids=repr,
)
def test_tag_row_huge_json_numbers(raw: bytes) -> None:
    """Numbers beyond 64 bits (floats to orjson) are None; beyond a double, a DecodeError."""
    try:
        row = _row(raw)
    except DecodeError:
        assert raw == b'{"size": 1e400}'  # orjson refuses infinity: the body is undecodable
    else:
        assert row["size"] is None


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("image_id", "abc", "abc"),
        ("image_id", "", ""),
        ("domain_id", 12345, "12345"),
        ("digest", True, None),
        ("path", ["a"], None),
        ("internal_path", {"a": 1}, None),
        ("domain_id", 1.5, None),
    ],
    ids=repr,
)
def test_tag_row_string_columns(column: str, value: object, expected: str | None) -> None:
    """Strings are kept as is, integer ids become their decimal text, other types None."""
    assert _row(_body(**{column: value}))[column] == expected


def test_tag_row_timestamps_converted_to_utc() -> None:
    """created/updated with an offset or no zone are stored as the UTC instant."""
    row = _row(_body(created="2018-07-06T14:18:55+08:00", updated="2018-07-06 06:18:55"))
    assert row["created"] == T0
    assert row["updated"] == T0
    assert isinstance(row["created"], datetime)
    assert row["created"].tzinfo is UTC


def test_tag_row_manifest_string_kept_byte_for_byte() -> None:
    """A manifest string is stored exactly (indentation, key order, unicode); facts derived."""
    manifest = SCHEMA1_SIGNED.replace('"1.24"', '"1.24-é-\\u00e9"')
    row = _row(_body(manifest=manifest))
    assert row["manifest"] == manifest
    assert row["layer_count"] == 2


def test_tag_row_manifest_object_stored_as_compact_json() -> None:
    """A manifest sent as an object is stored as compact JSON (not a Python repr), and parsed."""
    row = _row(_body(manifest=OCI_INDEX))
    assert row["manifest"] == _compact(OCI_INDEX)
    assert isinstance(row["manifest"], str)
    assert orjson.loads(row["manifest"]) == OCI_INDEX
    assert "'" not in row["manifest"]
    assert row["manifest_media_type"] == "application/vnd.oci.image.index.v1+json"
    assert row["platforms"] == ["linux/amd64", "linux/arm64/v8", "unknown/unknown"]
    assert row["config_digest"] is None
    assert row["layer_count"] is None


@pytest.mark.parametrize("manifest", [[1, 2], 42, True, ""], ids=repr)
def test_tag_row_manifest_other_json_types(manifest: object) -> None:
    """A manifest that is neither object nor string is kept as its JSON text; its facts are null."""
    row = _row(_body(manifest=manifest))
    assert row["manifest"] == (manifest if manifest == "" else _compact(manifest))
    assert (row["manifest_media_type"], row["layer_count"], row["platforms"]) == (None, None, None)


def test_tag_row_invalid_manifest_text_kept() -> None:
    """An unparseable manifest string is still stored as returned; only its facts are null."""
    row = _row(_body(manifest="{truncated"))
    assert row["manifest"] == "{truncated"
    assert row["manifest_media_type"] is None


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"<html>502</html>", b"[]", b'"x"', b"42", b"null", b"\xff", b'{"a":'],
    ids=repr,
)
def test_tag_row_decode_error(body: bytes) -> None:
    """A 200 whose body is not a JSON object raises DecodeError (a ValueError), nothing else."""
    with pytest.raises(DecodeError):
        _row(body)
    with pytest.raises(ValueError, match="body"):
        decode_object(body)


def test_tag_row_fetched_at_normalised_to_utc() -> None:
    """An aware fetched_at in another zone is stored as the same instant in UTC."""
    local = FETCHED_AT.astimezone(timezone(timedelta(hours=8)))
    row = tag_row("ns", "repo", "v1", b"{}", local, 1)
    assert row.fetched_at == FETCHED_AT
    assert isinstance(row.fetched_at, datetime)
    assert row.fetched_at.tzinfo is UTC


def test_tag_row_rejects_naive_fetched_at() -> None:
    """A naive fetched_at is a caller bug: TypeError, never a silently shifted instant."""
    with pytest.raises(TypeError, match="timezone-aware"):
        tag_row("ns", "repo", "v1", b"{}", FETCHED_AT.replace(tzinfo=None), 1)


# --- Arrow ----------------------------------------------------------------------------

EXTREME_BODY = _body(
    id=-(2**63),
    repo_id=2**63 - 1,
    size=2**63 - 1,
    schema=2**31 - 1,
    tag_type=-(2**31),
    is_trusted="true",
    created="9999-12-31T23:59:59.999999Z",
    updated="0001-01-01T00:00:00Z",
    manifest=OCI_INDEX,
)


@pytest.mark.parametrize(
    "body",
    [
        API_PAGE_BODY,
        b"{}",
        EXTREME_BODY,
        _body(manifest=SCHEMA1_SIGNED),
        _body(manifest=_compact({**OCI_INDEX, "manifests": []})),
        _body(size=2**64, schema=2**40, tag_type="x", is_trusted="false"),
    ],
    ids=["api-page", "empty", "extremes", "schema1", "empty-index", "out-of-range"],
)
def test_tag_row_converts_to_arrow(body: bytes) -> None:
    """A row converts to TAGS_SCHEMA with no cast error and reads back unchanged."""
    row = _row(body, repository="group/app")
    table = pa.Table.from_pylist([row], schema=TAGS_SCHEMA)
    assert table.schema == TAGS_SCHEMA
    assert table.to_pylist() == [row]


# --- properties -----------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(
        ["true", "false", "1.0", "-1", "2018-07-06T06:18:55Z", "1530857935", "9" * 30, ""]
    )
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
MANIFEST_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "schemaVersion": JSON_VALUES,
        "mediaType": st.sampled_from(
            [
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.oci.image.manifest.v1+json",
            ]
        )
        | JSON_VALUES,
        "config": JSON_VALUES,
        "layers": st.lists(
            st.dictionaries(st.sampled_from(["size", "digest"]), JSON_SCALARS), max_size=6
        )
        | JSON_VALUES,
        "fsLayers": JSON_VALUES,
        "manifests": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "platform": st.dictionaries(
                        st.sampled_from(["os", "architecture", "variant"]),
                        st.text(max_size=8) | JSON_SCALARS,
                    )
                },
            ),
            max_size=6,
        )
        | JSON_VALUES,
    },
)
TAG_BODIES = st.dictionaries(
    st.sampled_from([*TAGS_COLUMNS, "Tag", "deleted", "scanned"]),
    JSON_VALUES | MANIFEST_LIKE | MANIFEST_LIKE.map(_compact),
)


@given(st.binary(max_size=200) | JSON_VALUES.map(orjson.dumps))
def test_tag_row_raises_only_decode_error(body: bytes) -> None:
    """On arbitrary bytes tag_row returns a row or raises DecodeError, never anything else."""
    try:
        row = _row(body)
    except DecodeError:
        return
    assert tuple(row) == TAGS_COLUMNS


@given(TAG_BODIES)
def test_any_json_object_body_converts_to_arrow(fields: dict[str, Any]) -> None:
    """Whatever values a JSON object body holds, its row converts to TAGS_SCHEMA."""
    row = _row(orjson.dumps(fields))
    table = pa.Table.from_pylist([row], schema=TAGS_SCHEMA)
    assert table.num_rows == 1


@given(JSON_VALUES | st.text() | st.binary().map(lambda b: b.decode("latin-1")))
def test_parse_timestamp_never_raises(value: object) -> None:
    """parse_timestamp returns an aware UTC datetime or None for any JSON value or text."""
    parsed = parse_timestamp(value)
    assert parsed is None or parsed.tzinfo is UTC


@given(st.text() | JSON_VALUES.map(_compact) | MANIFEST_LIKE.map(_compact))
def test_manifest_facts_never_raises(manifest: str) -> None:
    """manifest_facts gives well-typed facts for any text, JSON value or manifest-like object."""
    facts = manifest_facts(manifest)
    assert facts.layer_count is None or 0 <= facts.layer_count < 2**31
    assert facts.layers_size is None or 0 <= facts.layers_size < 2**63
    assert facts.platforms is None or all(isinstance(p, str) for p in facts.platforms)


@given(
    st.lists(
        st.one_of(
            st.integers(0, 2**40).map(lambda size: {"digest": _sha(size), "size": size}),
            st.just({"digest": _sha(0)}),
        ),
        max_size=50,
    )
)
def test_layers_size_is_the_sum_of_given_sizes(layers: list[dict[str, Any]]) -> None:
    """layers_size is the sum of the sizes given (0 for no layers, None if layers give none);
    layer_count counts all."""
    sizes = [layer["size"] for layer in layers if "size" in layer]
    facts = manifest_facts(_compact({"schemaVersion": 2, "config": {}, "layers": layers}))
    assert facts.layer_count == len(layers)
    assert facts.layers_size == (sum(sizes) if sizes or not layers else None)
