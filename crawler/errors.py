"""The error taxonomy: how a target that did not end in a 200 is classified.

Every target that fails ends as one row of ``errors/*.parquet`` with one of the
kinds below in ``error_kind``. Kinds fall in three groups::

    ErrorKind
    ├── definitive (the answer is final: exit 0, never retried, kept on --resume)
    │   ├── invalid_target   the line could not be parsed or broke the naming rules
    │   ├── not_found        404
    │   ├── forbidden        403
    │   └── client_error     400 and any other 4xx not listed here
    ├── transient (retried with backoff; exit 1 when attempts run out; retried on --resume)
    │   ├── throttled        429
    │   ├── server_error     500, 502, 503, 504 (and any other 5xx)
    │   ├── timeout          no complete answer within --timeout
    │   ├── network          connection refused/reset, TLS or DNS failure
    │   └── decode           200 whose body is not a JSON object
    └── fatal for the run
        └── unauthorized     401: with a static credential every other request
                             would fail too, so the run stops (exit 1, resumable)
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


def kind_for_status(status: int) -> ErrorKind | None:
    """The error kind of an HTTP status, or None for 200 (success).

    Pure: the decision table of DESIGN.md's fault table.
    """
    if status == 200:
        return None
    if status == 401:
        return ErrorKind.UNAUTHORIZED
    if status == 403:
        return ErrorKind.FORBIDDEN
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 429:
        return ErrorKind.THROTTLED
    if status >= 500:
        return ErrorKind.SERVER_ERROR
    # 2xx other than 200 carry no tag details; 3xx are not followed (the API
    # never redirects); both are reported rather than guessed at.
    return ErrorKind.CLIENT_ERROR


class ConfigError(Exception):
    """A usage or configuration problem: the CLI prints it in one line, exit 2."""


class AuthenticationFailed(Exception):
    """The credential was refused (401): the run stops, resumable later."""
