"""End to end against a hostile server (tests/hostile.py) over real loopback sockets:
secrets echoed back never reach a row, a log event or run.json; oversized answers are
error rows; odd statuses are classified; TLS failures stop the run; proxies are used."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import anyio
import pytest
from structlog.testing import capture_logs

from crawler.errors import ErrorKind, TransportError
from crawler.http.transport import Transport
from tests.e2e_helpers import Outcome, crawl, iam_env
from tests.hostile import TAG_BODY, Hostile, running_hostile

pytestmark = pytest.mark.anyio

#: A static token with characters that JSON, repr and URLs all escape.
TOKEN = 'tok"LEAK\\q/+7=='
#: A password with é, " and \ (the issue's example).
PASSWORD = 'PWs\u00e9cret"77\\x'


def spellings(secret: str) -> set[str]:
    """The secret as a careless server or logger would write it (independent of the scrubber)."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret),
    }


def assert_absent(secrets: Iterable[str], where: str, texts: Iterable[object]) -> None:
    needles = {form for secret in secrets for form in spellings(secret)}
    for text in texts:
        found = sorted(n for n in needles if n in str(text))
        assert not found, f"{found} leaked into {where}: {str(text)[:300]!r}"


def texts_of(value: object) -> list[str]:
    """Every string inside a value (a row, a log event), as it is: repr() would double
    the backslashes and hide a leak from the search."""
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in texts_of(item)]
    if isinstance(value, list | tuple | set):
        return [text for item in value for text in texts_of(item)]
    return [value if isinstance(value, str) else str(value)]


