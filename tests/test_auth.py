"""The three credentials: choice from the environment, headers, IAM login/refresh, no leaks."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from structlog.testing import capture_logs

from crawler import USER_AGENT
from crawler.errors import (
    AuthenticationFailed,
    ConfigError,
    ErrorKind,
    IamLoginFailed,
    IamUnavailable,
)
from crawler.http.credentials import AkSkSigner, StaticToken, auth_from_env
from crawler.http.iam import IamPasswordLogin
from crawler.http.secrets import Secret
from crawler.http.transport import Transport

TOKEN = "MIIEXAMPLE-static-token-0123456789"
AK = "HPUAEXAMPLEAK0000001"
SK = "sk-Example-Secret-0123456789abcdef"
SECURITY_TOKEN = "gQpTemporarySecurityToken-0123456789"
PASSWORD = "Pa55w0rd!-do-not-leak"
WRONG_PASSWORD = "Wr0ng-Pa55w0rd!-do-not-leak"
SECRETS = (TOKEN, SK, SECURITY_TOKEN, PASSWORD, WRONG_PASSWORD)

IAM_ENV = {
    "SWR_IAM_USER": "crawler-bot",
    "SWR_IAM_PASSWORD": PASSWORD,
    "SWR_IAM_DOMAIN": "acme",
}
AKSK_ENV = {"CLOUD_SDK_AK": AK, "CLOUD_SDK_SK": SK}

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
PATH = "/v2/manage/namespaces/ns/repos/group$app/tags/v1"
QUERY = [("filter", "namespace::ns|name::a b"), ("limit", "10")]


def assert_no_secret(*texts: object) -> None:
    """None of the literal secrets appears in any of ``texts``."""
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text), f"secret leaked into {text!r}"


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class FakeIam:
    """A loopback IAM: POST /v3/auth/tokens, tokens valid for ``ttl`` by its own clock."""

    def __init__(self) -> None:
        self.endpoint = ""
        self.password = PASSWORD
        self.ttl = timedelta(hours=1)
        self.issued_at = T0 - timedelta(hours=3)  # IAM's clock is off from ours
        self.fail_status: int | None = None
        self.gate: asyncio.Event | None = None
        self.started = 0
        self.logins = 0
        self.requests: list[tuple[str, dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.started += 1
        body = await request.json()
        self.requests.append((request.headers["Content-Type"], body))
        if self.gate is not None:
            await self.gate.wait()
        self.logins += 1
        if self.fail_status is not None:
            return web.json_response(
                {"error_msg": "Service unavailable", "error_code": "IAM.0005"},
                status=self.fail_status,
            )
        user = body["auth"]["identity"]["password"]["user"]
        if user["password"] != self.password:
            return web.json_response(
                {
                    "error": {
                        "code": 401,
                        "message": "The username or password is wrong.",
                        "title": "Unauthorized",
                    }
                },
                status=401,
            )
        token = f"iam-token-{self.logins}-{'z' * 16}"
        payload = {
            "token": {
                "issued_at": self.issued_at.isoformat().replace("+00:00", ".000000Z"),
                "expires_at": (self.issued_at + self.ttl).isoformat().replace("+00:00", ".000000Z"),
            }
        }
        return web.json_response(payload, status=201, headers={"X-Subject-Token": token})


@pytest.fixture
async def iam(anyio_backend: str) -> AsyncIterator[FakeIam]:
    """A FakeIam listening on 127.0.0.1."""
    fake = FakeIam()
    app = web.Application()
    app.router.add_post("/v3/auth/tokens", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.endpoint = f"http://{host}:{port}"
    yield fake
    await runner.cleanup()


@pytest.fixture
async def session(anyio_backend: str) -> AsyncIterator[Transport]:
    """The client's transport, lent to the IAM login."""
    transport = Transport(timeout=10, max_connections=4)
    yield transport
    await transport.aclose()


@pytest.fixture
def logs() -> Iterator[list[Mapping[str, Any]]]:
    """Every structlog event emitted during the test."""
    with capture_logs() as captured:
        yield captured


def make_iam(
    fake: FakeIam,
    session: Transport | None,
    clock: FakeClock,
    *,
    password: str = PASSWORD,
    user: str = "crawler-bot",
    cache_path: Path | None = None,
) -> IamPasswordLogin:
    return IamPasswordLogin(
        user=user,
        password=password,
        domain="acme",
        project="cn-north-4",
        endpoint=fake.endpoint,
        transport=session,
        cache_path=cache_path,
        now=clock,
    )


