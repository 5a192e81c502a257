"""End to end over real loopback sockets: every way to authenticate, against the sandbox.

Each crawl runs the real pipeline (``run_crawl``: config -> auth -> client ->
pool -> sink) with an ``environ`` of credential variables; the sandbox checks
tokens, recomputes AK/SK signatures and issues IAM tokens that expire.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from multidict import CIMultiDict

from crawler.http import signer
from crawler.http.credentials import AkSkSigner
from crawler.sandbox import auth as sandbox_auth
from crawler.sandbox import server as sandbox_server
from crawler.sandbox.faults import FaultConfig
from crawler.sandbox.server import RunningSandbox, SandboxConfig, running_sandbox, sandbox_in_thread
from tests.e2e_helpers import (
    Outcome,
    catalogue_keys,
    closed_port,
    crawl,
    crawl_args,
    credential_settings,
    iam_env,
    run_cli,
    sandbox_config,
    write_targets,
)

pytestmark = pytest.mark.anyio

TOKEN = "tok-E2E-static-7f3a9c"
AK = "AKE2EEXAMPLE0000001"
SK = "skE2E/secret+Zq9"
PROJECT_ID = "0123456789abcdef0123456789abcdef"
SECURITY_TOKEN = "stE2E-temporary/credential+X1"
PASSWORD = "PwE2E!secret/42"

TOKEN_ENV = {"SWR_AUTH_TOKEN": TOKEN}
AKSK_ENV = {"CLOUD_SDK_AK": AK, "CLOUD_SDK_SK": SK}


def sandbox(**overrides: Any) -> SandboxConfig:
    """A small catalogue that knows every credential above."""
    return sandbox_config(**{**credential_settings(TOKEN, AK, SK, PASSWORD), **overrides})


def keys_of(sb: RunningSandbox) -> list[str]:
    return catalogue_keys(sb.catalogue)


def assert_all_fetched(outcome: Outcome, keys: list[str]) -> None:
    assert outcome.result.exit_code == 0, outcome.errors.to_pylist()[:3]
    assert outcome.errors.num_rows == 0
    assert set(outcome.rows_by_key(outcome.tags)) == set(keys)
    assert outcome.tags.num_rows == len(keys)


@dataclass
class Verified:
    """One signature the sandbox checked: what it was told was signed, and its verdict."""

    signed: list[str]
    headers: dict[str, str]
    denied: sandbox_auth.Denied | None


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[Verified]:
    """Every AK/SK check the sandbox makes (a spy around its real check_signature)."""
    seen: list[Verified] = []
    real = sandbox_auth.check_signature

    def spy(authorization: str, request: sandbox_auth.SignedRequest, *rest: Any) -> Any:
        denied = real(authorization, request, *rest)
        names = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
        headers = {k.lower(): v for k, v in request.headers.items()}
        seen.append(Verified(names, headers, denied))
        return denied

    monkeypatch.setattr(sandbox_server, "check_signature", spy)
    return seen


# -- each method succeeds ------------------------------------------------------


async def test_static_token_crawls_everything(tmp_path: Path) -> None:
    """SWR_AUTH_TOKEN: every target is fetched and run.json names the method."""
    async with running_sandbox(sandbox()) as sb:
        keys = keys_of(sb)
        outcome = await crawl(sb.url, keys, tmp_path / "out", environ=TOKEN_ENV)
    assert_all_fetched(outcome, keys)
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["auth_method"] == "token"


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"CLOUD_SDK_PROJECT_ID": PROJECT_ID},
        {"CLOUD_SDK_PROJECT_ID": PROJECT_ID, "CLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN},
    ],
    ids=["plain", "project-id", "project-id+security-token"],
)
async def test_aksk_crawls_everything_and_the_sandbox_verifies_what_it_is_given(
    tmp_path: Path, verified: list[Verified], extra: dict[str, str]
) -> None:
    """AK/SK (optionally with project id and security token): every request's signature,
    covering those headers, is recomputed and accepted by the sandbox."""
    async with running_sandbox(sandbox()) as sb:
        keys = keys_of(sb)
        outcome = await crawl(sb.url, keys, tmp_path / "out", environ={**AKSK_ENV, **extra})
        sent = sb.stats.tag_requests
    assert_all_fetched(outcome, keys)
    assert outcome.result.report.auth_method == "aksk"
    assert len(verified) == sent == len(keys)
    expected = {"content-type", "host", "user-agent", "x-sdk-date"}
    if "CLOUD_SDK_PROJECT_ID" in extra:
        expected.add("x-project-id")
    if "CLOUD_SDK_SECURITY_TOKEN" in extra:
        expected.add("x-security-token")
    for check in verified:
        assert check.denied is None
        assert set(check.signed) == expected
        assert check.headers.get("x-project-id") == extra.get("CLOUD_SDK_PROJECT_ID")
        assert check.headers.get("x-security-token") == extra.get("CLOUD_SDK_SECURITY_TOKEN")


@pytest.mark.parametrize("header", ["X-Project-Id", "X-Security-Token", "X-Sdk-Date"])
async def test_sandbox_refuses_our_signature_when_a_signed_header_is_altered(header: str) -> None:
    """Changing any signed header after AkSkSigner signed it makes the sandbox's check fail."""
    auth = AkSkSigner(AK, SK, project_id=PROJECT_ID, security_token=SECURITY_TOKEN)
    path = "/v2/manage/namespaces/ns/repos/group$app/tags/v1"
    headers = dict(await auth.headers("GET", "127.0.0.1:8080", path, (), b""))

    def check(sent: Mapping[str, str]) -> sandbox_auth.Denied | None:
        received = CIMultiDict(sent)  # as aiohttp hands the request's headers over
        request = sandbox_auth.SignedRequest("GET", path, (), received, b"")
        return sandbox_auth.check_signature(sent["Authorization"], request, {AK: SK}, time.time())

    assert check(headers) is None
    altered = dict(headers)
    altered[header] = (
        signer.sdk_date(datetime.now(UTC) - timedelta(seconds=60))
        if header == "X-Sdk-Date"
        else headers[header] + "0"
    )
    assert check(altered) is not None