def artefacts(outcome: Outcome, out: Path, events: list[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Every text a run leaves: error rows, tag rows, log events, run.json."""
    return {
        "errors": texts_of(outcome.errors.to_pylist()),
        "tags": texts_of(outcome.tags.to_pylist()),
        "logs": texts_of(events),
        "run.json": [path.read_text() for path in out.glob("run*.json")],
    }


async def crawl_logged(
    url: str, lines: list[str], out: Path, **settings: Any
) -> tuple[Outcome, list[Mapping[str, Any]]]:
    with capture_logs() as events:
        outcome = await crawl(url, lines, out, **settings)
    return outcome, events


ECHOES = ["echo-json", "echo-escaped", "echo-html", "echo-repr", "echo-long", "redirect"]


async def test_a_token_echoed_in_any_form_reaches_no_output(tmp_path: Path) -> None:
    """Error bodies (JSON, \\u-escaped, HTML, repr, past the cut) and a Location quoting the
    token: rows, logs and run.json hold none of its spellings, yet the messages remain."""
    async with running_hostile() as server:
        out = tmp_path / "out"
        outcome, events = await crawl_logged(
            server.url,
            [f"ns/repo:{tag}" for tag in ECHOES],
            out,
            environ={"SWR_AUTH_TOKEN": TOKEN},
            max_attempts=1,
        )
    rows = outcome.rows_by_key(outcome.errors)
    assert len(rows) == len(ECHOES)
    for where, texts in artefacts(outcome, out, events).items():
        assert_absent([TOKEN], where, texts)
    assert rows["ns/repo:echo-json"]["error_msg"] == "bad token *** here"
    assert rows["ns/repo:echo-html"]["error_msg"].startswith("<html><body><h1>502</h1>")
    assert "redirect to http://elsewhere.example/***" in rows["ns/repo:redirect"]["error_msg"]
    assert any(e["event"] == "crawl.target_failed" for e in events)


async def test_a_401_echoing_the_token_stops_the_run_and_leaks_nothing(tmp_path: Path) -> None:
    """The refused token quoted back by the 401 is in neither the row, the logs nor run.json."""
    async with running_hostile() as server:
        out = tmp_path / "out"
        outcome, events = await crawl_logged(
            server.url, ["ns/repo:echo-401"], out, environ={"SWR_AUTH_TOKEN": TOKEN}
        )
    assert outcome.result.report.stop_reason == "unauthorized"
    assert outcome.errors.column("error_msg").to_pylist() == ["Incorrect token ***"]
    for where, texts in artefacts(outcome, out, events).items():
        assert_absent([TOKEN], where, texts)


async def test_iam_issued_tokens_and_the_password_are_scrubbed(tmp_path: Path) -> None:
    """A token IAM issued, echoed by SWR, is scrubbed like a static one; so is the password."""
    async with running_hostile() as server:
        out = tmp_path / "out"
        outcome, events = await crawl_logged(
            server.url,
            ["ns/repo:echo-json", "ns/repo:echo-html", "ns/repo:echo-repr"],
            out,
            environ=iam_env(server.url, PASSWORD),
            max_attempts=1,
        )
        issued = list(server.issued)
    assert issued, "the crawler logged in"
    assert outcome.errors.num_rows == 3
    for where, texts in artefacts(outcome, out, events).items():
        assert_absent([*issued, PASSWORD], where, texts)


async def test_a_refused_login_quoting_the_password_leaks_it_nowhere(tmp_path: Path) -> None:
    """IAM's 401 quotes the password (é, " and \\ in it) raw, repr'd and JSON-escaped."""
    async with running_hostile(Hostile(refuse_login=True)) as server:
        out = tmp_path / "out"
        outcome, events = await crawl_logged(
            server.url, ["ns/repo:ok"], out, environ=iam_env(server.url, PASSWORD)
        )
    assert outcome.result.report.stop_reason == "unauthorized"
    (message,) = outcome.errors.column("error_msg").to_pylist()
    assert message.startswith("IAM password login failed: HTTP 401")
    for where, texts in artefacts(outcome, out, events).items():
        assert_absent([PASSWORD], where, texts)


async def test_odd_statuses_are_classified(tmp_path: Path) -> None:
    """3xx and 2xx other than 200 are unexpected_status, tried once; a 408 is a retried timeout."""
    async with running_hostile() as server:
        outcome = await crawl(
            server.url,
            ["ns/repo:redirect", "ns/repo:created", "ns/repo:empty", "ns/repo:timeout408"],
            tmp_path / "out",
            max_attempts=3,
        )
    rows = outcome.rows_by_key(outcome.errors)
    kinds = {
        key: (row["error_kind"], row["http_status"], row["attempts"]) for key, row in rows.items()
    }
    assert kinds == {
        "ns/repo:redirect": ("unexpected_status", 302, 1),
        "ns/repo:created": ("unexpected_status", 201, 1),
        "ns/repo:empty": ("unexpected_status", 204, 1),
        "ns/repo:timeout408": ("timeout", 408, 3),
    }
    assert "instead of 200" in rows["ns/repo:empty"]["error_msg"]
    assert outcome.result.exit_code == 1


async def test_oversized_answers_are_error_rows(tmp_path: Path) -> None:
    """Announced, streamed endlessly, or a gzip bomb: each is a too_large row, tried once;
    the rest is crawled."""
    async with running_hostile() as server:
        outcome = await crawl(
            server.url,
            ["ns/repo:huge", "ns/repo:endless", "ns/repo:bomb", "ns/repo:ok"],
            tmp_path / "out",
            max_body_bytes=1 << 20,
            max_attempts=2,
        )
    rows = outcome.rows_by_key(outcome.errors)
    for tag in ("huge", "endless", "bomb"):
        row = rows[f"ns/repo:{tag}"]
        assert (row["error_kind"], row["attempts"]) == ("too_large", 1), tag
        assert "--max-body-bytes (1048576" in row["error_msg"]
    assert outcome.tags.num_rows == 1


@pytest.mark.parametrize("cap", [len(TAG_BODY) - 1, len(TAG_BODY)])
async def test_an_unannounced_answer_that_came_whole_is_held_to_the_cap(cap: int) -> None:
    """A chunked answer read at once (no Content-Length to refuse it by) is too_large one
    byte over the cap, and whole at the cap."""
    async with (
        running_hostile() as server,
        Transport(timeout=5, max_connections=1, max_body_bytes=cap) as transport,
    ):
        url = f"{server.url}/v2/manage/namespaces/ns/repos/repo/tags/chunked"
        if cap < len(TAG_BODY):
            with pytest.raises(TransportError) as raised:
                await transport.request("GET", url, headers={})
            assert raised.value.kind is ErrorKind.TOO_LARGE
        else:
            answer = await transport.request("GET", url, headers={})
            assert (answer.status, answer.body) == (200, TAG_BODY.encode())


async def test_a_huge_error_message_is_cut(tmp_path: Path) -> None:
    """A 5 MB error_msg (under the body cap) is kept to its first 1000 characters."""
    async with running_hostile() as server:
        outcome = await crawl(server.url, ["ns/repo:big-msg"], tmp_path / "out")
    assert outcome.errors.column("error_msg").to_pylist() == ["m" * 1000]


async def test_the_iam_login_honours_the_timeout(tmp_path: Path) -> None:
    """A login that gets no answer gives up after --timeout, with a readable message."""
    async with running_hostile(Hostile(stall_login=True, stall_seconds=60)) as server:
        started = anyio.current_time()
        outcome = await crawl(
            server.url,
            ["ns/repo:ok"],
            tmp_path / "out",
            environ=iam_env(server.url, PASSWORD),
            timeout=0.5,
            max_attempts=2,
        )
        elapsed = anyio.current_time() - started
    (row,) = outcome.errors.to_pylist()
    assert row["error_kind"] == "network"
    assert "IAM password login failed: no answer within the timeout of 0.5 s" in row["error_msg"]
    assert elapsed < 10  # two logins of 0.5 s, not 2 x 30 s


def self_signed_certificate(tmp_path: Path) -> tuple[Path, Path]:
    """``cert.pem`` (for 127.0.0.1, self-signed) and its ``key.pem``, written in ``tmp_path``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def self_signed_context(tmp_path: Path) -> ssl.SSLContext:
    """A server's TLS context with :func:`self_signed_certificate`'s certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*self_signed_certificate(tmp_path))
    return context


@asynccontextmanager
async def tls_server(tmp_path: Path) -> AsyncIterator[str]:
    """The hostile server over TLS on 127.0.0.1, its certificate self-signed (so it does not
    verify unless ``tmp_path / "cert.pem"`` is trusted); yields its ``https://`` URL."""
    async with running_hostile(tls=self_signed_context(tmp_path)) as server:
        yield server.url


async def test_a_certificate_that_does_not_verify_stops_the_run(tmp_path: Path) -> None:
    """Not retried five times per target: the first failures stop the run, kind tls, exit 1."""
    async with tls_server(tmp_path) as url:
        outcome = await crawl(
            url, [f"ns/repo:t{i}" for i in range(50)], tmp_path / "out", concurrency=2
        )
    report = outcome.result.report
    assert (report.stop_reason, outcome.result.exit_code) == ("tls", 1)
    kinds = set(outcome.errors.column("error_kind").to_pylist())
    assert kinds == {"tls"}
    assert outcome.errors.num_rows <= 4  # the requests in flight when the first failed
    assert set(outcome.errors.column("attempts").to_pylist()) == {1}
    assert "certificate verify failed" in outcome.errors.column("error_msg")[0].as_py()


async def test_a_certificate_trusted_through_ssl_cert_file_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transport's own TLS context trusts what SSL_CERT_FILE names: an https crawl of the
    self-signed server then succeeds, certificate and host name verified."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    async with tls_server(tmp_path) as url:
        outcome = await crawl(url, ["ns/repo:ok"], tmp_path / "out")
    assert outcome.result.exit_code == 0
    assert outcome.tags.num_rows == 1


@pytest.mark.usefixtures("no_proxy_env")
@pytest.mark.parametrize("proxy_tls", [False, True], ids=["http-proxy", "https-proxy"])
async def test_http_proxy_from_the_environment_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, proxy_tls: bool
) -> None:
    """HTTP_PROXY carries every request, to an endpoint that does not even resolve; an
    https:// proxy is verified with the trust of SSL_CERT_FILE, as an https endpoint is,
    although the endpoint itself is plain http."""
    tls = request.getfixturevalue("trusted_tls") if proxy_tls else None
    async with running_hostile(tls=tls) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        outcome = await crawl("http://swr-api.proxied.invalid", ["ns/repo:ok"], tmp_path / "out")
    assert outcome.errors.num_rows == 0, outcome.errors.column("error_msg").to_pylist()
    assert outcome.tags.num_rows == 1
    assert proxy.seen_paths == ["/v2/manage/namespaces/ns/repos/repo/tags/ok"]


async def test_no_proxy_bypasses_the_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host named in NO_PROXY is reached directly, not through HTTP_PROXY."""
    for name in ("no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with running_hostile() as server, running_hostile() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        outcome = await crawl(server.url, ["ns/repo:ok"], tmp_path / "out")
    assert outcome.tags.num_rows == 1
    assert (len(server.seen_paths), proxy.seen_paths) == (1, [])


@pytest.mark.parametrize(
    ("lines", "settings"),
    [(None, {"discover": True}), (["ns/repo:t1", "ns/repo:t2"], {"mode": "auto"})],
    ids=["discover", "planned"],
)
async def test_a_certificate_that_does_not_verify_stops_a_listing_run(
    tmp_path: Path, lines: list[str] | None, settings: dict[str, Any]
) -> None:
    """A listing (--discover, or a planned crawl's) that fails on TLS stops the run as a
    tag request does: stop reason tls, exit 1, not a listing error and a run carried on."""
    async with tls_server(tmp_path) as url:
        with capture_logs() as logs:
            outcome = await crawl(url, lines, tmp_path / "out", concurrency=2, **settings)
    report = outcome.result.report
    assert (report.stop_reason, outcome.result.exit_code) == ("tls", 1)
    assert report.complete is False
    stopped = [e for e in logs if e["event"] in ("discover.stopped", "plan.stopped")]
    assert [e["kind"] for e in stopped] == ["tls"]
