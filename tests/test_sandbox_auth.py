"""The sandbox checks AK/SK signatures with the official SDK's signer, not with ours,
so an end-to-end AK/SK test catches a bug in :mod:`crawler.http.signer`."""

from __future__ import annotations

import pytest

from crawler.http import signer
from crawler.http.client import SwrClient
from crawler.http.credentials import AkSkSigner
from crawler.http.endpoint import parse_endpoint
from crawler.http.transport import Transport
from crawler.sandbox import auth as sandbox_auth
from crawler.sandbox.server import SandboxConfig, running_sandbox

pytestmark = pytest.mark.anyio

AK, SK = "AKSANDBOXCHECK000001", "sk-sandbox-check-0123456789"
#: A list query whose values need encoding: "|", ":" and " " are all escaped when signing.
QUERY = [("filter", "namespace::ns0|name::a b"), ("limit", "5")]


async def list_status() -> int:
    """The status of one AK/SK-signed list request to a sandbox that knows the key."""
    config = SandboxConfig(seed=1, namespaces=1, credentials={AK: SK})
    async with running_sandbox(config) as sb, Transport(timeout=5, max_connections=2) as transport:
        client = SwrClient(parse_endpoint(sb.url), AkSkSigner(AK, SK), transport)
        response = await client.get("/v2/manage/repos", QUERY)
    return response.status


@pytest.fixture
def broken_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our signer leaves "|", ":" and " " unescaped, a bug the sandbox must not share."""
    monkeypatch.setattr(signer, "encode_component", lambda value: value)


def test_the_sandbox_verifies_with_the_official_sdk() -> None:
    """With the SDK installed (a dev dependency) the sandbox names it as its verifier."""
    assert sandbox_auth.VERIFIER == "huaweicloudsdkcore"


async def test_a_correct_signature_is_accepted() -> None:
    """Our signer's signature of an encoded query is accepted by the SDK-based check."""
    assert await list_status() == 200


async def test_a_signer_bug_is_refused_end_to_end(broken_encoder: None) -> None:
    """A canonical-query bug in our signer makes the sandbox answer 401, as the real API would."""
    assert await list_status() == 401
