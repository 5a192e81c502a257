"""No secret leaks: tokens, SKs, security tokens and passwords never appear in what a run
leaves behind (structlog events, real stderr/stdout, run.json, Parquet metadata and
values) or in the text and tracebacks of the exceptions it raises.

Every secret is a distinctive string with characters that URL-encoding changes, and
each artefact is searched for the raw string and its URL-encoded forms.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pyarrow.parquet as pq
import pytest
from structlog.testing import capture_logs

from crawler.errors import AuthenticationFailed, ConfigError, TransportError
from crawler.http.client import SwrClient
from crawler.http.credentials import auth_from_env
from crawler.http.endpoint import parse_endpoint
from crawler.http.iam import IamPasswordLogin
from crawler.http.transport import Transport
from crawler.sandbox.faults import FaultConfig
from crawler.sandbox.server import RunningSandbox, SandboxConfig, running_sandbox, sandbox_in_thread
from tests.e2e_helpers import (
    IAM_DOMAIN,
    IAM_USER,
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

TOKEN = "tokLEAK/static+A1b2"
WRONG_TOKEN = "tokLEAK/wrong+C3d4"
AK = "AKLEAKEXAMPLE000001"
SK = "skLEAK/secret+Zq9!"
WRONG_SK = "skLEAK/wrong+Yy8!"
SECURITY_TOKEN = "stLEAK/temporary+X1"
PASSWORD = "pwLEAK!secret/42 &x"
WRONG_PASSWORD = "pwLEAK!wrong/43 &y"
FIXED_SECRETS = (TOKEN, WRONG_TOKEN, SK, WRONG_SK, SECURITY_TOKEN, PASSWORD, WRONG_PASSWORD)

CATALOGUE = {"seed": 5, "namespaces": 2, "repos_per_namespace": 3, "tags_per_repo": 4}


def forms(secret: str) -> set[str]:
    """The secret as is and URL-encoded (path/query style and form style)."""
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}


class Secrets:
    """The fixed secrets plus every token the sandbox's IAM issued."""

    def __init__(self) -> None:
        self.issued: list[str] = []

    def all(self) -> list[str]:
        return [*FIXED_SECRETS, *self.issued]

    def assert_absent(self, where: str, texts: Iterable[object]) -> None:
        needles = {form for secret in self.all() for form in forms(secret)}
        for text in texts:
            found = sorted(n for n in needles if n in str(text))
            assert not found, f"secret {found} leaked into {where}: {str(text)[:300]!r}"


def record_issued_tokens(sb: RunningSandbox, secrets: Secrets) -> None:
    """Wrap the sandbox's IAM login to remember the tokens it hands out."""
    authenticator = sb.server.auth
    login = authenticator.login

    def spy(body: Any) -> Any:
        result = login(body)
        if result is not None:
            secrets.issued.append(result[0])
        return result

    authenticator.login = spy  # type: ignore[method-assign]


def sandbox(**overrides: Any) -> SandboxConfig:
    """24 targets; a sandbox that knows the good credentials above."""
    settings = {**CATALOGUE, **credential_settings(TOKEN, AK, SK, PASSWORD), **overrides}
    return sandbox_config(**settings)


def output_texts(out: Path) -> Iterator[tuple[str, object]]:
    """run.json, and every Parquet file's key-value metadata and values, as text."""
    yield "run.json", (out / "run.json").read_text()
    for path in sorted(out.glob("*/*.parquet")):
        yield f"{path.name} metadata", pq.read_metadata(path).metadata
        yield f"{path.name} schema", pq.read_schema(path).to_string(show_schema_metadata=True)
        yield f"{path.name} values", pq.read_table(path).to_pylist()


# -- in-process crawls: structlog events and output files -------------------------


def scenario_env(name: str, url: str) -> dict[str, str]:
    return {
        "token ok": {"SWR_AUTH_TOKEN": TOKEN},
        "token wrong (401)": {"SWR_AUTH_TOKEN": WRONG_TOKEN},
        "aksk ok": {
            "CLOUD_SDK_AK": AK,
            "CLOUD_SDK_SK": SK,
            "CLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN,
            "CLOUD_SDK_PROJECT_ID": "0123456789abcdef",
        },
        "aksk wrong sk (401)": {
            "CLOUD_SDK_AK": AK,
            "CLOUD_SDK_SK": WRONG_SK,
            "CLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN,
        },
        "iam ok, tokens expiring": iam_env(url, PASSWORD),
        "iam wrong password": iam_env(url, WRONG_PASSWORD),
        "iam unreachable (retries)": iam_env(f"http://127.0.0.1:{closed_port()}", PASSWORD),
    }[name]


