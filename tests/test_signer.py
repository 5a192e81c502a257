"""Our SDK-HMAC-SHA256 signer against the official ``huaweicloudsdkcore`` signer, byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.http import signer

AK = "HPUAEXAMPLEAK0000001"
SK = "sk-Example-Secret-0123456789abcdefghijklmn"
HOST = "swr-api.cn-north-4.myhuaweicloud.com"
DATE = "20240229T235959Z"
NOW = datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)
BASE_HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "swr-crawler/0.1.0",
    "Host": HOST,
    "X-Sdk-Date": DATE,
}

PATHS = [
    "/v2/manage/namespaces/ns/repos/app/tags/v1",
    "/v2/manage/namespaces/ns/repos/group$sub$app/tags/v1.2.3",
    "/v2/manage/namespaces/ns/repos/group%24sub%24app/tags/v1.2.3",
    "/v2/manage/namespaces/my ns/repos/a b/tags/with space",
    "/v2/manage/namespaces/ns/repos/a%20b/tags/x%2By",
    "/v2/manage/namespaces/ns/repos/répo/tags/标签-ü",
    "/v2/manage/namespaces/ns/repos/%E6%A0%87/tags/%C3%BC",
    "/v2/manage/namespaces/ns.name/repos/a~b/tags/v~1",
    "/v2/manage/namespaces/ns/repos/a:b@c!d'e(f)*g+h,i;j=k&l/tags/[1]",
    "/v2/manage/namespaces/ns/repos/slash%2Fencoded/tags/t",
    "/v2/manage/namespaces/ns/repos/",
    "/v2/manage/repos",
    "/",
]

QUERIES: list[list[tuple[str, str]]] = [
    [],
    [("namespace", "ns"), ("limit", "100"), ("offset", "0")],
    [("filter", "namespace::ns|name::a b")],
    [("name", "group/sub/app")],
    [("name", "répo 标签")],
    [("k", "2"), ("k", "1"), ("a", "z")],
    [("empty", ""), ("also", "")],
    [("sp ace", "v&w=x+y?z#"), ("tilde~", "~")],
    [("Z", "1"), ("a", "1"), ("_", "1")],
]

BODIES = [b"", b'{"namespace":"ns"}', "ünïcødé".encode()]

EXTRAS: list[dict[str, str]] = [
    {},
    {"X-Project-Id": "0123456789abcdef0123456789abcdef"},
    {"X-Security-Token": "gQpjbi1ub3J0aC00...temporary"},
    {"X-Project-Id": "p1", "X-Security-Token": "t1"},
]


def sdk_request(
    method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str], body: bytes
) -> SdkRequest:
    """The official SDK's request for ``HOST`` over https."""
    return SdkRequest(
        method=method,
        schema="https",
        host=HOST,
        resource_path=path,
        query_params=list(query),
        header_params=dict(headers),
        body=body,
    )


def official_headers(
    request: SdkRequest, *, project_id: str | None = None, security_token: str | None = None
) -> dict[str, str]:
    """The headers the official SDK sends after ``Credentials.sign_request``."""
    credentials = BasicCredentials(AK, SK, project_id)
    if security_token is not None:
        credentials = credentials.with_security_token(security_token)
    signed = credentials.sign_request(request)
    # The SDK re-encodes values as latin-1 text of their UTF-8 bytes for its
    # HTTP library; undo that to compare text with text.
    return {
        name: value.encode("iso-8859-1").decode() for name, value in signed.header_params.items()
    }


def official_authorization(request: SdkRequest) -> str:
    """The ``Authorization`` value from the bare official ``Signer``."""
    value: str = Signer(BasicCredentials(AK, SK)).sign(request).header_params["Authorization"]
    return value


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("query", QUERIES, ids=lambda q: "&".join(f"{k}={v}" for k, v in q))
@pytest.mark.parametrize("body", BODIES, ids=["empty", "json", "unicode"])
def test_authorization_matches_official_signer(
    path: str, query: list[tuple[str, str]], body: bytes
) -> None:
    """Every path/query/body in the table signs to the official Authorization, byte for byte."""
    ours = signer.authorization(AK, SK, "GET", path, query, BASE_HEADERS, body)
    assert ours == official_authorization(sdk_request("GET", path, query, BASE_HEADERS, body))


