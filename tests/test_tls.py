"""The transport's TLS: aiohttp's unused default contexts load no CA file; ours does."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from crawler.http.tls import client_context, default_contexts_without_ca_files
from tests.test_hostile import self_signed_certificate


def test_contexts_made_during_the_import_window_load_no_ca_file_and_ours_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside the window a default context trusts nothing (it would fail every handshake);
    after it, defaults load their CA file again, and the transport's own context always does."""
    cert_file, _ = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    with default_contexts_without_ca_files():
        inside = ssl.create_default_context()
    assert inside.cert_store_stats()["x509"] == 0
    assert inside.verify_mode == ssl.CERT_REQUIRED
    assert "set_default_verify_paths" not in vars(ssl.SSLContext)  # the library's own again
    assert ssl.create_default_context().cert_store_stats()["x509"] == 1
    ours = client_context()
    assert ours.cert_store_stats()["x509"] == 1
    assert (ours.verify_mode, ours.check_hostname) == (ssl.CERT_REQUIRED, True)
