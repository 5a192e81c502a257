"""Fidelity: the official huaweicloudsdkswr client, as a real peer, against the sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions import exceptions
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkswr.v2 import (
    ListRepoDetailsRequest,
    ListRepositoryTagRequest,
    ListRepositoryTagsRequest,
    ShowRepoTagRequest,
    SwrClient,
)

from crawler.sandbox import Catalogue, FaultConfig, RunningSandbox, SandboxConfig, sandbox_in_thread
from tests.e2e_helpers import TAG_FIELDS

AK, SK = "AKSDKPEER", "sdk-peer-secret"


def _targets_of_interest(catalogue: Catalogue) -> dict[str, tuple[str, str, str]]:
    """One target per awkward case the SDK's models must take."""
    found: dict[str, tuple[str, str, str]] = {}
    for target in catalogue.targets():
        obj = catalogue.get(*target) or {}
        manifest = json.loads(obj["manifest"])
        kind = manifest.get("mediaType") or "schema1"
        cases = [kind]
        if "updated" not in obj:
            cases.append("updated-absent")
        elif obj["updated"] is None:
            cases.append("updated-null")
        if set(obj) - set(TAG_FIELDS):
            cases.append("extra-field")
        if obj["size"] in (0, 2**63 - 1):
            cases.append(f"size-{obj['size']}")
        for case in cases:
            found.setdefault(case, target)
    return found


CATALOGUE = Catalogue(extreme_sizes=True)  # the SDK must read sizes 0 and 2^63-1 too
INTERESTING = _targets_of_interest(CATALOGUE)
SCRIPTED = {
    "sdk/scripted:401": ["401"],
    "sdk/scripted:403": ["403"],
    "sdk/scripted:429": ["429"],
    "sdk/scripted:500": ["500"],
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    """One sandbox in a thread for the whole module (the SDK is synchronous)."""
    config = SandboxConfig(
        credentials={AK: SK}, faults=FaultConfig(scripts=SCRIPTED), extreme_sizes=True
    )
    with sandbox_in_thread(config) as running:
        yield running


def client(sandbox: RunningSandbox, sk: str = SK) -> Any:
    http = HttpConfig.get_default_config()
    http.ignore_ssl_verification = True
    http.timeout = (5, 10)
    return (
        SwrClient.new_builder()
        .with_http_config(http)
        .with_credentials(BasicCredentials(AK, sk, "0123456789abcdef"))
        .with_endpoints([sandbox.url])
        .build()
    )


def show(sandbox: RunningSandbox, namespace: str, repository: str, tag: str, sk: str = SK) -> Any:
    request = ShowRepoTagRequest(
        namespace=namespace, repository=repository.replace("/", "$"), tag=tag
    )
    return client(sandbox, sk).show_repo_tag(request)


def test_the_catalogue_has_every_awkward_case() -> None:
    """The cases below exist in the default catalogue, so the SDK test covers them all."""
    assert {
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "schema1",
        "updated-absent",
        "updated-null",
        "extra-field",
        "size-0",
        f"size-{2**63 - 1}",
    } <= INTERESTING.keys()


@pytest.mark.parametrize("case", sorted(INTERESTING))
def test_sdk_parses_our_200_into_its_model(sandbox: RunningSandbox, case: str) -> None:
    """show_repo_tag, signed by the SDK and verified by us, yields every field as we sent it."""
    target = INTERESTING[case]
    response = show(sandbox, *target)
    assert response.status_code == 200
    expected = CATALOGUE.get(*target) or {}
    for name in TAG_FIELDS:
        assert getattr(response, name) == expected.get(name), name
    assert isinstance(response.is_trusted, bool)
    assert isinstance(response.manifest, str)


def test_sdk_sees_our_404_as_client_request_exception(sandbox: RunningSandbox) -> None:
    """Our 404 body gives the SDK's exception the right status, code, message and request id."""
    namespace, repository, _ = INTERESTING["schema1"]
    with pytest.raises(exceptions.ClientRequestException) as caught:
        show(sandbox, namespace, repository, "no-such-tag")
    assert caught.value.status_code == 404
    assert caught.value.error_code == "SVCSTG.SWR.4040010"
    assert caught.value.error_msg == "Image not found"
    assert len(caught.value.request_id) == 32


def test_sdk_sees_a_wrong_sk_as_401(sandbox: RunningSandbox) -> None:
    """A request the SDK signed with the wrong SK is refused with the gateway's 401."""
    with pytest.raises(exceptions.ClientRequestException) as caught:
        show(sandbox, *INTERESTING["schema1"], sk="not-the-secret")
    assert caught.value.status_code == 401
    assert caught.value.error_code == "APIG.0301"


@pytest.mark.parametrize(
    ("tag", "status", "code", "message"),
    [
        ("401", 401, "APIG.1002", "Incorrect token or token resolution failed"),
        ("403", 403, "SVCSTG.SWR.4030170", "Insufficient permissions"),
        # The SDK's urllib3 layer turns any 429 into a RetryError and loses the
        # body's APIG.0308 (a known SDK mistake).
        ("429", 429, "429", None),
    ],
)
def test_sdk_reads_our_4xx_bodies(
    sandbox: RunningSandbox, tag: str, status: int, code: str, message: str | None
) -> None:
    """Scripted 401/403/429 bodies come out of the SDK with their status, code and message."""
    with pytest.raises(exceptions.ClientRequestException) as caught:
        show(sandbox, "sdk", "scripted", tag)
    assert caught.value.status_code == status
    assert caught.value.error_code == code
    if message is not None:
        assert caught.value.error_msg == message


def test_sdk_reads_our_500_camel_case_body(sandbox: RunningSandbox) -> None:
    """The errorCode/errorMsg style of a 500 reaches the SDK's ServerResponseException."""
    with pytest.raises(exceptions.ServerResponseException) as caught:
        show(sandbox, "sdk", "scripted", "500")
    assert caught.value.status_code == 500
    assert caught.value.error_code == "SVCSTG.SWR.5000002"


def test_sdk_reads_our_list_apis(sandbox: RunningSandbox) -> None:
    """The SDK's list models take our v2/v3 tag lists and v3 repository list, quirks included."""
    namespace, repository, _ = INTERESTING["schema1"]
    swr = client(sandbox)
    v2 = swr.list_repository_tags(
        ListRepositoryTagsRequest(
            namespace=namespace, repository=repository.replace("/", "$"), offset="0", limit="4"
        )
    )
    assert v2.content_range == "0-3/10"
    assert [item.tag for item in v2.body] == CATALOGUE.tags(namespace, repository)[:4]
    v3 = swr.list_repository_tag(
        ListRepositoryTagRequest(
            namespace=namespace, repository=repository.replace("/", "$"), limit=4
        )
    )
    assert isinstance(v3.next_marker, str)
    assert v3.next_marker  # opaque: sent back as it came
    assert v3.has_more is True
    assert [item.tag for item in v3.tags] == CATALOGUE.tags(namespace, repository)[:4]
    following = swr.list_repository_tag(
        ListRepositoryTagRequest(
            namespace=namespace,
            repository=repository.replace("/", "$"),
            limit=4,
            marker=v3.next_marker,
        )
    )
    assert [item.tag for item in following.tags] == CATALOGUE.tags(namespace, repository)[4:8]
    repos = swr.list_repo_details(ListRepoDetailsRequest(limit=5))
    assert isinstance(repos.next_marker, int)
    assert len(repos.repos) == 5