@pytest.fixture
def auth(iam: FakeIam, session: Transport) -> IamPasswordLogin:
    """``crawler-bot``'s password login against ``iam`` over ``session``, the clock at T0."""
    return make_iam(iam, session, FakeClock(T0))


async def get_headers(auth: Any) -> Mapping[str, str]:
    headers: Mapping[str, str] = await auth.headers("GET", "127.0.0.1:8080", PATH, QUERY, b"")
    return headers


# -- auth_from_env ---------------------------------------------------------


def test_no_credentials_is_one_line_naming_every_variable() -> None:
    """With nothing set, ConfigError is one line naming the token, AK/SK and IAM variables."""
    with pytest.raises(ConfigError) as info:
        auth_from_env({"HOME": "/root", "SWR_AUTH_TOKEN": "  "}, region="cn-north-4")
    message = str(info.value)
    assert "\n" not in message
    for name in ("SWR_AUTH_TOKEN", "CLOUD_SDK_AK", "CLOUD_SDK_SK", "SWR_IAM_USER"):
        assert name in message


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SWR_AUTH_TOKEN": TOKEN, **AKSK_ENV, **IAM_ENV}, StaticToken),
        ({**AKSK_ENV, **IAM_ENV}, AkSkSigner),
        ({"SWR_AUTH_TOKEN": TOKEN, "CLOUD_SDK_AK": AK}, StaticToken),
        (IAM_ENV, IamPasswordLogin),
    ],
    ids=["token-first", "aksk-before-iam", "token-over-half-aksk", "iam-alone"],
)
def test_choice_follows_documented_order(env: dict[str, str], expected: type) -> None:
    """SWR_AUTH_TOKEN wins over AK/SK, which wins over IAM password."""
    auth = auth_from_env(env, region="cn-north-4")
    assert type(auth) is expected
    assert (
        auth.method == {StaticToken: "token", AkSkSigner: "aksk", IamPasswordLogin: "iam"}[expected]
    )


