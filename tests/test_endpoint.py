"""Endpoint, region and IAM endpoint checks: a bad address is exit 2 with one line, before
any request, never a traceback nor a run of failed requests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from structlog.testing import capture_logs

from crawler.cli import cli
from crawler.errors import ConfigError
from crawler.http.credentials import auth_from_env
from crawler.http.endpoint import check_region, is_loopback, parse_endpoint


@pytest.mark.parametrize(
    ("text", "url", "host"),
    [
        (
            "https://swr-api.cn-north-4.myhuaweicloud.com",
            "https://swr-api.cn-north-4.myhuaweicloud.com",
            "swr-api.cn-north-4.myhuaweicloud.com",
        ),
        (
            "https://swr-api.cn-north-4.myhuaweicloud.com/",
            "https://swr-api.cn-north-4.myhuaweicloud.com",
            "swr-api.cn-north-4.myhuaweicloud.com",
        ),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080", "127.0.0.1:8080"),
        ("HTTP://Example.COM:80/", "http://example.com:80", "example.com"),
        ("https://[::1]:8443", "https://[::1]:8443", "[::1]:8443"),
        ("https://[::1]", "https://[::1]", "[::1]"),
    ],
)
def test_good_endpoints_give_the_url_and_the_host_header(text: str, url: str, host: str) -> None:
    """A valid endpoint gives the URL paths are appended to and the Host header that is signed."""
    endpoint = parse_endpoint(text)
    assert (endpoint.url, endpoint.host) == (url, host)


BAD_ENDPOINTS = [
    ("http://user:hunter2pw@example.com/", "user name or password"),
    ("http://127.0.0.1:99999", "not a valid URL"),
    ("http://127.0.0.1:0", "port must be 1-65535"),
    ("http://[::1", "not a valid URL"),
    ("http://", "no host"),
    ("http:///v2", "no host"),
    ("ftp://example.com", "http:// or https://"),
    ("example.com", "http:// or https://"),
    ("http://example.com/?q=1", "query"),
    ("http://example.com#f", "fragment"),
    ("http://example.com/prefix", "path prefix is not supported"),
    ("http://exa mple.com", "not a DNS name"),
    ("http://[not-ipv6]", "not a valid URL"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_ENDPOINTS)
def test_bad_endpoints_are_config_errors(text: str, fragment: str) -> None:
    """Each unusable endpoint is one ConfigError that says why."""
    with pytest.raises(ConfigError) as info:
        parse_endpoint(text)
    assert fragment in str(info.value)


def test_a_password_in_the_endpoint_is_never_repeated() -> None:
    """The message about user info does not echo the URL that holds the password."""
    with pytest.raises(ConfigError) as info:
        parse_endpoint("http://user:hunter2pw@[::1")
    assert "hunter2pw" not in str(info.value)


@pytest.mark.parametrize("region", ["cn-north-4", "ap-southeast-1", "eu-west-101", "la-south-2"])
def test_region_ids_are_accepted(region: str) -> None:
    """Real region ids pass as they are."""
    assert check_region(region) == region


@pytest.mark.parametrize(
    "region",
    ["attacker.example:8443/x?", "cn-north-4.evil.com", "CN-NORTH-4", "", "north", "cn_north_4"],
)
def test_anything_else_is_not_a_region(region: str) -> None:
    """A region becomes part of a host name: only region-shaped ids are taken."""
    with pytest.raises(ConfigError):
        check_region(region)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("10.0.0.1", False),
        ("iam.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    """Loopback is localhost or a loopback address, nothing else."""
    assert is_loopback(host) is loopback


def crawl_cli(tmp_path: Path, *flags: str, env: Mapping[str, str] | None = None) -> Any:
    targets = tmp_path / "targets.txt"
    targets.write_text("ns/repo:v1\n")
    args = ["crawl", "--targets", str(targets), "--out", str(tmp_path / "out"), *flags]
    return CliRunner().invoke(cli, args, env={"SWR_AUTH_TOKEN": "t", **(env or {})})


@pytest.mark.parametrize(("endpoint", "fragment"), BAD_ENDPOINTS)
def test_the_cli_refuses_bad_endpoints_with_exit_2(
    tmp_path: Path, endpoint: str, fragment: str
) -> None:
    """crawl --endpoint BAD: exit 2, one line naming the problem, no traceback, no output dir."""
    result = crawl_cli(tmp_path, "--endpoint", endpoint)
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output
    assert "hunter2pw" not in result.output
    assert not (tmp_path / "out").exists()


def test_the_cli_refuses_a_hostile_region_with_exit_2(tmp_path: Path) -> None:
    """--region 'attacker.example:8443/x?' is refused before any connection."""
    result = crawl_cli(tmp_path, "--region", "attacker.example:8443/x?")
    assert result.exit_code == 2
    assert "expected a region id" in result.output


IAM = {"SWR_IAM_USER": "u", "SWR_IAM_PASSWORD": "p", "SWR_IAM_DOMAIN": "d"}


@pytest.mark.parametrize(
    ("endpoint", "warned"),
    [
        ("http://iam.example.com", True),
        ("https://iam.example.com", False),
        ("http://127.0.0.1:9999", False),
        ("http://localhost:9999", False),
    ],
)
def test_a_plain_http_iam_endpoint_off_this_machine_is_warned_about(
    endpoint: str, warned: bool
) -> None:
    """The password would cross the network in clear: a warning, unless IAM is loopback."""
    with capture_logs() as events:
        auth_from_env({**IAM, "SWR_IAM_ENDPOINT": endpoint}, region="cn-north-4")
    assert any(e["event"] == "auth.iam_plain_http" for e in events) is warned


def test_iam_endpoint_with_a_path_is_refused() -> None:
    """SWR_IAM_ENDPOINT follows the same rules as --endpoint."""
    with pytest.raises(ConfigError) as info:
        auth_from_env({**IAM, "SWR_IAM_ENDPOINT": "https://iam.example.com/v3"}, region="r-1")
    assert "SWR_IAM_ENDPOINT" in str(info.value)


@pytest.mark.parametrize(
    "env",
    [
        {"SWR_AUTH_TOKEN": "tok\nen"},
        {"CLOUD_SDK_AK": "AK\r\nX-Evil: 1", "CLOUD_SDK_SK": "sk"},
        {"CLOUD_SDK_AK": "AK", "CLOUD_SDK_SK": "sk", "CLOUD_SDK_SECURITY_TOKEN": "st\x00"},
    ],
)
def test_a_credential_that_cannot_be_a_header_is_a_config_error(env: dict[str, str]) -> None:
    """A line break inside a header-bound credential is exit 2, not a failure per request."""
    with pytest.raises(ConfigError) as info:
        auth_from_env(env, region="cn-north-4")
    assert "control character" in str(info.value)
    assert all(value not in str(info.value) for value in env.values())
