"""Credentials: the headers that authenticate one SWR request, and their renewal.

Three methods, one seam (:class:`Auth`); the client calls ``headers()`` per
request and ``refresh()`` after a 401.

============  ==============================================================
``method``    environment variables (credentials never come from flags/config)
============  ==============================================================
``token``     ``SWR_AUTH_TOKEN``: sent as ``X-Auth-Token`` as is.
``aksk``      ``CLOUD_SDK_AK`` + ``CLOUD_SDK_SK`` (the official SDK's names);
              optional ``CLOUD_SDK_PROJECT_ID`` (sent as ``X-Project-Id``) and
              ``CLOUD_SDK_SECURITY_TOKEN`` (temporary AK/SK, sent as
              ``X-Security-Token``). Every request signed with SDK-HMAC-SHA256
              (:mod:`crawler.http.signer`), a fresh ``X-Sdk-Date`` each time.
``iam``       ``SWR_IAM_USER``, ``SWR_IAM_PASSWORD``, ``SWR_IAM_DOMAIN`` (the
              account name the IAM user belongs to; for the account itself,
              the same as the user); ``SWR_IAM_PROJECT`` (project name, default
              the ``--region``); ``SWR_IAM_ENDPOINT`` (default
              ``https://iam.myhuaweicloud.com``); ``SWR_IAM_TOKEN_CACHE``
              (optional file path: the token is kept there, mode 0600, written
              atomically, and reused by later runs while it is not near expiry).
============  ==============================================================

Choice when several are set: ``SWR_AUTH_TOKEN``, then AK/SK, then IAM
password. The most specific credential wins: a token exported for a run is a
deliberate, narrow choice; AK/SK costs no extra round trip and never expires
mid-run; a password is the broadest credential and costs a login. A method
counts as set when any of its variables is non-empty, so a half-set method
(``CLOUD_SDK_AK`` without ``CLOUD_SDK_SK``) is a :class:`ConfigError` rather
than a silent fall-through to the next one.

Secrets live in :class:`~crawler.http.secrets.Secret` (its repr is
``Secret('***')``) and in the prebuilt header mappings that go on the wire; no
repr, exception message or log event carries them. :func:`auth_from_env`
hands every secret it reads (the unchosen methods' too) to the run's
:class:`~crawler.http.secrets.Scrubber`, which keeps them out of anything a
server sends back.

The IAM password login lives in :mod:`crawler.http.iam` (its ``headers()``
may raise ``IamLoginFailed`` or ``IamUnavailable``, see :mod:`crawler.errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final, Protocol, final

import structlog

from crawler import USER_AGENT
from crawler.errors import ConfigError
from crawler.http import signer
from crawler.http.endpoint import is_loopback, parse_endpoint
from crawler.http.iam import DEFAULT_IAM_ENDPOINT, IamPasswordLogin
from crawler.http.secrets import CONTENT_TYPE, Secret, token_headers, utc_now

if TYPE_CHECKING:  # the transport (asyncio, ssl) is not needed by `--help` or config
    from crawler.http.transport import Transport

__all__ = [
    "CREDENTIAL_VARIABLES",
    "AkSkSigner",
    "Auth",
    "StaticToken",
    "auth_from_env",
    "refused_hint",
]

ENV_TOKEN: Final = "SWR_AUTH_TOKEN"  # noqa: S105 - a name, not a secret
ENV_AK: Final = "CLOUD_SDK_AK"
ENV_SK: Final = "CLOUD_SDK_SK"
ENV_PROJECT_ID: Final = "CLOUD_SDK_PROJECT_ID"
ENV_SECURITY_TOKEN: Final = "CLOUD_SDK_SECURITY_TOKEN"  # noqa: S105 - a name, not a secret
ENV_IAM_USER: Final = "SWR_IAM_USER"
ENV_IAM_PASSWORD: Final = "SWR_IAM_PASSWORD"  # noqa: S105 - a name, not a secret
ENV_IAM_DOMAIN: Final = "SWR_IAM_DOMAIN"
ENV_IAM_PROJECT: Final = "SWR_IAM_PROJECT"
ENV_IAM_ENDPOINT: Final = "SWR_IAM_ENDPOINT"
ENV_IAM_TOKEN_CACHE: Final = "SWR_IAM_TOKEN_CACHE"  # noqa: S105 - a name, not a secret
#: Every variable a credential is read from (for help texts and the unknown-variable check).
CREDENTIAL_VARIABLES: Final = (
    ENV_TOKEN,
    ENV_AK,
    ENV_SK,
    ENV_PROJECT_ID,
    ENV_SECURITY_TOKEN,
    ENV_IAM_USER,
    ENV_IAM_PASSWORD,
    ENV_IAM_DOMAIN,
    ENV_IAM_PROJECT,
    ENV_IAM_ENDPOINT,
    ENV_IAM_TOKEN_CACHE,
)

#: The variables that hold a secret (the access key ID and names are not secrets).
_SECRET_NAMES: Final = (ENV_TOKEN, ENV_SK, ENV_SECURITY_TOKEN, ENV_IAM_PASSWORD)

_log = structlog.get_logger("crawler.http.credentials")


class Auth(Protocol):
    """How one request is authenticated; the client's only view of credentials."""

    method: str
    """``token``, ``aksk`` or ``iam``: named in messages and run.json, never a secret."""

    async def headers(
        self, method: str, host: str, path: str, query: Sequence[tuple[str, str]], body: bytes
    ) -> Mapping[str, str]:
        """The complete headers to send with one request (Content-Type and User-Agent included)."""
        ...

    async def refresh(self, stale: Mapping[str, str]) -> bool:
        """After a 401 for headers ``stale``: True when a new credential is in place (retry)."""
        ...

    async def aclose(self) -> None:
        """Release what the credential holds (an owned HTTP session)."""
        ...