@pytest.mark.parametrize("extra", EXTRAS, ids=lambda e: "+".join(e) or "plain")
@pytest.mark.parametrize("method", ["GET", "post", "DELETE"])
def test_sign_matches_official_credentials_flow(method: str, extra: dict[str, str]) -> None:
    """sign() sends the headers BasicCredentials.sign_request sends, project id and token too."""
    path, query, body = PATHS[1], QUERIES[5], BODIES[1]
    base = {k: v for k, v in BASE_HEADERS.items() if k != "Host"}
    ours = signer.sign(AK, SK, method, HOST, path, query, {**base, **extra}, body, NOW)
    theirs = official_headers(
        sdk_request(method, path, query, base, body),
        project_id=extra.get("X-Project-Id"),
        security_token=extra.get("X-Security-Token"),
    )
    assert ours == theirs
    signed = ours["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {name.lower() for name in extra} <= set(signed)


def test_sign_marks_non_json_payload_unsigned_like_the_sdk() -> None:
    """A non-JSON content type gets X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD, as in the SDK."""
    headers = {"Content-Type": "application/octet-stream", "X-Sdk-Date": DATE}
    ours = signer.sign(AK, SK, "PUT", HOST, "/upload", [], headers, b"\x00\x01", NOW)
    assert ours["X-Sdk-Content-Sha256"] == "UNSIGNED-PAYLOAD"
    assert ours == official_headers(sdk_request("PUT", "/upload", [], headers, b"\x00\x01"))


def test_sign_adds_date_from_clock_and_keeps_host_port() -> None:
    """Without X-Sdk-Date the clock's time is used; a non-default port stays in Host."""
    ours = signer.sign(AK, SK, "GET", "127.0.0.1:8080", "/v2/manage/repos", [], {}, b"", NOW)
    assert ours["X-Sdk-Date"] == DATE
    assert ours["Host"] == "127.0.0.1:8080"
    assert "SignedHeaders=host;x-sdk-date," in ours["Authorization"]


def test_headers_with_underscore_and_padding_match_official() -> None:
    """Underscored headers stay unsigned and padded values are stripped, as the SDK does."""
    headers = {**BASE_HEADERS, "X_Custom": "skipped", "X-Padded": "  value\t"}
    ours = signer.authorization(AK, SK, "GET", PATHS[0], [], headers, b"")
    assert ours == official_authorization(sdk_request("GET", PATHS[0], [], headers, b""))
    assert "x_custom" not in ours
    assert "x-padded" in ours


def test_a_different_secret_changes_the_signature() -> None:
    """The signature depends on the SK (a check that the comparison can fail)."""
    ours = signer.authorization(AK, SK, "GET", PATHS[0], [], BASE_HEADERS, b"")
    other = signer.authorization(AK, SK + "x", "GET", PATHS[0], [], BASE_HEADERS, b"")
    assert ours != other


def test_missing_date_is_an_error_not_a_stopiteration() -> None:
    """authorization() without X-Sdk-Date raises ValueError naming the header."""
    with pytest.raises(ValueError, match="X-Sdk-Date"):
        signer.authorization(AK, SK, "GET", "/", [], {"Host": HOST}, b"")


# No surrogates: neither signer can UTF-8-encode them, and no real request has them.
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_segments = st.lists(_text.filter(lambda s: "/" not in s), min_size=1, max_size=5)
_header_names = st.text(st.sampled_from("abcXYZ019-_"), min_size=1, max_size=8).map(
    lambda s: "X-T-" + s
)
_header_values = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=16)


@settings(max_examples=300, deadline=None)
@given(
    segments=_segments,
    trailing_slash=st.booleans(),
    query=st.lists(st.tuples(_text, _text), max_size=5),
    extra=st.dictionaries(_header_names, _header_values, max_size=4),
    body=st.binary(max_size=64),
    method=st.sampled_from(["GET", "POST", "put", "DELETE"]),
)
def test_random_requests_match_official_signer(
    segments: list[str],
    trailing_slash: bool,
    query: list[tuple[str, str]],
    extra: dict[str, str],
    body: bytes,
    method: str,
) -> None:
    """For random paths, queries, header values and bodies both signers agree byte for byte."""
    path = "/" + "/".join(segments) + ("/" if trailing_slash else "")
    headers = {**BASE_HEADERS, **extra}
    ours = signer.authorization(AK, SK, method, path, query, headers, body)
    assert ours == official_authorization(sdk_request(method, path, query, headers, body))


_plain_segment = st.text(st.sampled_from("abz09._-~$"), min_size=1, max_size=10)


@settings(max_examples=300, deadline=None)
@given(
    segments=st.lists(
        st.one_of(_plain_segment, _text.filter(lambda s: "/" not in s)), min_size=1, max_size=5
    ),
    query=st.lists(st.tuples(_text, _text), max_size=3),
    extra=st.dictionaries(_header_names, _header_values, max_size=3),
    method=st.sampled_from(["GET", "get", "HEAD"]),
    seconds=st.integers(0, 4_000_000_000),
)
def test_prepared_signer_matches_official_signer(
    segments: list[str],
    query: list[tuple[str, str]],
    extra: dict[str, str],
    method: str,
    seconds: int,
) -> None:
    """The prepared (hot-path) signer gives the official signer's Authorization for any
    path, query, header set and time, including the '$' paths of repositories with '/'."""
    path = "/" + "/".join(segments)
    # The crawler never presets X-Sdk-Date: the prepared signer stamps every request.
    headers = {k: v for k, v in BASE_HEADERS.items() if k != "X-Sdk-Date"} | extra
    prepared = signer.PreparedSigner(AK, SK, HOST, headers)
    now = datetime.fromtimestamp(seconds, UTC)
    sent = prepared.headers(method, path, query, now)
    assert sent["X-Sdk-Date"] == now.strftime("%Y%m%dT%H%M%SZ")
    assert sent["Host"] == HOST
    unsigned = {k: v for k, v in sent.items() if k != "Authorization"}
    expected = official_authorization(sdk_request(method, path, query, unsigned, b""))
    assert sent["Authorization"] == expected
    assert sent == signer.sign(
        AK, SK, method, "swr.example.com:8443", path, query, headers, b"", now
    )