async def test_iam_password_login_crawls_everything_with_one_login(tmp_path: Path) -> None:
    """SWR_IAM_*: one login at the sandbox's IAM, then every target fetched with its token."""
    async with running_sandbox(sandbox()) as sb:
        keys = keys_of(sb)
        outcome = await crawl(sb.url, keys, tmp_path / "out", environ=iam_env(sb.url, PASSWORD))
        logins = sb.stats.iam_logins
    assert_all_fetched(outcome, keys)
    assert outcome.result.report.auth_method == "iam"
    assert logins == 1


# -- IAM tokens that stop working mid-run --------------------------------------

TTL = 1.0
#: IamPasswordLogin renews a tenth of the lifetime before expiry (for short tokens).
RENEW_EVERY = TTL * 0.9


async def test_iam_token_expiring_mid_run_is_renewed_once_per_expiry(tmp_path: Path) -> None:
    """Tokens live 1 s, the crawl ~3 s: no row is lost, and logins grow with expiries
    (about one per lifetime), not with workers."""
    config = sandbox(token_ttl=TTL, faults=FaultConfig(latency=0.02))
    async with running_sandbox(config) as sb:
        keys = keys_of(sb)
        started = time.monotonic()
        outcome = await crawl(
            sb.url,
            keys,
            tmp_path / "out",
            environ=iam_env(sb.url, PASSWORD),
            rate=25,
            concurrency=8,
        )
        elapsed = time.monotonic() - started
        logins, sent, unauthorized = (
            sb.stats.iam_logins,
            sb.stats.tag_requests,
            sb.stats.per_status[401],
        )
    assert_all_fetched(outcome, keys)
    assert elapsed > 2 * TTL, "the crawl must outlast the token for this test to mean anything"
    # 16 workers: one login per worker per expiry would be far above this bound.
    assert 2 <= logins <= elapsed / RENEW_EVERY + 2, (logins, elapsed)
    assert sum(outcome.tags.column("attempts").to_pylist()) == sent == len(keys) + unauthorized


