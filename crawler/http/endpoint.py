"""Checking the addresses the crawler sends requests to: ``--endpoint``, ``--region``
and ``SWR_IAM_ENDPOINT``. Pure: a bad value is a :class:`ConfigError` (exit 2)
before any request, never a traceback or a run of failed requests.

An endpoint is ``http://`` or ``https://``, a host (a DNS name, an IPv4
address or a bracketed IPv6 address) and an optional port 1-65535, nothing
else: no user name or password (credentials come from the environment, and
a URL's would be sent as a second credential and written to ``run.json``),
no query or fragment (they would be sent with every request and change what
is asked for), and no path: a path prefix (``https://gateway/swr``) is
refused rather than half supported, because the AK/SK signature covers the
whole path and every path the crawler sends is the API's own (``/v2/...``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from crawler.errors import ConfigError

__all__ = ["Endpoint", "check_region", "is_loopback", "parse_endpoint"]

EXAMPLE: Final = "https://swr-api.cn-north-4.myhuaweicloud.com"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_LABEL: Final = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
#: A Huawei Cloud region id: ``cn-north-4``, ``ap-southeast-1``, ``eu-west-101``.
_REGION: Final = re.compile(r"[a-z]{2,4}(?:-[a-z0-9]{1,20}){1,4}")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A checked endpoint."""

    url: str
    """``scheme://host[:port]``, no trailing slash: request paths are appended to it."""
    host: str
    """The ``Host`` header as it is sent (and signed): the port only when not the default."""
    hostname: str
    """The host alone (an IPv6 address without brackets)."""


def parse_endpoint(text: str, *, setting: str = "--endpoint", example: str = EXAMPLE) -> Endpoint:
    """The :class:`Endpoint` ``text`` names, or a :class:`ConfigError` naming ``setting``.

    The message never repeats a URL that holds a user name or password.
    """

    def refuse(why: str, *, echo: bool = True) -> ConfigError:
        shown = f" {text!r}" if echo else ""
        return ConfigError(f"{setting}{shown}: {why}, e.g. {example}")

    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:  # "http://[::1", a port that is not a number or out of range
        raise refuse(f"not a valid URL ({exc})", echo="@" not in text) from None
    if "@" in parts.netloc:
        raise refuse(
            "must not contain a user name or password (credentials come from the environment)",
            echo=False,
        )
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise refuse("must start with http:// or https://")
    hostname = parts.hostname or ""
    if not hostname:
        raise refuse("no host")
    if not _valid_host(hostname, bracketed=parts.netloc.startswith("[")):
        raise refuse("the host is not a DNS name or an IP address")
    if port is not None and not 1 <= port <= 65535:
        raise refuse("the port must be 1-65535")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise refuse("must not have a query (?...) or a fragment (#...)")
    if parts.path not in ("", "/"):
        raise refuse("a path prefix is not supported: give the scheme, host and port only")
    shown_host = f"[{hostname}]" if ":" in hostname else hostname
    netloc = shown_host if port is None else f"{shown_host}:{port}"
    host = shown_host if port in (None, _DEFAULT_PORTS[scheme]) else netloc
    return Endpoint(f"{scheme}://{netloc}", host, hostname)


def _valid_host(hostname: str, *, bracketed: bool) -> bool:
    if bracketed:
        try:
            return ipaddress.ip_address(hostname).version == 6
        except ValueError:
            return False
    return len(hostname) <= 253 and _HOSTNAME.fullmatch(hostname) is not None


def is_loopback(hostname: str) -> bool:
    """Whether ``hostname`` is this machine (``localhost`` or a loopback address)."""
    if hostname.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def check_region(region: str) -> str:
    """``region`` if it has the shape of a region id (it becomes part of a host name)."""
    if _REGION.fullmatch(region) is None:
        raise ConfigError(
            f"region {region!r}: expected a region id such as cn-north-4 or ap-southeast-1"
        )
    return region