SCENARIOS = [
    "token ok",
    "token wrong (401)",
    "aksk ok",
    "aksk wrong sk (401)",
    "iam ok, tokens expiring",
    "iam wrong password",
    "iam unreachable (retries)",
]


@pytest.mark.parametrize("name", SCENARIOS)
async def test_no_secret_in_log_events_run_json_or_parquet(tmp_path: Path, name: str) -> None:
    """Across successes, 401 stops, IAM refusal, IAM outage and retried 5xx/resets, no
    captured structlog event, run.json, Parquet metadata or column value holds a secret."""
    secrets = Secrets()
    probe = sandbox()
    async with running_sandbox(probe) as sb:
        first = catalogue_keys(sb.catalogue)[0]
    faults = FaultConfig(latency=0.01, scripts={first: ["500", "reset", "truncated"]})
    config = sandbox(token_ttl=0.3, faults=faults)
    async with running_sandbox(config) as sb:
        record_issued_tokens(sb, secrets)
        keys = catalogue_keys(sb.catalogue)
        env = scenario_env(name, sb.url)
        settings: dict[str, Any] = {"concurrency": 4, "max_attempts": 4}
        if name.startswith("iam ok"):
            settings["rate"] = 25  # ~1 s: the 0.3 s tokens are renewed a few times
        with capture_logs() as events:
            outcome = await crawl(sb.url, keys, tmp_path / "out", environ=env, **settings)
    if name.startswith("iam ok"):
        assert len(secrets.issued) >= 2, "the run should have renewed its IAM token"
    succeeds = " ok" in name
    if succeeds:
        assert outcome.tags.num_rows == len(keys)
    else:
        assert outcome.result.exit_code == 1
    assert events, "nothing was logged, so nothing was checked"
    if succeeds or "unreachable" in name:
        assert any(e["event"] == "crawl.retry_scheduled" for e in events)
    secrets.assert_absent("structlog events", events)
    for where, text in output_texts(tmp_path / "out"):
        secrets.assert_absent(where, [text])
    secrets.assert_absent(
        "run report", [outcome.result.report, *outcome.result.report.summary_lines()]
    )


# -- exceptions ---------------------------------------------------------------------


def exception_texts(exc: BaseException) -> list[str]:
    """str, repr, args and the full formatted traceback (causes and context included)."""
    return [
        str(exc),
        repr(exc),
        repr(exc.args),
        "".join(traceback.format_exception(exc)),
        "".join(traceback.format_exception(exc, chain=True)),
    ]


async def test_no_secret_in_iam_failures_or_their_tracebacks() -> None:
    """Wrong password, IAM unreachable, and the client's TransportError for an IAM outage:
    neither the message nor the traceback holds the password."""
    secrets = Secrets()
    caught: list[BaseException] = []
    transport = Transport(timeout=5, max_connections=2)
    async with running_sandbox(sandbox()) as sb:
        record_issued_tokens(sb, secrets)
        for endpoint, password in (
            (sb.url, WRONG_PASSWORD),
            (f"http://127.0.0.1:{closed_port()}", PASSWORD),
        ):
            login = IamPasswordLogin(
                user=IAM_USER,
                password=password,
                domain=IAM_DOMAIN,
                project="cn-north-4",
                endpoint=endpoint,
                transport=transport,
            )
            with pytest.raises(Exception) as info:  # noqa: PT011 - either kind is checked below
                await login.headers("GET", "h", "/", (), b"")
            caught.append(info.value)
            with pytest.raises(Exception) as again:  # noqa: PT011 - the sticky/repeated failure
                await login.headers("GET", "h", "/", (), b"")
            caught.append(again.value)
            client = SwrClient(parse_endpoint(sb.url), login, transport)
            try:
                await client.fetch_tag("/v2/manage/namespaces/a/repos/b/tags/c")
            except (TransportError, AuthenticationFailed) as failure:
                caught.append(failure)
            caught.append(Exception(repr(login)))
    await transport.aclose()
    kinds = [type(error).__name__ for error in caught]
    assert kinds.count("IamLoginFailed") >= 2
    assert "IamUnavailable" in kinds
    assert "TransportError" in kinds
    for error in caught:
        secrets.assert_absent(type(error).__name__, exception_texts(error))


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        (
            {"SWR_IAM_ENDPOINT": f"https://{IAM_USER}:{quote(PASSWORD, safe='')}@iam.example.com"},
            "user",
        ),
        ({"SWR_IAM_ENDPOINT": "iam.example.com"}, "http:// or https://"),
        ({"SWR_IAM_ENDPOINT": "ftp://iam.example.com"}, "http:// or https://"),
        ({"SWR_IAM_USER": ""}, "SWR_IAM_USER"),
        ({"CLOUD_SDK_SK": SK}, "CLOUD_SDK_AK"),
        ({"CLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN}, "CLOUD_SDK_AK and CLOUD_SDK_SK"),
    ],
)
def test_bad_credential_configuration_is_a_config_error_without_secrets(
    env: dict[str, str], fragment: str
) -> None:
    """A malformed IAM endpoint (even one carrying the password) or a half-set method is a
    one-line ConfigError naming the variable, never echoing a secret."""
    base = {"SWR_IAM_USER": IAM_USER, "SWR_IAM_PASSWORD": PASSWORD, "SWR_IAM_DOMAIN": IAM_DOMAIN}
    if "CLOUD_SDK_SK" in env or "CLOUD_SDK_SECURITY_TOKEN" in env:
        base = {}
    with capture_logs() as events, pytest.raises(ConfigError) as info:
        auth_from_env({**base, **env}, region="cn-north-4")
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    Secrets().assert_absent("ConfigError", [*exception_texts(info.value), events])


