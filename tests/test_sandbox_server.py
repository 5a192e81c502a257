"""The sandbox over real loopback sockets: lookups, error bodies, faults, auth, stats."""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from yarl import URL

from crawler.sandbox import FaultConfig, RunningSandbox, SandboxConfig, running_sandbox

pytestmark = pytest.mark.anyio

TOKEN = "sandbox-token"
AUTH = {"X-Auth-Token": TOKEN}
CONTENT_TYPE = "application/json;charset=utf-8"


def tag_path(namespace: str, repository: str, tag: str, slash: str = "$") -> str:
    return f"/v2/manage/namespaces/{namespace}/repos/{repository.replace('/', slash)}/tags/{tag}"


@asynccontextmanager
async def serve(
    config: SandboxConfig | None = None,
) -> AsyncIterator[tuple[RunningSandbox, aiohttp.ClientSession]]:
    async with (
        running_sandbox(config or SandboxConfig()) as sandbox,
        aiohttp.ClientSession(sandbox.url) as session,
    ):
        yield sandbox, session


async def get(
    session: aiohttp.ClientSession,
    path: str,
    headers: Mapping[str, str] = AUTH,
    **params: str,
) -> tuple[int, Mapping[str, str], bytes]:
    async with session.get(URL(path, encoded=True), headers=headers, params=params) as response:
        return response.status, response.headers, await response.read()


def first_target(sandbox: RunningSandbox, with_slash: bool = True) -> tuple[str, str, str]:
    return next(t for t in sandbox.catalogue.targets() if ("/" in t[1]) == with_slash)


def key(target: tuple[str, str, str]) -> str:
    return f"{target[0]}/{target[1]}:{target[2]}"


# -- lookups and bodies ---------------------------------------------------------


async def test_dollar_and_percent_encoded_dollar_both_find_the_tag() -> None:
    """A '/' in the repository sent as '$' or as '%24' reaches the same tag, byte for byte."""
    async with serve() as (sandbox, session):
        target = first_target(sandbox)
        expected = sandbox.catalogue.body(*target)
        for slash in ("$", "%24"):
            status, headers, body = await get(session, tag_path(*target, slash=slash))
            assert status == 200
            assert body == expected
            assert headers["Content-Type"] == CONTENT_TYPE
            assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-Id"])
        plain = first_target(sandbox, with_slash=False)
        status, _, body = await get(session, tag_path(*plain))
        assert (status, body) == (200, sandbox.catalogue.body(*plain))


async def test_unknown_tag_is_404_with_the_huawei_body() -> None:
    """An absent tag answers 404 with both the errors list and error_code/error_msg."""
    async with serve() as (sandbox, session):
        namespace, repository, _ = first_target(sandbox)
        status, headers, body = await get(session, tag_path(namespace, repository, "v9.9.9"))
        assert status == 404
        assert headers["X-Request-Id"]
        assert json.loads(body) == {
            "errors": [
                {"errorCode": "SVCSTG.SWR.4040010", "errorMessage": "Image not found", "detail": ""}
            ],
            "error_code": "SVCSTG.SWR.4040010",
            "error_msg": "Image not found",
        }


@pytest.mark.parametrize(
    ("namespace", "repository", "tag"),
    [("Upper", "repo", "v1"), ("ns", "a//b", "v1"), ("ns", "repo-", "v1"), ("ns", "repo", "-x")],
)
async def test_names_that_break_the_rules_are_400(
    namespace: str, repository: str, tag: str
) -> None:
    """Invalid namespace, repository or tag names answer 400 SVCSTG.SWR.4000014 (old style)."""
    async with serve() as (_, session):
        status, _, body = await get(session, tag_path(namespace, repository, tag))
        assert status == 400
        assert json.loads(body)["errors"][0]["errorCode"] == "SVCSTG.SWR.4000014"


