"""The transport's TLS context: it verifies, and trusts what SSL_CERT_FILE names."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from crawler.http.tls import client_context
from tests.test_hostile import self_signed_certificate


def test_the_transport_context_verifies_and_loads_ssl_cert_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Certificates and host names are checked, HTTP/1.1 is offered, and the CA file that
    SSL_CERT_FILE names is what it trusts."""
    cert_file, _ = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    ours = client_context()
    assert ours.cert_store_stats()["x509"] == 1
    assert (ours.verify_mode, ours.check_hostname) == (ssl.CERT_REQUIRED, True)