_REFUSED_HINTS: Final = {
    "token": f"the endpoint refused {ENV_TOKEN} (401): it is wrong or has expired",
    "aksk": (
        f"the endpoint refused the AK/SK signature (401): check {ENV_AK}, {ENV_SK}"
        f" ({ENV_SECURITY_TOKEN} too for temporary credentials) and the system clock"
    ),
    "iam": (
        "IAM refused the password login, or the endpoint refused the token IAM issued (401):"
        f" check {ENV_IAM_USER}, {ENV_IAM_PASSWORD}, {ENV_IAM_DOMAIN}, {ENV_IAM_PROJECT}"
        f" and {ENV_IAM_ENDPOINT}"
    ),
}


def refused_hint(method: str) -> str:
    """What failed and which variables to check, after a run stopped on a refused credential."""
    return _REFUSED_HINTS.get(method, "the credential was refused (401)")


def _mask_id(value: str) -> str:
    # An access key ID is not a secret (it is in every Authorization header),
    # but the first characters are enough to tell two apart in a message.
    return value[:4] + "***" if len(value) > 4 else "***"


@final
class StaticToken:
    """``X-Auth-Token`` from ``SWR_AUTH_TOKEN``: one constant mapping, no work per request."""

    method = "token"

    def __init__(self, token: str, *, user_agent: str = USER_AGENT) -> None:
        self._token = Secret(token)
        self._headers = token_headers(token, user_agent)

    async def headers(
        self, method: str, host: str, path: str, query: Sequence[tuple[str, str]], body: bytes
    ) -> Mapping[str, str]:
        """The same prebuilt mapping for every request."""
        return self._headers

    async def refresh(self, stale: Mapping[str, str]) -> bool:
        """A static token cannot be renewed: a 401 means it is wrong or expired."""
        return False

    async def aclose(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"StaticToken(token={self._token!r})"


@final
class AkSkSigner:
    """AK/SK: every request signed with SDK-HMAC-SHA256 exactly as the official SDK signs it."""

    method = "aksk"

    def __init__(
        self,
        ak: str,
        sk: str,
        *,
        project_id: str | None = None,
        security_token: str | None = None,
        now: Callable[[], datetime] = utc_now,
        user_agent: str = USER_AGENT,
    ) -> None:
        self._ak = ak
        self._sk = Secret(sk)
        self._security_token = Secret(security_token) if security_token else None
        self._project_id = project_id or None
        self._now = now
        base = {"Content-Type": CONTENT_TYPE, "User-Agent": user_agent}
        if self._project_id:
            base["X-Project-Id"] = self._project_id
        if security_token:
            base["X-Security-Token"] = security_token
        self._base = base
        self._prepared: dict[str, signer.PreparedSigner] = {}

    async def headers(
        self, method: str, host: str, path: str, query: Sequence[tuple[str, str]], body: bytes
    ) -> Mapping[str, str]:
        """Host, X-Sdk-Date (now), the base headers and the Authorization that signs them all."""
        if body:
            return signer.sign(
                self._ak,
                self._sk.reveal(),
                method,
                host,
                path,
                query,
                self._base,
                body,
                self._now(),
            )
        prepared = self._prepared.get(host)
        if prepared is None:  # once per host: the header part of the signature is fixed
            prepared = signer.PreparedSigner(self._ak, self._sk.reveal(), host, self._base)
            self._prepared[host] = prepared
        return prepared.headers(method, path, query, self._now())

    async def refresh(self, stale: Mapping[str, str]) -> bool:
        """A key pair cannot be renewed here: a 401 means it is wrong (or the clock is off)."""
        return False

    async def aclose(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return (
            f"AkSkSigner(ak={_mask_id(self._ak)!r}, sk={self._sk!r}, "
            f"project_id={self._project_id!r}, security_token={self._security_token!r})"
        )


def _env(environ: Mapping[str, str], name: str, *, strip: bool = True) -> str | None:
    value = environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip() if strip else value


def _header_value(environ: Mapping[str, str], name: str) -> str | None:
    """A variable whose value is sent in a header: a line break or another control
    character inside it would break the request (the value is not shown: a secret)."""
    value = _env(environ, name)
    if value is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ConfigError(
            f"{name} contains a line break or another control character: it cannot be sent"
            " in an HTTP header (copied with a stray newline?)"
        )
    return value


def _missing(names: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    return [name for name in names if _env(environ, name) is None]


def _iam_endpoint(value: str | None) -> str:
    """``SWR_IAM_ENDPOINT`` checked up front: a malformed one would fail every login
    as if IAM were down (retried, exit 1) instead of being a configuration error."""
    if value is None:
        return DEFAULT_IAM_ENDPOINT
    endpoint = parse_endpoint(value, setting=ENV_IAM_ENDPOINT, example=DEFAULT_IAM_ENDPOINT)
    if endpoint.url.startswith("http://") and not is_loopback(endpoint.hostname):
        # The password goes to this address: in clear text, anyone on the path reads it.
        _log.warning(
            "auth.iam_plain_http",
            endpoint=endpoint.url,
            hint="the IAM password login is sent unencrypted; use https://",
        )
    return endpoint.url


def auth_from_env(
    environ: Mapping[str, str],
    *,
    region: str | None,
    transport: Transport | None = None,
    now: Callable[[], datetime] = utc_now,
    user_agent: str = USER_AGENT,
) -> Auth:
    """The credential the environment describes, by the order in the module docstring.

    ``transport`` carries the IAM login (without one, the IAM login makes and
    closes its own), and its scrubber learns every secret found here. Raises
    :class:`ConfigError` (one line, no secret) when no method is set or the
    chosen one is half-set.
    """
    if transport is not None:
        for name in _SECRET_NAMES:
            transport.scrubber.add(environ.get(name, "").strip())
            transport.scrubber.add(environ.get(name))
    token_set = _env(environ, ENV_TOKEN) is not None
    aksk_names = (ENV_AK, ENV_SK)
    aksk_set = any(_env(environ, n) is not None for n in (*aksk_names, ENV_SECURITY_TOKEN))
    iam_names = (ENV_IAM_USER, ENV_IAM_PASSWORD, ENV_IAM_DOMAIN)
    iam_set = any(_env(environ, n) is not None for n in (ENV_IAM_USER, ENV_IAM_PASSWORD))
    chosen: Auth
    if token_set:
        chosen = StaticToken(_header_value(environ, ENV_TOKEN) or "", user_agent=user_agent)
    elif aksk_set:
        missing = _missing(aksk_names, environ)
        if missing:
            raise ConfigError(f"AK/SK credentials incomplete: {' and '.join(missing)} not set")
        chosen = AkSkSigner(
            _header_value(environ, ENV_AK) or "",
            _env(environ, ENV_SK) or "",
            project_id=_header_value(environ, ENV_PROJECT_ID),
            security_token=_header_value(environ, ENV_SECURITY_TOKEN),
            now=now,
            user_agent=user_agent,
        )
    elif iam_set:
        missing = _missing(iam_names, environ)
        project = _env(environ, ENV_IAM_PROJECT) or region
        if project is None:
            missing.append(f"{ENV_IAM_PROJECT} (or --region)")
        if missing:
            raise ConfigError(f"IAM password login incomplete: {', '.join(missing)} not set")
        chosen = IamPasswordLogin(
            user=_env(environ, ENV_IAM_USER) or "",
            password=_env(environ, ENV_IAM_PASSWORD, strip=False) or "",
            domain=_env(environ, ENV_IAM_DOMAIN) or "",
            project=project or "",
            endpoint=_iam_endpoint(_env(environ, ENV_IAM_ENDPOINT)),
            transport=transport,
            cache_path=_env(environ, ENV_IAM_TOKEN_CACHE),
            now=now,
            user_agent=user_agent,
        )
    else:
        raise ConfigError(
            f"no credentials: set {ENV_TOKEN}, or {ENV_AK} and {ENV_SK}, "
            f"or {ENV_IAM_USER}, {ENV_IAM_PASSWORD} and {ENV_IAM_DOMAIN}"
        )
    ignored = [
        name
        for name, is_set in (("token", token_set), ("aksk", aksk_set), ("iam", iam_set))
        if is_set and name != chosen.method
    ]
    _log.info("auth.selected", method=chosen.method, ignored=ignored)
    return chosen