async def test_missing_or_wrong_token_is_401_apig_1002() -> None:
    """No token, or one the sandbox did not issue, answers 401 APIG.1002."""
    async with serve() as (sandbox, session):
        path = tag_path(*first_target(sandbox))
        for headers in ({}, {"X-Auth-Token": "forged"}):
            status, _, body = await get(session, path, headers)
            assert status == 401
            assert json.loads(body) == {
                "error_code": "APIG.1002",
                "error_msg": "Incorrect token or token resolution failed",
            }


async def test_require_auth_false_lets_anyone_in() -> None:
    """With require_auth=False a request without credentials gets its 200."""
    async with serve(SandboxConfig(require_auth=False)) as (sandbox, session):
        status, _, _ = await get(session, tag_path(*first_target(sandbox)), {})
        assert status == 200


async def test_unknown_api_is_the_gateway_404() -> None:
    """A path the service does not have answers the gateway's JSON 404, not HTML."""
    async with serve() as (_, session):
        status, headers, body = await get(session, "/v2/manage/nothing")
        assert status == 404
        assert headers["Content-Type"] == CONTENT_TYPE
        assert json.loads(body)["error_code"] == "APIG.0101"


# -- scripted faults ---------------------------------------------------------------

EXPECTED_CODES = {
    400: ("errors", "SVCSTG.SWR.4000014"),
    401: ("error_code", "APIG.1002"),
    403: ("error_code", "SVCSTG.SWR.4030170"),
    404: ("error_code", "SVCSTG.SWR.4040010"),
    429: ("error_code", "APIG.0308"),
    500: ("errorCode", "SVCSTG.SWR.5000002"),
    502: ("error_code", "APIG.0202"),
    503: ("error_code", "APIG.0203"),
    504: ("error_code", "APIG.0201"),
}


def error_code(body: dict[str, Any]) -> str:
    if "error_code" in body:
        return str(body["error_code"])
    if "errorCode" in body:
        return str(body["errorCode"])
    return str(body["errors"][0]["errorCode"])


@pytest.mark.parametrize("status", sorted(EXPECTED_CODES))
async def test_scripted_status_then_normal(status: int) -> None:
    """A scripted status comes with its body style and code, then the target answers 200."""
    async with running_sandbox() as probe:
        target = first_target(probe)
    config = SandboxConfig(faults=FaultConfig(scripts={key(target): [str(status)]}))
    async with serve(config) as (sandbox, session):
        got, headers, body = await get(session, tag_path(*target))
        assert got == status
        style, code = EXPECTED_CODES[status]
        decoded = json.loads(body)
        assert style in decoded
        assert error_code(decoded) == code
        assert "Retry-After" not in headers
        again, _, body = await get(session, tag_path(*target))
        assert (again, body) == (200, sandbox.catalogue.body(*target))
        assert sandbox.stats.requests_for(*target) == 2
        assert sandbox.stats.per_status == {status: 1, 200: 1}


async def test_scripted_retry_after_seconds_and_date() -> None:
    """429:retry-after=N sends 'N'; 429:retry-after-date=N an HTTP date about N s ahead."""
    config = SandboxConfig(
        faults=FaultConfig(
            scripts={"k/a:b": ["429:retry-after=3", "429:retry-after-date=120", "404"]}
        )
    )
    async with serve(config) as (sandbox, session):
        status, headers, body = await get(session, tag_path("k", "a", "b"))
        assert (status, headers["Retry-After"]) == (429, "3")
        assert json.loads(body)["error_code"] == "APIG.0308"
        status, headers, _ = await get(session, tag_path("k", "a", "b"))
        assert status == 429
        when = email.utils.parsedate_to_datetime(headers["Retry-After"])
        ahead = (when - datetime.now(UTC)).total_seconds()
        assert 110 < ahead <= 121
        status, _, _ = await get(session, tag_path("k", "a", "b"))
        assert status == 404
        assert sandbox.stats.throttled == 2


