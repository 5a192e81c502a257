"""TLS for the transport: its own verifying context, and aiohttp imported without its defaults.

aiohttp builds two default contexts when it is imported (one verifying, one not), and each
loads the system's CA file: ~25 ms apiece on our 2-core machine, most of aiohttp's import
and ~15 % of a crawl's start-up, spent even on an ``http://`` endpoint. The transport never
uses them: it passes :func:`client_context` (built once, at its first ``https://`` request)
to every request. So :func:`default_contexts_without_ca_files` lets aiohttp build them
without loading CA files: a verifying context without CAs trusts no certificate, so were
one ever used by mistake, every handshake would fail, never pass unverified.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["client_context", "default_contexts_without_ca_files"]


def client_context() -> ssl.SSLContext:
    """A context that verifies the server: the system's CAs (or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR``), host names checked, HTTP/1.1 offered by ALPN (as aiohttp's own)."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


@contextmanager
def default_contexts_without_ca_files() -> Iterator[None]:
    """While this lasts, a new SSL context loads no default CA file (see the module's text).

    For the import of aiohttp only: it is global state (done at import time, before any
    connection is made).
    """
    own = vars(ssl.SSLContext).get("set_default_verify_paths")
    ssl.SSLContext.set_default_verify_paths = _load_nothing  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        if own is None:
            del ssl.SSLContext.set_default_verify_paths
        else:
            ssl.SSLContext.set_default_verify_paths = own  # type: ignore[method-assign]


def _load_nothing(context: ssl.SSLContext) -> None:
    """``set_default_verify_paths`` that loads no CA file."""