# -- the CLI as a real process: its real stderr and stdout ---------------------------


@pytest.fixture(scope="module")
def threaded() -> Iterator[tuple[RunningSandbox, Secrets]]:
    """A sandbox in a thread whose IAM tokens live 0.4 s, and the secrets it issues."""
    secrets = Secrets()
    config = sandbox(token_ttl=0.4, faults=FaultConfig(latency=0.01))
    with sandbox_in_thread(config) as running:
        record_issued_tokens(running, secrets)
        yield running, secrets


CLI_CASES: list[tuple[str, str, Callable[[str], Mapping[str, str]], int]] = [
    ("iam ok, tokens expiring", "json", lambda url: iam_env(url, PASSWORD), 0),
    ("iam wrong password", "console", lambda url: iam_env(url, WRONG_PASSWORD), 1),
    (
        "aksk wrong sk",
        "json",
        lambda url: {
            "CLOUD_SDK_AK": AK,
            "CLOUD_SDK_SK": WRONG_SK,
            "CLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN,
        },
        1,
    ),
    (
        "token ok and ignored others",
        "console",
        lambda url: {"SWR_AUTH_TOKEN": TOKEN, **iam_env(url, PASSWORD)},
        0,
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "log_format", "make_env", "exit_code"),
    [pytest.param(*case, id=f"{case[0]}-{case[1]}") for case in CLI_CASES],
)
def test_no_secret_on_the_real_stderr_and_stdout_of_the_cli(
    tmp_path: Path,
    threaded: tuple[RunningSandbox, Secrets],
    name: str,
    log_format: str,
    make_env: Callable[[str], Mapping[str, str]],
    exit_code: int,
) -> None:
    """`swr-crawler crawl` as a process, JSON and console logs, success and refusal: its
    stderr, stdout, run.json and Parquet files hold no secret."""
    sb, secrets = threaded
    targets = tmp_path / "targets.txt"
    write_targets(sb.catalogue, targets)
    out = tmp_path / "out"
    # 24 targets at --rate 30 take ~0.8 s: the 0.4 s IAM tokens are renewed mid-run
    args = crawl_args(targets, out, sb.url, "--log-format", log_format, "--concurrency", "4")
    proc = run_cli([*args, "--rate", "30"], make_env(sb.url), tmp_path)
    assert proc.returncode == exit_code, proc.stderr[-2000:]
    assert "auth.selected" in proc.stderr, "the logs were not on stderr, so nothing was checked"
    assert "Traceback" not in proc.stderr
    if name.startswith("iam ok"):
        assert len(secrets.issued) >= 2
    secrets.assert_absent("stderr", [proc.stderr])
    secrets.assert_absent("stdout", [proc.stdout])
    for where, text in output_texts(out):
        secrets.assert_absent(where, [text])
