"""IAM password login: a token from ``POST /v3/auth/tokens``, cached and renewed.

One of the credential methods of :mod:`crawler.http.credentials` (``method = "iam"``),
kept apart because it has state of its own: the token's lifetime by the
local clock, renewal before expiry and once per 401 shared by every worker
(single flight), and an optional 0600 cache file that later cron runs reuse.
The login request goes through the run's :class:`~crawler.http.transport.Transport`
like every other (same timeout, body cap, proxy and TLS rules), and its
error body is read by the same :func:`~crawler.http.response.error_fields`.

Raises ``IamLoginFailed`` (IAM refused: stop the run) and ``IamUnavailable``
(no usable answer: retry later), both in :mod:`crawler.errors`. Every token
IAM issues is handed to the transport's scrubber before it is used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final, final

import anyio
import anyio.to_thread
import structlog

from crawler import USER_AGENT
from crawler.errors import ErrorKind, IamLoginFailed, IamUnavailable, TransportError
from crawler.http.response import error_fields
from crawler.http.secrets import TOKEN_HEADER, Secret, token_headers, utc_now
from crawler.output.storage import write_atomic

if TYPE_CHECKING:  # the transport is loaded only when a login needs one
    from crawler.http.transport import Transport

__all__ = ["DEFAULT_IAM_ENDPOINT", "IamPasswordLogin"]

DEFAULT_IAM_ENDPOINT: Final = "https://iam.myhuaweicloud.com"
#: The timeout of a login whose transport this object makes itself.
DEFAULT_TIMEOUT: Final = 30.0

_log = structlog.get_logger("crawler.http.credentials")


@dataclass(frozen=True, slots=True, repr=False)
class _Token:
    """An IAM token and when, by the local clock, it expires and should be renewed."""

    value: Secret
    issued_at: datetime
    expires_at: datetime
    refresh_at: datetime
    headers: Mapping[str, str]

    def __repr__(self) -> str:
        return f"_Token(value={self.value!r}, expires_at={self.expires_at.isoformat()})"


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@final
class IamPasswordLogin:
    """A token from IAM password login, cached, renewed before expiry and once per 401.

    Concurrency: every login happens under one lock, and ``_attempts`` counts
    finished logins. A caller that waited on the lock while somebody else
    logged in takes that outcome (the new token, or the same failure) instead
    of logging in again, so N workers hitting an expiry or a 401 together
    cause one login.

    Clocks: the token's lifetime is taken from IAM's ``expires_at - issued_at``
    and counted from when the answer arrived by the local clock (``now``), so
    a local clock that is off by hours does not make a fresh token look
    expired. Renewal starts ``refresh_margin`` (default: 5 minutes or a tenth
    of the lifetime, whichever is smaller) before expiry; if that early login
    fails for a transient reason the old token is used until it expires.
    """

    method = "iam"

    def __init__(
        self,
        *,
        user: str,
        password: str,
        domain: str,
        project: str,
        endpoint: str = DEFAULT_IAM_ENDPOINT,
        transport: Transport | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        now: Callable[[], datetime] = utc_now,
        refresh_margin: timedelta | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        self._user = user
        self._password = Secret(password)
        self._domain = domain
        self._project = project
        self._endpoint = endpoint.rstrip("/")
        self._transport = transport
        self._owns_transport = transport is None
        self._cache_path = Path(cache_path) if cache_path is not None else None
        self._now = now
        self._refresh_margin = refresh_margin
        self._user_agent = user_agent

        self._lock = anyio.Lock()
        self._token: _Token | None = None
        self._attempts = 0
        self._last_error: IamLoginFailed | IamUnavailable | None = None
        self._refused: IamLoginFailed | None = None
        self._cache_checked = self._cache_path is None

    @property
    def failure(self) -> IamLoginFailed | None:
        """Why IAM refused the login, once it has (sticky: no further login is tried)."""
        return self._refused

    @property
    def logins(self) -> int:
        """Login requests sent so far (each one counted once it has finished)."""
        return self._attempts

    def __repr__(self) -> str:
        return (
            f"IamPasswordLogin(user={self._user!r}, password={self._password!r}, "
            f"domain={self._domain!r}, project={self._project!r}, "
            f"endpoint={self._endpoint!r}, token={self._token!r})"
        )

    # -- the seam ----------------------------------------------------------

    async def headers(
        self, method: str, host: str, path: str, query: Sequence[tuple[str, str]], body: bytes
    ) -> Mapping[str, str]:
        """The current token's prebuilt headers; logs in first when there is none or it is due."""
        token = self._token
        if token is None or self._now() >= token.refresh_at:
            token = await self._fresh_token()
        return token.headers

    async def refresh(self, stale: Mapping[str, str]) -> bool:
        """Replace the token that got a 401, once for all callers that hold it."""
        stale_token = stale.get(TOKEN_HEADER)
        seen = self._attempts
        async with self._lock:
            if self._refused is not None:
                return False
            current = self._token
            if current is not None and current.value.reveal() != stale_token:
                return True  # already replaced since `stale` was built
            if current is None and self._attempts != seen:
                return True  # a login failed while we waited and dropped the bad token
            try:
                await self._login(reason="unauthorized", fallback=None)
            except IamLoginFailed:
                return False
            except IamUnavailable:
                # The stale token is known bad; the retry's headers() logs in
                # again and, if IAM is still down, fails as a transient error.
                self._token = None
            return True

    async def aclose(self) -> None:
        """Close the transport if this object made it."""
        if self._owns_transport and self._transport is not None:
            await self._transport.aclose()
            self._transport = None

    # -- internals ---------------------------------------------------------

    async def _fresh_token(self) -> _Token:
        seen = self._attempts
        async with self._lock:
            token = self._token
            now = self._now()
            if token is not None and now < token.refresh_at:
                return token
            if self._refused is not None:
                raise self._copy(self._refused)
            if self._attempts != seen and self._last_error is not None:
                raise self._copy(self._last_error)
            if not self._cache_checked:
                self._cache_checked = True
                cached = await self._read_cache(now)
                if cached is not None:
                    self._token = cached
                    return cached
            return await self._login(
                reason="initial" if token is None else "expiring", fallback=token
            )

    @staticmethod
    def _copy(error: IamLoginFailed | IamUnavailable) -> IamLoginFailed | IamUnavailable:
        # A fresh instance per raise: sharing one would pile up tracebacks.
        if isinstance(error, IamLoginFailed):
            return IamLoginFailed(str(error), status=error.status, error_code=error.error_code)
        return IamUnavailable(str(error), status=error.status, kind=error.kind)

    async def _login(self, *, reason: str, fallback: _Token | None) -> _Token:
        """POST /v3/auth/tokens under the lock; ``fallback`` outlives a transient failure."""
        _log.info(
            "auth.iam_login",
            reason=reason,
            endpoint=self._endpoint,
            user=self._user,
            domain=self._domain,
            project=self._project,
        )
        try:
            token = await self._post_login()
        except IamLoginFailed as exc:
            self._refused = exc
            self._last_error = exc
            _log.error(
                "auth.iam_login_failed",
                status=exc.status,
                error_code=exc.error_code,
                error=str(exc),  # scrubbed: user, account, project and endpoint, no password
                fatal=True,
            )
            raise
        except IamUnavailable as exc:
            self._last_error = exc
            now = self._now()
            _log.warning("auth.iam_login_failed", status=exc.status, error=str(exc), fatal=False)
            if fallback is not None and now < fallback.expires_at:
                # Keep the old token and try again in a while, not on every request.
                retry_at = now + min(timedelta(seconds=30), (fallback.expires_at - now) / 2)
                kept = _Token(
                    fallback.value,
                    fallback.issued_at,
                    fallback.expires_at,
                    retry_at,
                    fallback.headers,
                )
                self._token = kept
                return kept
            raise
        finally:
            self._attempts += 1
        self._last_error = None
        self._token = token
        _log.info("auth.iam_login_ok", expires_at=token.expires_at.isoformat())
        await self._write_cache(token)
        return token

    def _describe(self) -> str:
        return (
            f"user {self._user!r}, account {self._domain!r}, project {self._project!r}, "
            f"endpoint {self._endpoint}"
        )

    def _scrub(self, text: str) -> str:
        """``text`` without the password or a token (IAM's answer is server text)."""
        return self._login_transport().scrubber(text, 1000)

    def _login_transport(self) -> Transport:
        if self._transport is None:
            from crawler.http.transport import Transport

            self._transport = Transport(timeout=DEFAULT_TIMEOUT, max_connections=1)
        transport = self._transport
        transport.scrubber.add(self._password)
        return transport

    async def _post_login(self) -> _Token:
        body = json.dumps(
            {
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {
                                "domain": {"name": self._domain},
                                "name": self._user,
                                "password": self._password.reveal(),
                            }
                        },
                    },
                    "scope": {"project": {"name": self._project}},
                }
            }
        ).encode()
        headers = {
            "Content-Type": "application/json;charset=UTF-8",
            "User-Agent": self._user_agent,
        }
        transport = self._login_transport()
        try:
            answer = await transport.request(
                "POST", f"{self._endpoint}/v3/auth/tokens", headers=headers, body=body
            )
        except TransportError as exc:
            raise IamUnavailable(
                self._scrub(f"IAM password login failed: {exc.message} ({self._describe()})"),
                kind=ErrorKind.TLS if exc.kind is ErrorKind.TLS else ErrorKind.NETWORK,
            ) from None
        received = self._now()
        status = answer.status
        subject = answer.header("x-subject-token")
        if subject:
            transport.scrubber.add(subject)
        if status in (200, 201) and subject:
            return self._token_from(subject, answer.body, received)
        code, message = error_fields(answer.body, transport.scrubber)
        shown = code if code and code != str(status) else None
        why = (
            f"HTTP {status}" + (f" {shown}" if shown else "") + (f": {message}" if message else "")
        )
        if status in (200, 201):
            why = f"HTTP {status} without an X-Subject-Token header"
        text = self._scrub(f"IAM password login failed: {why} ({self._describe()})")
        if status == 429 or status == 408 or status >= 500:
            raise IamUnavailable(text, status=status)
        raise IamLoginFailed(text, status=status, error_code=code)

    def _token_from(self, subject: str, raw: bytes, received: datetime) -> _Token:
        try:
            data = json.loads(raw)
            token_body = data["token"]
        except (ValueError, KeyError, TypeError):
            token_body = {}
        expires = _parse_time(
            token_body.get("expires_at") if isinstance(token_body, dict) else None
        )
        issued = _parse_time(token_body.get("issued_at") if isinstance(token_body, dict) else None)
        if expires is None:
            # No expiry given: assume IAM's documented 24 hours.
            lifetime = timedelta(hours=24)
        elif issued is None:
            lifetime = expires - received
        else:
            lifetime = expires - issued
        return self._make_token(subject, received, received + lifetime)

    def _make_token(self, value: str, issued_at: datetime, expires_at: datetime) -> _Token:
        lifetime = max(expires_at - issued_at, timedelta(0))
        margin = self._refresh_margin
        if margin is None:
            margin = min(timedelta(minutes=5), lifetime / 10)
        # Known to the scrubber before any request carries it (a cached token too).
        self._login_transport().scrubber.add(value)
        headers = token_headers(value, self._user_agent)
        return _Token(Secret(value), issued_at, expires_at, expires_at - margin, headers)

    # -- the token file ----------------------------------------------------

    def _cache_identity(self) -> dict[str, str]:
        return {
            "endpoint": self._endpoint,
            "domain": self._domain,
            "user": self._user,
            "project": self._project,
        }

    async def _read_cache(self, now: datetime) -> _Token | None:
        path = self._cache_path
        if path is None:
            return None
        try:
            text = await anyio.to_thread.run_sync(path.read_text)
        except FileNotFoundError:
            return None
        except OSError as exc:
            _log.warning("auth.token_cache_unusable", path=str(path), error=type(exc).__name__)
            return None
        try:
            data = json.loads(text)
            matches = all(data.get(k) == v for k, v in self._cache_identity().items())
            value = data["token"]
            issued = _parse_time(data["issued_at"])
            expires = _parse_time(data["expires_at"])
        except (ValueError, KeyError, TypeError, AttributeError):
            _log.warning("auth.token_cache_unusable", path=str(path), error="malformed")
            return None
        if not matches or not isinstance(value, str) or issued is None or expires is None:
            _log.info("auth.token_cache_unusable", path=str(path), error="another identity")
            return None
        token = self._make_token(value, issued, expires)
        if now >= token.refresh_at:
            _log.info("auth.token_cache_unusable", path=str(path), error="expiring")
            return None
        _log.info("auth.token_cache_hit", path=str(path), expires_at=expires.isoformat())
        return token

    async def _write_cache(self, token: _Token) -> None:
        path = self._cache_path
        if path is None:
            return
        data = {
            **self._cache_identity(),
            "token": token.value.reveal(),
            # Both by this machine's clock (see the class docstring).
            "issued_at": token.issued_at.isoformat(),
            "expires_at": token.expires_at.isoformat(),
        }
        try:
            await anyio.to_thread.run_sync(_write_private, path, json.dumps(data))
        except OSError as exc:
            # The cache only saves a login; the run goes on without it.
            _log.warning("auth.token_cache_write_failed", path=str(path), error=type(exc).__name__)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all, readable by the owner only (0600)."""
    # Created 0600 from the start: the token is never readable by others,
    # not even between create and rename.
    write_atomic(path, text.encode(), mode=0o600)