async def test_script_counts_every_attempt_for_its_target() -> None:
    """per_target counts each request of a target: three scripted answers, three attempts."""
    async with running_sandbox() as probe:
        target = first_target(probe)
    config = SandboxConfig(faults=FaultConfig(scripts={key(target): ["503", "502", "200"]}))
    async with serve(config) as (sandbox, session):
        statuses = [(await get(session, tag_path(*target)))[0] for _ in range(3)]
        assert statuses == [503, 502, 200]
        assert sandbox.stats.per_target[key(target)] == 3
        assert sandbox.stats.total_requests == sandbox.stats.tag_requests == 3


async def test_reset_really_resets_the_tcp_connection() -> None:
    """'reset' sends a TCP RST: a raw socket read fails with ECONNRESET, not a clean EOF."""
    config = SandboxConfig(faults=FaultConfig(scripts={"k/a:b": ["reset"] * 3}))
    async with serve(config) as (sandbox, session):
        reader, writer = await asyncio.open_connection(sandbox.host, sandbox.port)
        request = (
            f"GET {tag_path('k', 'a', 'b')} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {TOKEN}\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        with pytest.raises(ConnectionResetError):
            await reader.read(65536)
        writer.close()
        # aiohttp's client silently repeats an idempotent request once after a
        # reset, so it takes two resets for the error to reach the caller.
        with pytest.raises(aiohttp.ClientConnectionError):
            await get(session, tag_path("k", "a", "b"))
        assert sandbox.stats.resets == sandbox.stats.requests_for("k", "a", "b") == 3
        status, _, _ = await get(session, tag_path("k", "a", "b"))
        assert status == 404
        assert sandbox.stats.per_status == {404: 1}


async def test_slow_really_delays_and_a_client_timeout_fires() -> None:
    """'slow' holds the answer slow_seconds: a short timeout expires, a patient client waits."""
    async with running_sandbox() as probe:
        target = first_target(probe)
    faults = FaultConfig(slow_seconds=0.4, scripts={key(target): ["slow", "slow"]})
    async with serve(SandboxConfig(faults=faults)) as (sandbox, session):
        with pytest.raises(asyncio.TimeoutError):
            async with session.get(
                URL(tag_path(*target), encoded=True),
                headers=AUTH,
                timeout=aiohttp.ClientTimeout(total=0.05),
            ) as response:
                await response.read()
        started = time.monotonic()
        status, _, body = await get(session, tag_path(*target))
        assert time.monotonic() - started >= 0.4
        assert (status, body) == (200, sandbox.catalogue.body(*target))


async def test_truncated_is_200_with_invalid_json() -> None:
    """'truncated' answers 200 with a strict prefix of the real body that does not parse."""
    async with running_sandbox() as probe:
        target = first_target(probe)
    config = SandboxConfig(faults=FaultConfig(scripts={key(target): ["truncated"]}))
    async with serve(config) as (sandbox, session):
        status, _, body = await get(session, tag_path(*target))
        full = sandbox.catalogue.body(*target) or b""
        assert status == 200
        assert full.startswith(body)
        assert len(body) < len(full)
        with pytest.raises(json.JSONDecodeError):
            json.loads(body)


async def test_random_errors_follow_the_rate() -> None:
    """error_rate=1 makes every tag-details answer a 5xx; list APIs stay untouched."""
    config = SandboxConfig(faults=FaultConfig(error_rate=1.0, seed=9))
    async with serve(config) as (sandbox, session):
        targets = list(sandbox.catalogue.targets())[:20]
        statuses = [(await get(session, tag_path(*t)))[0] for t in targets]
        assert all(status in (500, 502, 503, 504) for status in statuses)
        assert len(set(statuses)) > 1
        status, _, _ = await get(session, "/v2/manage/namespaces")
        assert status == 200


# -- rate limit, concurrency, stats ----------------------------------------------------


async def test_rate_limit_answers_429_apig_0308_without_retry_after() -> None:
    """Over the server's rate limit the answer is the gateway's 429, lists included."""
    config = SandboxConfig(faults=FaultConfig(rate_limit=0.01, rate_burst=3))
    async with serve(config) as (sandbox, session):
        path = tag_path(*first_target(sandbox))
        statuses = [(await get(session, path))[0] for _ in range(3)]
        assert statuses == [200, 200, 200]
        status, headers, body = await get(session, "/v2/manage/namespaces")
        assert status == 429
        assert "Retry-After" not in headers
        decoded = json.loads(body)
        assert decoded["error_code"] == "APIG.0308"
        assert re.fullmatch(
            r"The throttling threshold has been reached: policy user over ratelimit,"
            r"limit:\d+,time:1 minute",
            decoded["error_msg"],
        )
        assert (await get(session, path))[0] == 429
        assert sandbox.stats.throttled == 2
        assert sandbox.stats.per_status[429] == 2


async def test_peak_in_flight_matches_the_client_bound() -> None:
    """With latency, the peak of concurrent tag requests equals the client's connection limit."""
    config = SandboxConfig(faults=FaultConfig(latency=0.05))
    async with running_sandbox(config) as sandbox:
        targets = list(sandbox.catalogue.targets())[:24]
        connector = aiohttp.TCPConnector(limit=6)
        async with aiohttp.ClientSession(sandbox.url, connector=connector) as session:
            results = await asyncio.gather(*(get(session, tag_path(*t)) for t in targets))
        assert all(status == 200 for status, _, _ in results)
        assert sandbox.stats.peak_in_flight == 6
        assert sandbox.stats.in_flight == 0
        sandbox.stats.reset()
        assert sandbox.stats.peak_in_flight == 0
        assert sandbox.stats.total_requests == 0
        assert not sandbox.stats.per_target


# -- IAM and AK/SK -------------------------------------------------------------------

IAM_USER = ("acme", "crawler", "s3cret!")


def login_body(password: str) -> dict[str, Any]:
    domain, name, _ = IAM_USER
    user = {"domain": {"name": domain}, "name": name, "password": password}
    return {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": {"name": "cn-north-4"}},
        }
    }