@pytest.mark.parametrize(
    ("env", "missing", "not_missing"),
    [
        ({"CLOUD_SDK_AK": AK, **IAM_ENV}, ["CLOUD_SDK_SK"], ["CLOUD_SDK_AK"]),
        ({"CLOUD_SDK_SK": SK}, ["CLOUD_SDK_AK"], ["CLOUD_SDK_SK"]),
        ({"CLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN}, ["CLOUD_SDK_AK", "CLOUD_SDK_SK"], []),
        (
            {"SWR_IAM_USER": "bot"},
            ["SWR_IAM_PASSWORD", "SWR_IAM_DOMAIN"],
            ["SWR_IAM_USER"],
        ),
        ({"SWR_IAM_PASSWORD": PASSWORD}, ["SWR_IAM_USER", "SWR_IAM_DOMAIN"], []),
    ],
    ids=["ak-no-sk", "sk-no-ak", "security-token-alone", "iam-user-only", "iam-password-only"],
)
def test_half_set_method_names_what_is_missing(
    env: dict[str, str], missing: list[str], not_missing: list[str]
) -> None:
    """A half-set method is a one-line ConfigError naming the missing variables, no secret."""
    with pytest.raises(ConfigError) as info:
        auth_from_env(env, region="cn-north-4")
    message = str(info.value)
    assert "\n" not in message
    for name in missing:
        assert name in message
    for name in not_missing:
        assert name not in message
    assert_no_secret(message, repr(info.value))


def test_iam_project_defaults_to_region_and_needs_one() -> None:
    """SWR_IAM_PROJECT falls back to --region; with neither, ConfigError names it."""
    auth = auth_from_env(IAM_ENV, region="ap-southeast-1")
    assert "'ap-southeast-1'" in repr(auth)
    auth = auth_from_env({**IAM_ENV, "SWR_IAM_PROJECT": "cn-east-3"}, region="ap-southeast-1")
    assert "'cn-east-3'" in repr(auth)
    with pytest.raises(ConfigError, match="SWR_IAM_PROJECT"):
        auth_from_env(IAM_ENV, region=None)


def test_selection_log_names_ignored_methods_without_secrets(
    logs: list[Mapping[str, Any]],
) -> None:
    """The auth.selected event says which method won and which were ignored, no secrets."""
    auth_from_env({"SWR_AUTH_TOKEN": TOKEN, **AKSK_ENV, **IAM_ENV}, region="cn-north-4")
    (event,) = [e for e in logs if e["event"] == "auth.selected"]
    assert event["method"] == "token"
    assert event["ignored"] == ["aksk", "iam"]
    assert_no_secret(logs)


# -- StaticToken and AK/SK -------------------------------------------------


@pytest.mark.anyio
async def test_static_token_headers_are_one_constant_mapping() -> None:
    """StaticToken returns the same prebuilt, read-only mapping for every request."""
    auth = StaticToken(TOKEN)
    first = await auth.headers("GET", "h", "/a", [], b"")
    second = await auth.headers("POST", "other", "/b", [("k", "v")], b"{}")
    assert first is second
    assert dict(first) == {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Auth-Token": TOKEN,
    }
    with pytest.raises(TypeError):
        first["X-Auth-Token"] = "x"  # type: ignore[index]
    assert await auth.refresh(first) is False


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("project_id", "security_token"),
    [(None, None), ("0123456789abcdef", None), ("p1", SECURITY_TOKEN)],
    ids=["plain", "project", "project+security-token"],
)
async def test_aksk_headers_equal_official_sdk_request(
    project_id: str | None, security_token: str | None
) -> None:
    """AkSkSigner sends exactly the headers the official BasicCredentials would send."""
    clock = FakeClock(T0)
    auth = AkSkSigner(AK, SK, project_id=project_id, security_token=security_token, now=clock)
    ours = await auth.headers("GET", "127.0.0.1:8080", PATH, QUERY, b"")

    credentials = BasicCredentials(AK, SK, project_id)
    if security_token:
        credentials = credentials.with_security_token(security_token)
    request = SdkRequest(
        method="GET",
        schema="http",
        host="127.0.0.1:8080",
        resource_path=PATH,
        query_params=list(QUERY),
        header_params={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Sdk-Date": "20240501T120000Z",
        },
        body=b"",
    )
    theirs = credentials.sign_request(request).header_params
    assert dict(ours) == theirs
    assert ours["Host"] == "127.0.0.1:8080"
    assert await auth.refresh(ours) is False


@pytest.mark.anyio
async def test_aksk_dates_each_request_from_the_clock() -> None:
    """Each request gets a fresh X-Sdk-Date (and so a new signature) from the injected clock."""
    clock = FakeClock(T0)
    auth = AkSkSigner(AK, SK, now=clock)
    first = await get_headers(auth)
    clock.advance(timedelta(seconds=61))
    second = await get_headers(auth)
    assert first["X-Sdk-Date"] == "20240501T120000Z"
    assert second["X-Sdk-Date"] == "20240501T120101Z"
    assert first["Authorization"] != second["Authorization"]


# -- IAM password login ----------------------------------------------------


@pytest.mark.anyio
async def test_iam_login_sends_documented_body_and_uses_subject_token(
    iam: FakeIam, session: Transport, auth: IamPasswordLogin
) -> None:
    """The login POSTs the documented JSON body and sends the X-Subject-Token as X-Auth-Token."""
    headers = await get_headers(auth)
    assert headers["X-Auth-Token"] == f"iam-token-1-{'z' * 16}"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == USER_AGENT
    content_type, body = iam.requests[0]
    assert content_type == "application/json;charset=UTF-8"
    assert body == {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "domain": {"name": "acme"},
                        "name": "crawler-bot",
                        "password": PASSWORD,
                    }
                },
            },
            "scope": {"project": {"name": "cn-north-4"}},
        }
    }
    assert await get_headers(auth) is headers
    assert iam.logins == 1
    await auth.aclose()
    assert not session.closed


@pytest.mark.anyio
async def test_iam_refreshes_once_before_expiry_despite_clock_skew(iam: FakeIam) -> None:
    """One renewal for all, in the margin before expiry (IAM lifetime, counted locally)."""
    clock = FakeClock(T0)  # IAM's own clock is 3 h behind: its expires_at is in our past
    auth = make_iam(iam, None, clock)
    first = await get_headers(auth)
    clock.advance(timedelta(minutes=54, seconds=59))  # 1 h lifetime, 5 min margin
    assert await get_headers(auth) is first
    assert iam.logins == 1

    clock.advance(timedelta(seconds=1))
    results: list[Mapping[str, str]] = []

    async def worker() -> None:
        results.append(await get_headers(auth))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(worker)
    assert iam.logins == 2
    assert {h["X-Auth-Token"] for h in results} == {f"iam-token-2-{'z' * 16}"}
    await auth.aclose()


