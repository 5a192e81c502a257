"""TLS for the transport: its one verifying context."""

from __future__ import annotations

import ssl

__all__ = ["client_context"]


def client_context() -> ssl.SSLContext:
    """A context that verifies the server: the system's CAs (or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR``), host names checked, HTTP/1.1 offered by ALPN."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context