async def test_iam_issues_tokens_that_expire() -> None:
    """IAM login answers 201 + X-Subject-Token; the token works until expires_at, then 401."""
    config = SandboxConfig(iam_users=[IAM_USER], token_ttl=60.0)
    async with serve(config) as (sandbox, session):
        now = [1_700_000_000.0]
        sandbox.server.auth.clock = lambda: now[0]
        async with session.post("/v3/auth/tokens", json=login_body("wrong")) as response:
            assert response.status == 401
        async with session.post("/v3/auth/tokens", json=login_body(IAM_USER[2])) as response:
            assert response.status == 201
            token = response.headers["X-Subject-Token"]
            answer = await response.json()
        expires = datetime.fromisoformat(answer["token"]["expires_at"].replace("Z", "+00:00"))
        issued = datetime.fromisoformat(answer["token"]["issued_at"].replace("Z", "+00:00"))
        assert expires - issued == timedelta(seconds=60)
        path = tag_path(*first_target(sandbox))
        assert (await get(session, path, {"X-Auth-Token": token}))[0] == 200
        now[0] += 61
        status, _, body = await get(session, path, {"X-Auth-Token": token})
        assert status == 401
        assert json.loads(body)["error_code"] == "APIG.1002"
        assert sandbox.stats.iam_logins == 2


async def test_iam_rejects_a_malformed_login() -> None:
    """A body that is not a password login is a 400, not a crash."""
    async with (
        serve(SandboxConfig(iam_users=[IAM_USER])) as (_, session),
        session.post("/v3/auth/tokens", json={"auth": {}}) as response,
    ):
        assert response.status == 400