@pytest.mark.anyio
async def test_twenty_workers_with_same_401_share_one_login(
    iam: FakeIam, auth: IamPasswordLogin
) -> None:
    """20 concurrent refresh(stale) calls cause exactly one login, and all return True."""
    stale = dict(await get_headers(auth))
    iam.gate = asyncio.Event()
    outcomes: list[bool] = []

    async def worker() -> None:
        outcomes.append(await auth.refresh(stale))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(worker)
        await anyio.wait_all_tasks_blocked()
        assert iam.started == 2  # the first login and one refresh, the rest wait on the lock
        iam.gate.set()
    assert outcomes == [True] * 20
    assert iam.logins == 2
    fresh = await get_headers(auth)
    assert fresh["X-Auth-Token"] != stale["X-Auth-Token"]


@pytest.mark.anyio
async def test_refresh_for_an_already_replaced_token_makes_no_request(
    iam: FakeIam, auth: IamPasswordLogin
) -> None:
    """A late 401 for an old token returns True without logging in again."""
    stale = dict(await get_headers(auth))
    assert await auth.refresh(stale) is True
    assert iam.logins == 2
    assert await auth.refresh(stale) is True
    assert iam.logins == 2


@pytest.mark.anyio
async def test_wrong_password_fails_fast_naming_the_method(
    iam: FakeIam, session: Transport, logs: list[Mapping[str, Any]]
) -> None:
    """A refused login raises IamLoginFailed (an AuthenticationFailed) once, then never retries."""
    auth = make_iam(iam, session, FakeClock(T0), password=WRONG_PASSWORD)
    with pytest.raises(AuthenticationFailed) as info:
        await get_headers(auth)
    error = info.value
    assert isinstance(error, IamLoginFailed)
    assert error.status == 401
    assert error.error_code == "401"
    message = str(error)
    assert message.startswith("IAM password login failed: HTTP 401")
    assert "username or password is wrong" in message
    assert "crawler-bot" in message
    with pytest.raises(IamLoginFailed):
        await get_headers(auth)
    assert await auth.refresh({"X-Auth-Token": "whatever"}) is False
    assert iam.logins == 1
    assert auth.failure is not None
    assert_no_secret(message, repr(error), repr(auth), logs)


@pytest.mark.anyio
async def test_password_changed_mid_run_makes_refresh_return_false(
    iam: FakeIam, auth: IamPasswordLogin
) -> None:
    """When the 401's re-login is refused, refresh() is False and failure says why."""
    stale = dict(await get_headers(auth))
    iam.password = "rotated"
    assert await auth.refresh(stale) is False
    assert auth.failure is not None
    assert "HTTP 401" in str(auth.failure)
    assert_no_secret(str(auth.failure))


@pytest.mark.anyio
async def test_iam_outage_keeps_the_old_token_until_it_expires(
    iam: FakeIam, session: Transport
) -> None:
    """A 503 on the early renewal keeps the valid token; after expiry it is a transient error."""
    clock = FakeClock(T0)
    auth = make_iam(iam, session, clock)
    first = await get_headers(auth)
    iam.fail_status = 503
    clock.advance(timedelta(minutes=56))
    assert await get_headers(auth) is first
    assert iam.logins == 2
    assert await get_headers(auth) is first  # no new attempt on every request
    assert iam.logins == 2
    clock.advance(timedelta(minutes=5))
    with pytest.raises(IamUnavailable) as info:
        await get_headers(auth)
    assert (info.value.kind, info.value.requests) == (ErrorKind.NETWORK, 0)
    assert "HTTP 503 IAM.0005" in str(info.value)
    assert not isinstance(info.value, AuthenticationFailed)


@pytest.mark.anyio
async def test_iam_outage_during_401_refresh_retries_via_headers(
    iam: FakeIam, auth: IamPasswordLogin
) -> None:
    """A 503 while renewing after a 401 drops the bad token; the retry's headers() re-logs in."""
    stale = dict(await get_headers(auth))
    iam.fail_status = 503
    assert await auth.refresh(stale) is True
    with pytest.raises(IamUnavailable):
        await get_headers(auth)
    iam.fail_status = None
    assert (await get_headers(auth))["X-Auth-Token"] != stale["X-Auth-Token"]


@pytest.mark.anyio
async def test_unreachable_iam_is_transient_and_names_the_method(
    session: Transport,
) -> None:
    """A refused connection to IAM raises IamUnavailable naming the IAM login, no password."""
    fake = FakeIam()
    fake.endpoint = "http://127.0.0.1:9"  # discard port: nothing listens
    auth = make_iam(fake, session, FakeClock(T0))
    with pytest.raises(IamUnavailable) as info:
        await get_headers(auth)
    assert str(info.value).startswith("IAM password login failed:")
    assert_no_secret(str(info.value), repr(info.value))


