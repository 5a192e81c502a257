"""Who may call the sandbox: static tokens, IAM-issued tokens, AK/SK signatures.

AK/SK signatures are recomputed with the official SDK's signer
(``huaweicloudsdkcore.signer.Signer``) when it is installed (it is a dev
dependency, so every test run has it): the sandbox is then an independent
check of :mod:`crawler.http.signer`, and an end-to-end AK/SK test fails on a
signer bug. Without the SDK (a plain ``pip install``, ``make demo`` included)
the sandbox falls back to the crawler's own signer and says so
(:data:`VERIFIER`); it still checks the access key, the date window and the
signed header list, but no longer catches a bug shared by both sides.
Everything here is pure but for the clock passed in.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from crawler.http import signer

try:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer as OfficialSigner
except ImportError:  # pragma: no cover - the SDK is a dev dependency
    OfficialSigner = None

#: Whose code recomputes AK/SK signatures here (see the module docstring).
VERIFIER = "huaweicloudsdkcore" if OfficialSigner is not None else "crawler.http.signer"


class SignedRequest(NamedTuple):
    """What an AK/SK signature covers: a request as the server received it."""

    method: str
    #: The raw path, without the query.
    path: str
    query: Iterable[tuple[str, str]]
    #: The received headers, a case-insensitive mapping (only the signed ones
    #: when handed to a signer).
    headers: Mapping[str, str]
    body: bytes


class IamUser(NamedTuple):
    """A user IAM accepts for password login."""

    domain: str
    name: str
    password: str


@dataclass(frozen=True, slots=True)
class Denied:
    """Why a request was refused: the code and message of the 401 body."""

    error_code: str
    error_msg: str


TOKEN_DENIED = Denied("APIG.1002", "Incorrect token or token resolution failed")
SIGNATURE_DENIED = Denied(
    "APIG.0301", "Incorrect IAM authentication information: verify aksk signature fail"
)
AK_DENIED = Denied(
    "APIG.0301", "Incorrect IAM authentication information: ak is not found or is invalid"
)
DATE_DENIED = Denied(
    "APIG.0301", "Incorrect IAM authentication information: x-sdk-date is expired or invalid"
)

_AUTHORIZATION_RE = re.compile(
    r"SDK-HMAC-SHA256\s+Access=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]+)"
)


def check_signature(
    authorization: str,
    request: SignedRequest,
    credentials: Mapping[str, str],
    now: float,
    max_skew: float = 900.0,
) -> Denied | None:
    """None when ``authorization`` is a valid SDK-HMAC-SHA256 signature of ``request``.

    ``now`` is a POSIX time for the X-Sdk-Date check.
    """
    match = _AUTHORIZATION_RE.fullmatch(authorization.strip())
    if match is None:
        return SIGNATURE_DENIED
    ak, signed_names, received = match.groups()
    sk = credentials.get(ak)
    if sk is None:
        return AK_DENIED
    headers = request.headers
    date = headers.get("X-Sdk-Date")
    if date is None:
        return DATE_DENIED
    signed_at = _sdk_date_seconds(date)
    if signed_at is None or abs(now - signed_at) > max_skew:
        return DATE_DENIED
    names = signed_names.split(";")
    if "x-sdk-date" not in names or any(name not in headers for name in names):
        return SIGNATURE_DENIED
    signed = request._replace(headers={name: headers[name] for name in names})
    if OfficialSigner is not None:
        expected_names, expected = _official_signature(ak, sk, signed)
    else:
        canonical, expected_names = signer.canonical_request(**signed._asdict())
        expected = signer.signature(sk, date, canonical)
    if expected_names != names or not secrets.compare_digest(expected, received):
        return SIGNATURE_DENIED
    return None


def _official_signature(ak: str, sk: str, signed: SignedRequest) -> tuple[list[str], str]:
    """The signed header names and the signature the official SDK computes for ``signed``."""
    request = SdkRequest(
        method=signed.method,
        schema="http",
        host=signed.headers.get("host", ""),
        resource_path=signed.path,
        query_params=list(signed.query),
        header_params=dict(signed.headers),
        body=signed.body,
    )
    OfficialSigner(BasicCredentials(ak, sk)).sign(request)
    match = _AUTHORIZATION_RE.fullmatch(request.header_params["Authorization"])
    assert match is not None  # the SDK writes the format it defines
    return match.group(2).split(";"), match.group(3)


@lru_cache(maxsize=64)
def _sdk_date_seconds(date: str) -> float | None:
    """An X-Sdk-Date as POSIX seconds, None if malformed."""
    # Cached: the value changes once a second, and strptime was a tenth of the
    # sandbox's CPU per request under the benchmark.
    try:
        return datetime.strptime(date, signer.DATE_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _stable_id(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _iso(moment: float) -> str:
    # IAM writes milliseconds padded to microseconds: 2020-01-04T09:05:22.701000Z
    text = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[:-3] + "000Z"


@dataclass
class Authenticator:
    """The sandbox's accounts: static tokens, AK/SK pairs, IAM users and the tokens issued."""

    tokens: Collection[str] = frozenset()
    credentials: Mapping[str, str] = field(default_factory=dict)
    iam_users: Collection[tuple[str, str, str]] = ()
    token_ttl: float = 86400.0
    max_skew: float = 900.0
    #: POSIX time; the issued tokens expire by it.
    clock: Any = time.time
    _issued: dict[str, float] = field(default_factory=dict)

    def check_token(self, token: str) -> Denied | None:
        """None when ``token`` is a static token or an unexpired IAM token."""
        if token in self.tokens:
            return None
        expires = self._issued.get(token)
        if expires is None:
            return TOKEN_DENIED
        if self.clock() >= expires:
            del self._issued[token]
            return TOKEN_DENIED
        return None

    def login(self, body: Any) -> tuple[str, dict[str, Any]] | None:
        """IAM password login: (token, response body) or None for wrong credentials.

        Raises ValueError when the body is not a password-login request at all.
        """
        try:
            identity = body["auth"]["identity"]
            if "password" not in identity["methods"]:
                raise ValueError("only password login is supported")
            user = identity["password"]["user"]
            domain, name, password = user["domain"]["name"], user["name"], user["password"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed IAM login body: {exc!r}") from None
        if not all(isinstance(value, str) for value in (domain, name, password)):
            raise ValueError("malformed IAM login body: names must be strings")
        if (domain, name, password) not in {tuple(user) for user in self.iam_users}:
            return None
        issued = self.clock()
        expires = issued + self.token_ttl
        token = "MII" + secrets.token_urlsafe(96)
        self._issued[token] = expires
        scope = body["auth"].get("scope") or {}
        answer: dict[str, Any] = {
            "token": {
                "expires_at": _iso(expires),
                "issued_at": _iso(issued),
                "methods": ["password"],
                "user": {
                    "domain": {"name": domain, "id": _stable_id(domain)},
                    "name": name,
                    "id": _stable_id(f"{domain}/{name}"),
                    "password_expires_at": "",
                },
                "roles": [{"name": "te_admin", "id": "0"}],
                "catalog": [],
            }
        }
        if isinstance(scope, dict) and isinstance(scope.get("project"), dict):
            answer["token"]["project"] = {
                "name": scope["project"].get("name", ""),
                "id": "0" * 32,
                "domain": {"name": domain},
            }
        elif isinstance(scope, dict) and isinstance(scope.get("domain"), dict):
            answer["token"]["domain"] = {"name": scope["domain"].get("name", domain)}
        return token, answer