def official_signature(
    url: str,
    path: str,
    ak: str,
    sk: str,
    date: str | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, str]:
    """Headers signed by huaweicloudsdkcore's own Signer."""
    parsed = URL(url)
    headers = {"Content-Type": "application/json", "X-Project-Id": "0123456789abcdef"}
    if date is not None:
        headers["X-Sdk-Date"] = date
    request = SdkRequest(
        method="GET",
        schema="http",
        host=f"{parsed.host}:{parsed.port}",
        resource_path=path,
        query_params=list((query or {}).items()),
        header_params=headers,
    )
    signed = Signer(BasicCredentials(ak, sk)).sign(request)
    return dict(signed.header_params)


async def test_official_sdk_signatures_are_accepted_and_wrong_ones_refused() -> None:
    """A request signed by the official SDK passes; a wrong SK, unknown AK or old date fails."""
    config = SandboxConfig(credentials={"AKSANDBOX": "sk-secret"})
    async with serve(config) as (sandbox, session):
        namespace, repository, tag = first_target(sandbox)
        for slash in ("$", "%24"):
            path = tag_path(namespace, repository, tag, slash)
            headers = official_signature(sandbox.url, path, "AKSANDBOX", "sk-secret")
            assert (await get(session, path, headers))[0] == 200
        path = tag_path(namespace, repository, tag)
        list_path = f"/v2/manage/namespaces/{namespace}/repos/{repository.replace('/', '$')}/tags"
        query = {"offset": "0", "limit": "2"}
        headers = official_signature(sandbox.url, list_path, "AKSANDBOX", "sk-secret", query=query)
        assert (await get(session, list_path, headers, **query))[0] == 200
        assert (await get(session, list_path, headers, offset="0", limit="3"))[0] == 401

        wrong_sk = official_signature(sandbox.url, path, "AKSANDBOX", "not-the-sk")
        status, _, body = await get(session, path, wrong_sk)
        assert status == 401
        assert json.loads(body)["error_code"] == "APIG.0301"
        unknown = official_signature(sandbox.url, path, "AKNOBODY", "sk-secret")
        assert (await get(session, path, unknown))[0] == 401
        stale = (datetime.now(UTC) - timedelta(minutes=16)).strftime("%Y%m%dT%H%M%SZ")
        old = official_signature(sandbox.url, path, "AKSANDBOX", "sk-secret", date=stale)
        status, _, body = await get(session, path, old)
        assert status == 401
        assert "x-sdk-date" in json.loads(body)["error_msg"]
        recent = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y%m%dT%H%M%SZ")
        fine = official_signature(sandbox.url, path, "AKSANDBOX", "sk-secret", date=recent)
        assert (await get(session, path, fine))[0] == 200


# -- list APIs -----------------------------------------------------------------------


async def test_v2_tag_list_pages_with_capital_tag_and_content_range() -> None:
    """v2 ListRepositoryTags: offset/limit pages, items keyed 'Tag', total in Content-Range."""
    async with serve() as (sandbox, session):
        namespace, repository, _ = first_target(sandbox)
        path = f"/v2/manage/namespaces/{namespace}/repos/{repository.replace('/', '%24')}/tags"
        seen: list[str] = []
        ranges = []
        for offset in range(0, 12, 4):
            status, headers, body = await get(session, path, offset=str(offset), limit="4")
            assert status == 200
            items = json.loads(body)
            assert all("Tag" in item and "tag" not in item for item in items)
            assert all("deleted" in item and "scanned" in item for item in items)
            seen += [item["Tag"] for item in items]
            ranges.append(headers["Content-Range"])
        assert seen == sandbox.catalogue.tags(namespace, repository)
        assert ranges == ["0-3/10", "4-7/10", "8-9/10"]
        status, headers, body = await get(session, path, offset="10", limit="4")
        assert (status, json.loads(body), headers["Content-Range"]) == (200, [], "*/10")
        assert (await get(session, path, limit="1001"))[0] == 400
        missing = "/v2/manage/namespaces/nobody/repos/none/tags"
        assert (await get(session, missing))[0] == 404


