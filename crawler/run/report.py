"""``run.json`` and the end-of-run summary: what a run did, for people and for machines.

``run.json`` holds counts, timings and the effective configuration; never a
credential (the configuration object has no field for one).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from crawler import __version__
from crawler.config import CrawlConfig
from crawler.crawl.limits import GatewayLimit
from crawler.errors import DEFINITIVE_KINDS, ErrorKind
from crawler.output.counts import DatasetCounts
from crawler.output.layout import Layout
from crawler.output.schema import SCHEMA_VERSION
from crawler.run.stats import RunStats

SEGMENT_KEYS = ("run_id", "started_at", "ended_at", "complete", "stop_reason", "counts", "files")


#: Counters that add up over the segments of a resumed run.
SUMMED = ("requests", "retries", "throttled_429")


@dataclass(slots=True)
class RunReport:
    """Everything ``run.json`` says about a run: this process's segment and the whole run.

    A run may take several processes (segments): the first, then one per
    ``--resume``. The document keeps one entry per segment under
    ``segments`` and, at the top level, the whole run: the first segment's
    ``run_id`` and start, counts over the published files (``ok`` = rows of
    ``tags``, ``errors`` by kind over the final ``errors`` files, ``targets``
    = targets recorded), requests/retries/429s summed over the segments, and
    ``complete`` as of the last segment.
    """

    run_id: str
    config: CrawlConfig
    endpoint: str
    auth_method: str
    started_at: datetime
    stats: RunStats
    ended_at: datetime | None = None
    elapsed_seconds: float = 0.0
    stop_reason: str | None = None
    error: str | None = None
    """Why the output could not be written (a full disk), if that stopped the run."""
    files: dict[str, list[str]] = field(default_factory=dict)
    """The files this segment published."""
    previous: dict[str, Any] | None = None
    """The ``run.json`` of the earlier segments (None for the first)."""
    targets_sha256: str | None = None
    totals: DatasetCounts | None = None
    """What every segment's published files hold (set by the runner)."""
    run_files: dict[str, list[str]] | None = None
    """Every published file of the run, all segments (set by the runner at the end)."""
    published: tuple[int, int] | None = None
    """Rows of ``tags`` and of ``errors`` this segment put into published files."""
    monotonic_start: float = 0.0
    """The event loop's clock when the segment started (for interim elapsed times)."""
    gateway_limit: GatewayLimit | None = None
    """The lowest limit the gateway's 429 messages stated in this segment, if any."""
    notices: list[str] = field(default_factory=list)
    """Warnings the runner found (a --namespace that matched nothing, say)."""

    @property
    def complete(self) -> bool:
        """Every admitted target has a row and nothing stopped the run."""
        return self.ended_at is not None and self.stop_reason is None

    @property
    def errors(self) -> dict[str, int]:
        """Error rows by kind over the whole run (this segment's until totals are known)."""
        if self.totals is not None:
            return self.totals.errors
        return {str(kind): n for kind, n in self.stats.errors.items()}

    @property
    def targets(self) -> int:
        """Targets with a row over the whole run (this segment's until totals are known)."""
        return self.totals.targets if self.totals is not None else self.stats.targets

    @property
    def error_ratio(self) -> float:
        """The share of the targets that ended in an error row of any kind."""
        return sum(self.errors.values()) / self.targets if self.targets else 0.0

    @property
    def too_many_errors(self) -> bool:
        """More error rows than ``--max-error-ratio`` allows."""
        return self.error_ratio > self.config.max_error_ratio

    def warnings(self) -> list[str]:
        """What a run that ended may still be wrong about, although nothing failed: an
        input with nothing to crawl, every target not found, too many error rows, and
        the runner's notices. Logged, in the summary and in run.json."""
        found = [*self._nothing_to_crawl(), *self.notices]
        not_found = self.errors.get("not_found", 0)
        if self.targets and not_found == self.targets:
            found.append(
                f"every target ({not_found}) ended not_found: is this the right endpoint, "
                "region and account for these targets?"
            )
        if self.too_many_errors:
            found.append(
                f"{sum(self.errors.values())} of {self.targets} targets ended in an error row "
                f"({self.error_ratio:.1%}), more than --max-error-ratio "
                f"{self.config.max_error_ratio:g}"
            )
        return found

    def _nothing_to_crawl(self) -> list[str]:
        """An input with nothing to crawl: no target at all, or only invalid ones."""
        counts = self.stats
        skipped = counts.duplicates + counts.skipped_resume + counts.skipped_shard
        invalid = counts.errors.get(ErrorKind.INVALID_TARGET.value, 0)
        if counts.targets == 0 and skipped == 0 and self.ended_at is not None:
            where = (
                "the registry listed no tag"
                if self.config.discover
                else ("the targets input holds no target (empty, or only blank lines and comments)")
            )
            return [where]
        if counts.targets > 0 and invalid == counts.targets:
            return [f"every target ({invalid}) is invalid: see the invalid_target rows in errors/"]
        return []

    @property
    def exit_code(self) -> int:
        """0 when complete, every failure was definitive and the error ratio is within
        ``--max-error-ratio``, else 1."""
        if not self.complete or self.too_many_errors:
            return 1
        transient = {k for k in self.errors if k not in DEFINITIVE_KINDS}
        return 1 if any(self.errors[k] for k in transient) else 0

    def earlier_segments(self) -> list[dict[str, Any]]:
        """The segments recorded by earlier processes; one that never ended is marked killed."""
        previous = self.previous
        if previous is None:
            return []
        segments = previous.get("segments")
        if not isinstance(segments, list):  # a run.json written before segments existed
            segments = [{k: previous.get(k) for k in SEGMENT_KEYS}]
        marked = []
        for segment in segments:
            segment = dict(segment)
            if segment.get("ended_at") is None:
                segment["complete"] = False
                segment["stop_reason"] = segment.get("stop_reason") or "killed"
            marked.append(segment)
        return marked

    def segment(self) -> dict[str, Any]:
        """This process's entry in ``segments``."""
        return {
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "complete": self.complete,
            "stop_reason": self.stop_reason,
            "error": self.error,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "counts": self.stats.as_dict(),
            "files": self.files,
        }

    def as_dict(self) -> dict[str, Any]:
        """The JSON document."""
        segments = [*self.earlier_segments(), self.segment()]
        first = segments[0]
        counts = self.stats.as_dict()
        for name in SUMMED:
            counts[name] = sum(int((s.get("counts") or {}).get(name) or 0) for s in segments)
        by_api: Counter[str] = Counter()
        for segment in segments:
            by_api.update((segment.get("counts") or {}).get("requests_by_api") or {})
        counts["requests_by_api"] = dict(sorted(by_api.items()))
        errors = self.errors
        counts["errors"] = dict(sorted(errors.items()))
        counts["errors_total"] = sum(errors.values())
        if self.totals is not None:
            counts["ok"] = self.totals.ok
            counts["targets"] = self.totals.targets
        elapsed = sum(float(s.get("elapsed_seconds") or 0.0) for s in segments)
        return {
            "run_id": first["run_id"],
            "crawler_version": __version__,
            "schema_version": SCHEMA_VERSION,
            "targets_sha256": self.targets_sha256,
            "started_at": first["started_at"],
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "complete": self.complete,
            "stop_reason": self.stop_reason,
            "exit_code": self.exit_code if self.ended_at else None,
            "warnings": self.warnings(),
            "error_ratio": round(self.error_ratio, 6),
            "endpoint": self.endpoint,
            "auth_method": self.auth_method,
            "counts": counts,
            "elapsed_seconds": round(elapsed, 3),
            "rows_per_second": round(self.stats.done / self.elapsed_seconds, 1)
            if self.elapsed_seconds > 0
            else 0.0,
            "gateway_limit": None
            if self.gateway_limit is None
            else {
                "limit": self.gateway_limit.limit,
                "window_seconds": self.gateway_limit.window,
                "requests_per_second": round(self.gateway_limit.per_second, 3),
            },
            "config": self.config.as_public_dict(),
            "files": self.files if self.run_files is None else self.run_files,
            "segments": segments,
        }

    def document(self) -> bytes:
        """The run file's bytes, as of now (build it on the event loop: it reads live counters)."""
        return orjson.dumps(self.as_dict(), option=orjson.OPT_INDENT_2) + b"\n"

    def write(self, layout: Layout, document: bytes | None = None) -> str:
        """Write the run file whole or not at all (``document`` if given, else built now)."""
        path = layout.run_file()
        with layout.storage.create(path) as file:
            file.stream.write(self.document() if document is None else document)
        return path

    def summary_lines(self) -> list[str]:
        """A short human summary; its ``ok`` and ``errors`` are rows in published files."""
        counts = self.stats
        fetched_errors = sum(counts.errors.values())
        ok, failed = self.published if self.published is not None else (counts.ok, fetched_errors)
        by_kind = counts.errors
        if self.totals is not None and self.previous is None:
            by_kind = Counter(self.totals.errors)  # one segment: what its files hold
        errors = ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())) or "none"
        state = "complete" if self.complete else f"INCOMPLETE ({self.stop_reason})"
        rate = counts.done / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0
        lines = [
            f"run {self.run_id}: {state} in {self.elapsed_seconds:.1f}s ({rate:.0f} rows/s)",
            f"  targets {counts.targets}: ok {ok}, errors {failed}"
            f" ({errors}); duplicates dropped {counts.duplicates}",
            f"  requests {counts.requests}, retries {counts.retries}, 429s {counts.throttled}",
        ]
        lost_ok, lost_errors = counts.ok - ok, fetched_errors - failed
        if lost_ok > 0 or lost_errors > 0:
            lines.insert(
                2,
                f"  not published: ok {max(lost_ok, 0)}, errors {max(lost_errors, 0)} "
                "(fetched, but the output failed first; --resume fetches them again)",
            )
        if self.previous is not None:
            lines.insert(1, f"  resumed: {counts.skipped_resume} targets already recorded, skipped")
        if self.previous is not None and self.totals is not None:
            whole = self.as_dict()
            total_errors = ", ".join(f"{k} {v}" for k, v in self.totals.errors.items()) or "none"
            lines.append(
                f"  whole run {whole['run_id']} ({len(whole['segments'])} segments): targets "
                f"{self.totals.targets}: ok {self.totals.ok}, errors ({total_errors})"
            )
        lines += [f"  warning: {warning}" for warning in self.warnings()]
        return lines
