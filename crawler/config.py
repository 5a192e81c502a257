"""Run configuration: one frozen object, loaded in one place.

Precedence, lowest first: built-in defaults < ``--config`` TOML file <
environment (``SWR_*``) < command-line flags. Credentials are not part of it:
they come from the environment only (see :mod:`crawler.http.credentials`), so a config
file or ``run.json`` can never hold a secret.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawler.errors import ConfigError


@dataclass(frozen=True, slots=True)
class CrawlConfig:
    """Everything a crawl needs to know, validated."""

    out: str = ""
    """Output directory (one run = one directory)."""
    targets: str | None = None
    """Targets file, ``-`` for stdin."""
    targets_format: str = "auto"
    """``auto`` (by extension), ``text``, ``csv`` or ``jsonl``."""
    discover: bool = False
    """Take the targets from the registry's list APIs instead of a file."""
    namespaces: tuple[str, ...] = ()
    """With ``discover``: only these namespaces (default: every visible one)."""
    endpoint: str | None = None
    """SWR API endpoint URL; derived from ``region`` when unset."""
    region: str | None = None
    """Region id, e.g. ``cn-north-4``."""
    concurrency: int = 16
    """Most requests in flight at once."""
    rate: float = 20.0
    """Most requests per second, retries included; 0 = unlimited."""
    burst: int = 1
    """Token-bucket burst: requests that may go at once after idling."""
    max_attempts: int = 5
    """Attempts per target, the first included."""
    backoff_initial: float = 0.5
    """First backoff ceiling in seconds (full jitter below it)."""
    backoff_max: float = 30.0
    """Largest backoff, and the cap on a server's Retry-After."""
    timeout: float = 30.0
    """Per-request total timeout in seconds."""
    resume: bool = False
    """Continue a run in the same ``out``, skipping targets already recorded."""
    shard: tuple[int, int] = (0, 1)
    """``(index, count)``: this process takes the targets whose hash % count == index."""
    log_format: str = "auto"
    """``json``, ``console`` or ``auto`` (console on a terminal)."""
    progress: bool = True
    """Show a progress bar (only ever on a terminal)."""
    commit_seconds: float = 10.0
    """Most seconds a finished row waits before it is in a complete Parquet file."""
    file_rows: int = 250_000
    """Most rows in one Parquet file."""
    seed: int | None = None
    """Seed of the backoff jitter; None = from the OS (tests pin it)."""

    def as_public_dict(self) -> dict[str, Any]:
        """The effective configuration for run.json (holds no secret by construction)."""
        data = dataclasses.asdict(self)
        data["shard"] = f"{self.shard[0]}/{self.shard[1]}"
        return data


REGION_ENDPOINT_OVERRIDES = {"eu-west-101": "https://swr-api.eu-west-101.myhuaweicloud.eu"}


def endpoint_for_region(region: str) -> str:
    """The public SWR API endpoint of a region."""
    if region in REGION_ENDPOINT_OVERRIDES:
        return REGION_ENDPOINT_OVERRIDES[region]
    return f"https://swr-api.{region}.myhuaweicloud.com"


_FIELDS = {f.name: f for f in dataclasses.fields(CrawlConfig)}
#: Settings a config file or the environment may give (not the per-run ones).
_SETTABLE = tuple(name for name in _FIELDS if name not in {"seed"})
ENV_PREFIX = "SWR_"


def env_name(field: str) -> str:
    """The environment variable of a setting, e.g. ``SWR_CONCURRENCY``."""
    return ENV_PREFIX + field.upper()


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``."""
    index_text, sep, count_text = text.partition("/")
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        index, count = -1, 0
    if not sep or count < 1 or not 0 <= index < count:
        raise ConfigError(f"shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4")
    return index, count


def _coerce(name: str, value: Any, source: str) -> Any:
    default = _FIELDS[name].default
    try:
        if name == "shard":
            return parse_shard(str(value)) if not isinstance(value, tuple) else value
        if name == "namespaces":
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(item).strip() for item in items if str(item).strip())
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        return None if value is None else str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {name} = {value!r} is not a valid value") from None


def load_toml(path: str) -> dict[str, Any]:
    """The settings of a TOML config file: top-level keys or a ``[crawl]`` table."""
    try:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: not valid TOML ({exc})") from None
    table = data.get("crawl", data)
    if not isinstance(table, dict):
        raise ConfigError(f"config {path}: [crawl] must be a table")
    settings: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if isinstance(value, dict):
            continue  # other tables (e.g. [sandbox]) belong to other commands
        if name not in _SETTABLE:
            raise ConfigError(f"config {path}: unknown setting {key!r}")
        settings[name] = _coerce(name, value, f"config {path}")
    return settings


def load_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings given as ``SWR_<NAME>`` environment variables."""
    settings: dict[str, Any] = {}
    for name in _SETTABLE:
        variable = env_name(name)
        if variable in environ and environ[variable] != "":
            settings[name] = _coerce(name, environ[variable], variable)
    return settings


def build_config(
    flags: Mapping[str, Any],
    *,
    config_path: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> CrawlConfig:
    """Merge defaults < TOML < environment < flags (flags that are None are unset)."""
    merged: dict[str, Any] = {}
    if config_path:
        merged.update(load_toml(config_path))
    merged.update(load_env(os.environ if environ is None else environ))
    for name, value in flags.items():
        if value is not None:
            merged[name] = _coerce(name, value, f"--{name.replace('_', '-')}")
    config = CrawlConfig(**merged)
    validate(config)
    return config


def validate(config: CrawlConfig) -> None:
    """Reject settings no run could use, with a message naming the setting."""
    checks = [
        (bool(config.out), "--out is required"),
        (config.concurrency >= 1, f"concurrency must be >= 1 (got {config.concurrency})"),
        (config.rate >= 0, f"rate must be >= 0 (got {config.rate})"),
        (config.burst >= 1, f"burst must be >= 1 (got {config.burst})"),
        (config.max_attempts >= 1, f"max-attempts must be >= 1 (got {config.max_attempts})"),
        (config.backoff_initial >= 0, "backoff-initial must be >= 0"),
        (
            config.backoff_max >= config.backoff_initial,
            "backoff-max must be >= backoff-initial",
        ),
        (config.timeout > 0, f"timeout must be > 0 (got {config.timeout})"),
        (config.commit_seconds > 0, "commit-seconds must be > 0"),
        (config.file_rows >= 1, "file-rows must be >= 1"),
        (
            config.log_format in {"auto", "json", "console"},
            f"log-format must be json, console or auto (got {config.log_format!r})",
        ),
        (
            config.targets_format in {"auto", "text", "csv", "jsonl"},
            f"targets-format must be auto, text, csv or jsonl (got {config.targets_format!r})",
        ),
        (
            bool(config.endpoint or config.region),
            "no endpoint: give --endpoint URL or --region ID (e.g. cn-north-4)",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    if config.discover and config.targets is not None:
        raise ConfigError("give --targets or --discover, not both")
    if config.namespaces and not config.discover:
        raise ConfigError("--namespace only applies with --discover")
    if config.endpoint and not config.endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"endpoint {config.endpoint!r}: must start with http:// or https://")


def effective_endpoint(config: CrawlConfig) -> str:
    """The endpoint to call: ``endpoint``, else the region's public one."""
    if config.endpoint:
        return config.endpoint.rstrip("/")
    assert config.region is not None  # validate() guarantees one of the two
    return endpoint_for_region(config.region)
