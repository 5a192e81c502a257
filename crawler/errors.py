"""The error taxonomy: how a target that did not end in a 200 is classified, and
every exception the crawler raises across a module boundary.

Every target that fails ends as one row of ``errors/*.parquet`` with one of the
kinds below in ``error_kind``. Kinds fall in four groups::

    ErrorKind
    ├── definitive (the answer is final: exit 0, never retried, kept on --resume)
    │   ├── invalid_target     the line could not be parsed or broke the naming rules
    │   ├── not_found          404
    │   ├── forbidden          403
    │   └── client_error       400 and any other 4xx not listed here
    ├── transient (retried with backoff; exit 1 when attempts run out; retried on --resume)
    │   ├── throttled          429
    │   ├── server_error       500, 502, 503, 504 (and any other 5xx)
    │   ├── timeout            no complete answer within --timeout, or a 408
    │   ├── network            connection refused/reset, DNS failure, broken answer
    │   └── decode             200 whose body is not a JSON object
    ├── not retried in the run (the same request would get the same answer),
    │   but not final either: exit 1, retried on --resume once the cause is fixed
    │   ├── unexpected_status  a 2xx other than 200, any 3xx (never followed), 1xx
    │   └── too_large          an answer over --max-body-bytes (compressed or not)
    └── fatal for the run (exit 1, resumable): every other request would fail too
        ├── unauthorized       401 (or IAM refused the password login)
        └── tls                the server's TLS certificate did not verify

Exceptions (all plain ``Exception`` subclasses: no library type leaks out of
the HTTP seam, :mod:`crawler.http.transport`)::

    Exception
    ├── ConfigError            a usage or configuration problem: one line, exit 2
    ├── AuthenticationFailed   the credential was refused: the run stops, exit 1
    │   └── IamLoginFailed     IAM answered 4xx to the password login
    └── TransportError         no usable HTTP answer; ``kind`` is timeout, network,
        │                      tls or too_large; ``requests`` what was sent
        └── IamUnavailable     the IAM login got no usable answer (unreachable,
                               timed out, 408, 429 or 5xx): retry the request
                               later; no SWR request was sent
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """The values of the ``error_kind`` column."""

    INVALID_TARGET = "invalid_target"
    NOT_FOUND = "not_found"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    CLIENT_ERROR = "client_error"
    THROTTLED = "throttled"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    NETWORK = "network"
    DECODE = "decode"
    UNEXPECTED_STATUS = "unexpected_status"
    TOO_LARGE = "too_large"
    TLS = "tls"


#: Kinds whose answer is final: exit status 0, skipped by ``--resume``.
DEFINITIVE_KINDS: frozenset[ErrorKind] = frozenset(
    {
        ErrorKind.INVALID_TARGET,
        ErrorKind.NOT_FOUND,
        ErrorKind.FORBIDDEN,
        ErrorKind.CLIENT_ERROR,
    }
)

#: Kinds worth another attempt within the same run.
RETRYABLE_KINDS: frozenset[ErrorKind] = frozenset(
    {
        ErrorKind.THROTTLED,
        ErrorKind.SERVER_ERROR,
        ErrorKind.TIMEOUT,
        ErrorKind.NETWORK,
        ErrorKind.DECODE,
    }
)

#: Kinds that stop the whole run: every other request would fail the same way.
FATAL_KINDS: frozenset[ErrorKind] = frozenset({ErrorKind.UNAUTHORIZED, ErrorKind.TLS})


def kind_for_status(status: int) -> ErrorKind | None:
    """The error kind of an HTTP status, or None for 200 (success). Pure: the fault table."""
    if status == 200:
        return None
    if status == 401:
        return ErrorKind.UNAUTHORIZED
    if status == 403:
        return ErrorKind.FORBIDDEN
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 408:
        return ErrorKind.TIMEOUT  # the server gave up waiting for the request: try again
    if status == 429:
        return ErrorKind.THROTTLED
    if status >= 500:
        return ErrorKind.SERVER_ERROR
    if status >= 400:
        return ErrorKind.CLIENT_ERROR
    # A 2xx other than 200 carries no tag details; a 3xx is never followed (the
    # API does not redirect: a redirect means a wrong --endpoint or a proxy in
    # the way); a final 1xx is a broken server. None of them is an answer.
    return ErrorKind.UNEXPECTED_STATUS


class ConfigError(Exception):
    """A usage or configuration problem: the CLI prints it in one line, exit 2."""


class RunStopping(Exception):
    """A failure every other request would share (``kind`` in :data:`FATAL_KINDS`): the
    run stops at once, resumable later. ``kind`` is the stop reason."""

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.UNAUTHORIZED) -> None:
        super().__init__(message)
        self.kind = kind


class AuthenticationFailed(RunStopping):
    """The credential was refused (401): the run stops, resumable later."""


class IamLoginFailed(AuthenticationFailed):
    """IAM refused the password login (4xx): user, password, account or project is wrong."""

    def __init__(self, message: str, *, status: int | None, error_code: str | None) -> None:
        super().__init__(message)
        self.method = "iam"
        self.status = status
        self.error_code = error_code


class TransportError(Exception):
    """No usable HTTP answer. ``kind`` is ``timeout``, ``network``, ``tls`` or ``too_large``.

    ``message`` is one line, bounded, with every known secret scrubbed out.
    ``requests`` is the HTTP requests actually sent: 0 when the credential
    could not be obtained (IAM unreachable) and nothing went to SWR.
    """

    def __init__(self, kind: ErrorKind, message: str, requests: int = 1) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.requests = requests


class IamUnavailable(TransportError):
    """The IAM login got no usable answer (network, timeout, 408, 429, 5xx): worth a retry.

    A transient ``network`` failure of the request that needed the token (or
    ``tls``, which stops the run, when IAM's certificate does not verify); no
    request went to SWR (``requests == 0``).
    """

    def __init__(
        self, message: str, *, status: int | None = None, kind: ErrorKind = ErrorKind.NETWORK
    ) -> None:
        super().__init__(kind, message, requests=0)
        self.method = "iam"
        self.status = status
