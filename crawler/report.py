"""``run.json`` and the end-of-run summary: what a run did, for people and for machines.

``run.json`` holds counts, timings and the effective configuration; never a
credential (the configuration object has no field for one).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from crawler import __version__
from crawler.config import CrawlConfig
from crawler.errors import DEFINITIVE_KINDS
from crawler.schema import SCHEMA_VERSION
from crawler.sink import atomic_write_bytes
from crawler.stats import RunStats

RUN_FILE = "run.json"


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id such as ``20261127T073100Z-3fa9c1``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(slots=True)
class RunReport:
    """Everything ``run.json`` says about one run."""

    run_id: str
    config: CrawlConfig
    endpoint: str
    auth_method: str
    started_at: datetime
    stats: RunStats
    ended_at: datetime | None = None
    elapsed_seconds: float = 0.0
    stop_reason: str | None = None
    files: dict[str, list[str]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every admitted target has a row and nothing stopped the run."""
        return self.ended_at is not None and self.stop_reason is None

    @property
    def exit_code(self) -> int:
        """0 when complete and every failure was definitive, else 1."""
        if not self.complete:
            return 1
        transient = {k for k in self.stats.errors if k not in DEFINITIVE_KINDS}
        return 1 if any(self.stats.errors[k] for k in transient) else 0

    def as_dict(self) -> dict[str, Any]:
        """The JSON document."""
        elapsed = self.elapsed_seconds
        return {
            "run_id": self.run_id,
            "crawler_version": __version__,
            "schema_version": SCHEMA_VERSION,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "complete": self.complete,
            "stop_reason": self.stop_reason,
            "exit_code": self.exit_code if self.ended_at else None,
            "endpoint": self.endpoint,
            "auth_method": self.auth_method,
            "counts": self.stats.as_dict(),
            "elapsed_seconds": round(elapsed, 3),
            "rows_per_second": round(self.stats.done / elapsed, 1) if elapsed > 0 else 0.0,
            "config": self.config.as_public_dict(),
            "files": self.files,
        }

    def write(self, out_dir: Path) -> Path:
        """Write ``run.json`` atomically."""
        path = out_dir / RUN_FILE
        atomic_write_bytes(path, orjson.dumps(self.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
        return path

    def summary_lines(self) -> list[str]:
        """A short human summary."""
        counts = self.stats
        errors = ", ".join(f"{k} {v}" for k, v in sorted(counts.errors.items())) or "none"
        state = "complete" if self.complete else f"INCOMPLETE ({self.stop_reason})"
        rate = counts.done / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0
        return [
            f"run {self.run_id}: {state} in {self.elapsed_seconds:.1f}s ({rate:.0f} rows/s)",
            f"  targets {counts.targets}: ok {counts.ok}, errors {sum(counts.errors.values())}"
            f" ({errors}); duplicates dropped {counts.duplicates}",
            f"  requests {counts.requests}, retries {counts.retries}, 429s {counts.throttled}",
        ]
