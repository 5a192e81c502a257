"""Where an output lives: a local path, or ``s3://bucket/prefix`` on an S3-compatible store.

Object storage goes through pyarrow's own ``S3FileSystem`` (no S3 client of
ours), configured from the standard variables: ``AWS_ENDPOINT_URL`` (for
MinIO, Huawei OBS or a local server; absent: AWS itself), ``AWS_REGION``
(or ``AWS_DEFAULT_REGION``), ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY``
and, for temporary credentials, ``AWS_SESSION_TOKEN``. The keys are handed
to pyarrow and kept nowhere else: never in a location string (a URI with
user info is refused), a log event, ``run.json`` or an error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from crawler.errors import ConfigError

__all__ = ["S3_SCHEME", "is_object_store", "open_location"]

S3_SCHEME = "s3://"


def is_object_store(location: str) -> bool:
    """Whether ``location`` is an ``s3://`` URI."""
    return location.startswith(S3_SCHEME)


def open_location(location: str, environ: Mapping[str, str]) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path)`` for a local path or ``s3://bucket/prefix``.

    ConfigError (exit 2) for a malformed URI or ``AWS_ENDPOINT_URL``.
    """
    if not is_object_store(location):
        if "://" in location:
            raise ConfigError(
                f"{location!r}: only local paths and s3://bucket/prefix are supported"
            )
        return pafs.LocalFileSystem(), location
    parts = urlsplit(location)
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            "an s3:// location is s3://bucket/prefix: keys go in AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, never in the URI"
        )
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not bucket:
        raise ConfigError(f"{location!r}: no bucket (s3://bucket/prefix)")
    return _s3(environ), f"{bucket}/{prefix}" if prefix else bucket


def _s3(environ: Mapping[str, str]) -> pafs.S3FileSystem:
    options: dict[str, object] = {}
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        url = urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/"):
            raise ConfigError("AWS_ENDPOINT_URL must be http(s)://host[:port], without a path")
        if url.username or url.password:
            raise ConfigError("AWS_ENDPOINT_URL must not carry user info (keys go in AWS_*)")
        options["endpoint_override"] = url.netloc
        options["scheme"] = url.scheme
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    access_key = environ.get("AWS_ACCESS_KEY_ID")
    secret_key = environ.get("AWS_SECRET_ACCESS_KEY")
    if bool(access_key) != bool(secret_key):
        raise ConfigError("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither")
    if access_key:
        options["access_key"] = access_key
        options["secret_key"] = secret_key
        if environ.get("AWS_SESSION_TOKEN"):
            options["session_token"] = environ["AWS_SESSION_TOKEN"]
    return pafs.S3FileSystem(**options)