async def test_iam_token_revoked_mid_run_causes_one_login_for_all_workers(tmp_path: Path) -> None:
    """The sandbox's clock jumps past every issued token mid-run: the 401s of all
    in-flight workers lead to exactly one new login, and every target is still fetched."""
    async with running_sandbox(sandbox(faults=FaultConfig(latency=0.03))) as sb:
        keys = keys_of(sb)
        results: list[Outcome] = []

        async def run() -> None:
            results.append(
                await crawl(
                    sb.url, keys, tmp_path / "out", environ=iam_env(sb.url, PASSWORD), concurrency=8
                )
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            with anyio.fail_after(10):
                while sb.stats.tag_requests < 20:
                    await anyio.sleep(0.002)
            skew = 2 * sb.config.token_ttl
            sb.server.auth.clock = lambda: time.time() + skew
        (outcome,) = results
        logins, sent, unauthorized = (
            sb.stats.iam_logins,
            sb.stats.tag_requests,
            sb.stats.per_status[401],
        )
    assert_all_fetched(outcome, keys)
    assert unauthorized >= 1
    assert logins == 2
    assert sum(outcome.tags.column("attempts").to_pylist()) == sent == len(keys) + unauthorized


# -- bad credentials stop the run fast ------------------------------------------


async def test_wrong_sk_stops_the_run_within_the_in_flight_window(tmp_path: Path) -> None:
    """A wrong SK: 401 APIG.0301, stop_reason unauthorized, exit 1, at most `concurrency` sent."""
    env = {**AKSK_ENV, "CLOUD_SDK_SK": "not-the-secret-key"}
    async with running_sandbox(sandbox(faults=FaultConfig(latency=0.01))) as sb:
        keys = keys_of(sb)
        outcome = await crawl(sb.url, keys, tmp_path / "out", environ=env, concurrency=4)
        sent = sb.stats.tag_requests
    report = outcome.result.report
    assert (outcome.result.exit_code, report.stop_reason, report.auth_method) == (
        1,
        "unauthorized",
        "aksk",
    )
    assert 1 <= sent <= 4
    assert outcome.tags.num_rows == 0
    errors = outcome.errors.to_pylist()
    assert 1 <= len(errors) <= 4
    assert {(r["error_kind"], r["http_status"], r["error_code"]) for r in errors} == {
        ("unauthorized", 401, "APIG.0301")
    }
    assert json.loads((tmp_path / "out" / "run.json").read_text())["complete"] is False


async def test_wrong_iam_password_stops_the_run_before_any_swr_request(tmp_path: Path) -> None:
    """IAM refuses the password: one login attempt for all workers, no SWR request, exit 1,
    and the error rows say the IAM login failed."""
    async with running_sandbox(sandbox(faults=FaultConfig(latency=0.01))) as sb:
        keys = keys_of(sb)
        outcome = await crawl(
            sb.url,
            keys,
            tmp_path / "out",
            environ=iam_env(sb.url, "Wrong-password!"),
            concurrency=4,
        )
        logins, sent = sb.stats.iam_logins, sb.stats.tag_requests
    report = outcome.result.report
    assert (outcome.result.exit_code, report.stop_reason, report.auth_method) == (
        1,
        "unauthorized",
        "iam",
    )
    assert (logins, sent, report.stats.requests) == (1, 0, 0)
    assert outcome.tags.num_rows == 0
    errors = outcome.errors.to_pylist()
    assert 1 <= len(errors) <= 4
    for row in errors:
        assert (row["error_kind"], row["attempts"]) == ("unauthorized", 0)
        assert "IAM password login failed: HTTP 401" in row["error_msg"]


async def test_unreachable_iam_is_a_transient_network_error_with_no_request_counted(
    tmp_path: Path,
) -> None:
    """IAM refuses connections: targets end as `network` after their tries, with 0 attempts
    and 0 requests (no SWR request was sent), and the run exits 1."""
    env = iam_env(f"http://127.0.0.1:{closed_port()}", PASSWORD)
    async with running_sandbox(sandbox()) as sb:
        keys = keys_of(sb)[:6]
        outcome = await crawl(sb.url, keys, tmp_path / "out", environ=env, max_attempts=2)
        sent = sb.stats.tag_requests
    assert outcome.result.exit_code == 1
    assert outcome.result.report.stop_reason is None
    assert sent == 0 == outcome.result.report.stats.requests
    errors = outcome.rows_by_key(outcome.errors)
    assert set(errors) == set(keys)
    for row in errors.values():
        assert (row["error_kind"], row["attempts"], row["http_status"]) == ("network", 0, None)
        assert "IAM password login failed" in row["error_msg"]


# -- the CLI as a real process ----------------------------------------------------


@pytest.fixture(scope="module")
def threaded_sandbox() -> Iterator[RunningSandbox]:
    """One sandbox in a thread for the CLI processes of this module."""
    with sandbox_in_thread(sandbox(faults=FaultConfig(latency=0.01))) as running:
        yield running


def cli_args(sb: RunningSandbox, tmp_path: Path) -> list[str]:
    targets = tmp_path / "targets.txt"
    write_targets(sb.catalogue, targets)
    return crawl_args(
        targets, tmp_path / "out", sb.url, "--log-format", "json", "--concurrency", "4"
    )


@pytest.mark.slow
def test_cli_without_credentials_exits_2_naming_the_variables(
    tmp_path: Path, threaded_sandbox: RunningSandbox
) -> None:
    """No credential variable: exit 2, one error line naming every method's variables,
    no traceback, no request sent."""
    before = threaded_sandbox.stats.total_requests
    proc = run_cli(cli_args(threaded_sandbox, tmp_path), {}, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for name in (
        "SWR_AUTH_TOKEN",
        "CLOUD_SDK_AK",
        "CLOUD_SDK_SK",
        "SWR_IAM_USER",
        "SWR_IAM_PASSWORD",
    ):
        assert name in lines[0]
    assert threaded_sandbox.stats.total_requests == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "env"),
    [
        ("aksk", {**AKSK_ENV, "CLOUD_SDK_SK": "not-the-secret-key"}),
        ("iam", {"SWR_IAM_PASSWORD": "Wrong-password!"}),
    ],
    ids=["wrong-sk", "wrong-password"],
)
def test_cli_bad_credential_exits_1_naming_the_method(
    tmp_path: Path, threaded_sandbox: RunningSandbox, method: str, env: dict[str, str]
) -> None:
    """A refused credential: exit 1, a stderr line naming the method that failed, no traceback."""
    if method == "iam":
        env = {**iam_env(threaded_sandbox.url, PASSWORD), **env}
    proc = run_cli(cli_args(threaded_sandbox, tmp_path), env, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    messages = [line for line in proc.stderr.splitlines() if "authentication failed" in line]
    assert len(messages) == 1, proc.stderr
    assert f"({method})" in messages[0]
    if method == "iam":
        assert "IAM refused the password login" in messages[0]
    else:
        assert "CLOUD_SDK_SK" in messages[0]