# -- the token file ----------------------------------------------------------


@dataclass
class TokenFileRuns:
    """Runs of the crawler one after another, sharing one token file and one clock."""

    iam: FakeIam
    session: Transport
    path: Path
    clock: FakeClock = field(default_factory=lambda: FakeClock(T0))

    def login(self, user: str = "crawler-bot") -> IamPasswordLogin:
        """The password login of a new run, with the token file."""
        return make_iam(self.iam, self.session, self.clock, cache_path=self.path, user=user)


@pytest.fixture
def runs(iam: FakeIam, session: Transport, tmp_path: Path) -> TokenFileRuns:
    """Runs whose token file is ``token.json`` in the test's empty folder, the clock at T0."""
    return TokenFileRuns(iam, session, tmp_path / "token.json")


@pytest.mark.anyio
async def test_token_cache_written_0600_atomically_and_reused(
    iam: FakeIam, runs: TokenFileRuns
) -> None:
    """The token file is 0600 with no temp file left, and a later run reuses it without a login."""
    token = (await get_headers(runs.login()))["X-Auth-Token"]
    assert stat.S_IMODE(os.stat(runs.path).st_mode) == 0o600
    assert os.listdir(runs.path.parent) == ["token.json"]
    assert json.loads(runs.path.read_text())["token"] == token

    runs.clock.advance(timedelta(minutes=30))
    assert (await get_headers(runs.login()))["X-Auth-Token"] == token
    assert iam.logins == 1


@pytest.mark.anyio
@pytest.mark.parametrize("case", ["near-expiry", "other-user", "corrupt"])
async def test_token_cache_not_reused_when_unsuitable(runs: TokenFileRuns, case: str) -> None:
    """A cached token near expiry, for another identity, or unreadable, leads to a login."""
    await get_headers(runs.login())
    user = "crawler-bot"
    if case == "near-expiry":
        runs.clock.advance(timedelta(minutes=56))
    elif case == "other-user":
        user = "someone-else"
    else:
        runs.path.write_text("{not json")
    assert (await get_headers(runs.login(user)))["X-Auth-Token"] == f"iam-token-2-{'z' * 16}"
    assert json.loads(runs.path.read_text())["user"] == user
    assert stat.S_IMODE(os.stat(runs.path).st_mode) == 0o600


@pytest.mark.anyio
async def test_401_on_cached_token_logs_in_and_rewrites_cache(
    iam: FakeIam, runs: TokenFileRuns
) -> None:
    """A cached token that gets a 401 is replaced by one login, and the file with it."""
    await get_headers(runs.login())
    auth = runs.login()
    stale = dict(await get_headers(auth))
    assert iam.logins == 1
    assert await auth.refresh(stale) is True
    assert iam.logins == 2
    assert json.loads(runs.path.read_text())["token"] == f"iam-token-2-{'z' * 16}"


# -- no secret anywhere ------------------------------------------------------


@pytest.mark.anyio
async def test_no_secret_in_repr_str_or_logs(
    iam: FakeIam, session: Transport, logs: list[Mapping[str, Any]], tmp_path: Path
) -> None:
    """repr()/str() of every credential (before and after login) and all log events are clean."""
    iam_auth = make_iam(iam, session, FakeClock(T0), cache_path=tmp_path / "t.json")
    objects: list[object] = [
        Secret(PASSWORD),
        StaticToken(TOKEN),
        AkSkSigner(AK, SK, project_id="p", security_token=SECURITY_TOKEN),
        iam_auth,
        auth_from_env({"SWR_AUTH_TOKEN": TOKEN}, region=None),
        auth_from_env({**AKSK_ENV, "CLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN}, region=None),
        auth_from_env(IAM_ENV, region="r"),
    ]
    before = [(repr(o), str(o), f"{o}") for o in objects]
    token = (await get_headers(iam_auth))["X-Auth-Token"]
    after = [(repr(o), str(o)) for o in objects]
    assert_no_secret(before, after, logs)
    assert token not in repr(iam_auth)
    assert token not in str(logs)
    assert repr(Secret(PASSWORD)) == "Secret('***')"


def test_secret_refuses_to_be_pickled() -> None:
    """A Secret cannot be pickled (which would write it out in clear)."""
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(Secret(PASSWORD))