async def test_v3_tag_list_walks_string_markers() -> None:
    """v3 ListRepositoryTag: nextMarker is a string, has_more a bool, manifest "" unless asked."""
    async with serve() as (sandbox, session):
        namespace, repository, _ = first_target(sandbox)
        path = f"/v3/manage/namespaces/{namespace}/repos/{repository.replace('/', '$')}/tags"
        seen: list[str] = []
        marker = ""
        pages = 0
        while True:
            params = {"limit": "3", "marker": marker} if marker else {"limit": "3"}
            status, _, body = await get(session, path, **params)
            assert status == 200
            page = json.loads(body)
            assert isinstance(page["nextMarker"], str)
            assert isinstance(page["has_more"], bool)
            assert all(item["manifest"] == "" for item in page["tags"])
            seen += [item["tag"] for item in page["tags"]]
            pages += 1
            if not page["has_more"]:
                assert page["nextMarker"] == ""
                break
            marker = page["nextMarker"]
        assert seen == sandbox.catalogue.tags(namespace, repository)
        assert pages == 4
        _, _, body = await get(session, path, limit="1", with_manifest="true")
        item = json.loads(body)["tags"][0]
        expected = sandbox.catalogue.get(namespace, repository, item["tag"]) or {}
        assert item["manifest"] == expected["manifest"]


async def test_namespace_list_and_filter() -> None:
    """ListNamespaces lists every namespace; namespace= and filter= narrow it to one."""
    async with serve() as (sandbox, session):
        _, _, body = await get(session, "/v2/manage/namespaces")
        names = [item["name"] for item in json.loads(body)["namespaces"]]
        assert names == sandbox.catalogue.namespaces()
        wanted = names[1]
        for params in ({"namespace": wanted}, {"filter": f"namespace::{wanted}|mode::visible"}):
            _, _, body = await get(session, "/v2/manage/namespaces", **params)
            assert [item["name"] for item in json.loads(body)["namespaces"]] == [wanted]


async def test_v2_repository_list_pages_with_content_range() -> None:
    """v2 ListReposDetails: offset/limit over every repository, total in Content-Range."""
    async with serve() as (sandbox, session):
        everything = [
            (ns, repo)
            for ns in sandbox.catalogue.namespaces()
            for repo in sandbox.catalogue.repositories(ns)
        ]
        seen = []
        for offset in range(0, 30, 7):
            status, headers, body = await get(
                session, "/v2/manage/repos", offset=str(offset), limit="7"
            )
            assert status == 200
            assert headers["Content-Range"].endswith("/30")
            items = json.loads(body)
            seen += [(item["namespace"], item["name"]) for item in items]
            assert all(item["total_range"] == 30 and "created_at" in item for item in items)
        assert seen == everything
        namespace = sandbox.catalogue.namespaces()[2]
        _, headers, body = await get(session, "/v2/manage/repos", namespace=namespace, limit="100")
        assert headers["Content-Range"] == "0-9/10"
        assert {item["namespace"] for item in json.loads(body)} == {namespace}


async def test_v3_repository_list_walks_integer_markers() -> None:
    """v3 ListRepoDetails: nextMarker is an int (0 at the end) and the walk covers every repo."""
    async with serve() as (sandbox, session):
        seen = []
        marker = 0
        while True:
            params = {"limit": "8"} if marker == 0 else {"limit": "8", "marker": str(marker)}
            status, _, body = await get(session, "/v3/manage/repos", **params)
            assert status == 200
            page = json.loads(body)
            assert isinstance(page["nextMarker"], int)
            seen += [(item["namespace_name"], item["name"]) for item in page["repos"]]
            if page["nextMarker"] == 0:
                break
            marker = page["nextMarker"]
        expected = [
            (ns, r)
            for ns in sandbox.catalogue.namespaces()
            for r in sandbox.catalogue.repositories(ns)
        ]
        assert seen == expected
        assert sandbox.stats.list_requests == 4
