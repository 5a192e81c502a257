"""One crawl run, wired together: config -> auth -> client -> pool -> sink -> run.json.

This is the only module that knows every other one; it owns the lifetime of
the run (signals, the writer task, the progress bar) and turns the outcome
into an exit status.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import structlog

from crawler.config import CrawlConfig, effective_endpoint
from crawler.crawl.attempt import Attempts
from crawler.crawl.control import RunControl
from crawler.crawl.discover import Discoverer, DiscoverySource
from crawler.crawl.intake import Intake, Source
from crawler.crawl.limits import RateLimiter
from crawler.crawl.pool import Crawler
from crawler.crawl.retry import RetryPolicy
from crawler.errors import ConfigError
from crawler.http.client import SwrClient, new_session
from crawler.http.credentials import auth_from_env
from crawler.output.checkpoint import (
    DATASETS,
    Checkpoint,
    check_compatible,
    count_rows,
    has_run,
    load_run_file,
    lock_file_name,
    own_parts,
    read_checkpoint,
    run_file_name,
    targets_fingerprint,
)
from crawler.output.lock import OutputLock
from crawler.output.sink import OutputWriter
from crawler.run.progress import count_lines, show_progress, wanted
from crawler.run.report import RunReport, new_run_id
from crawler.run.stats import RunStats
from crawler.targets import InvalidTarget, Target, iter_targets

log = structlog.get_logger("crawler")

#: Seconds requests in flight get to finish after SIGINT/SIGTERM.
GRACE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class RunResult:
    """What the CLI needs after a run."""

    report: RunReport
    out_dir: Path

    @property
    def exit_code(self) -> int:
        """The process exit status (0 or 1)."""
        return self.report.exit_code


def _check_targets_readable(path: str | None) -> str:
    if path is None:
        raise ConfigError("--targets is required (a file, or - for stdin)")
    if path != "-" and not os.access(path, os.R_OK):
        reason = "no such file" if not os.path.exists(path) else "not readable"
        raise ConfigError(f"targets {path}: {reason}")
    if path != "-" and os.path.isdir(path):
        raise ConfigError(f"targets {path}: is a directory")
    return path


def _file_stem(run_id: str, shard: tuple[int, int]) -> str:
    index, count = shard
    return f"part-{run_id}" + (f"-s{index}of{count}" if count > 1 else "")


async def run_crawl(
    config: CrawlConfig,
    *,
    environ: Mapping[str, str] | None = None,
    items: Iterable[Target | InvalidTarget] | None = None,
    handle_signals: bool = True,
) -> RunResult:
    """Run one crawl (one segment of a run) to its end or its stop, and write ``run.json``.

    ``items`` replaces reading ``config.targets`` (used by the demo and tests).
    Raises :class:`ConfigError` before any request for a usage problem, a
    locked output, or an output that cannot be resumed.
    """
    # Installed first: from here on SIGINT/SIGTERM are queued and handled by
    # _watch_signals, never raised as KeyboardInterrupt in the middle of set-up.
    receiver = (
        anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        if handle_signals
        else nullcontext(None)
    )
    with receiver as signals:
        return await _run(config, os.environ if environ is None else environ, items, signals)


async def _run(
    config: CrawlConfig,
    environ: Mapping[str, str],
    items: Iterable[Target | InvalidTarget] | None,
    signals: AsyncIterator[int] | None,
) -> RunResult:
    targets_path: str | None = None
    if items is None and not config.discover:
        targets_path = _check_targets_readable(config.targets)
        items = iter_targets(targets_path, config.targets_format)
    endpoint = effective_endpoint(config)
    out_dir = Path(config.out)
    session = new_session(timeout=config.timeout, max_connections=config.concurrency)
    lock = OutputLock(out_dir / lock_file_name(config.shard))
    try:
        auth = auth_from_env(environ, region=config.region, session=session)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before any task
            lock.acquire()
        except OSError as exc:
            raise ConfigError(f"out {out_dir}: {exc.strerror or exc}") from None
    except BaseException:
        await session.close()
        raise
    try:
        client = SwrClient(
            endpoint,
            auth,
            timeout=config.timeout,
            max_connections=config.concurrency,
            session=session,
        )
        try:
            checkpoint, fingerprint = await _open_output(config, out_dir, targets_path)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await auth.aclose()
                await session.close()
            raise
        return await _crawl(
            config,
            endpoint,
            out_dir,
            items,
            client,
            auth,
            session,
            signals,
            checkpoint,
            fingerprint,
        )
    finally:
        lock.release()


async def _open_output(
    config: CrawlConfig, out_dir: Path, targets_path: str | None
) -> tuple[Checkpoint, str | None]:
    """Refuse an output that holds another run; on --resume, read what it recorded."""
    if not config.resume and has_run(out_dir, config.shard):
        raise ConfigError(
            f"out {out_dir} already holds a run: add --resume to continue it, or give another --out"
        )
    fingerprint = None
    if targets_path is not None and targets_path != "-":
        fingerprint = await anyio.to_thread.run_sync(targets_fingerprint, targets_path)
    if not config.resume:
        return Checkpoint(), fingerprint
    previous = load_run_file(out_dir, config.shard)
    unchecked = (
        "targets from the registry (--discover)"
        if config.discover
        else ("targets from stdin" if targets_path == "-" else None)
    )
    check_compatible(previous, out_dir / run_file_name(config.shard), fingerprint, unchecked)
    started = anyio.current_time()
    checkpoint = await anyio.to_thread.run_sync(read_checkpoint, out_dir, config.shard)
    checkpoint.previous = previous
    log.info(
        "crawl.resume_read",
        recorded=len(checkpoint.recorded),
        tags_rows=checkpoint.tags_rows,
        errors_kept=checkpoint.errors_kept,
        transient_dropped=sum(checkpoint.transient_dropped.values()),
        files_rewritten=checkpoint.files_rewritten,
        tmp_removed=checkpoint.tmp_removed,
        seconds=round(anyio.current_time() - started, 3),
    )
    return checkpoint, fingerprint


class _Stops:
    """The two ways a run is stopped early, and why."""

    def __init__(self) -> None:
        #: Gets a deadline at the first signal: requests in flight get GRACE_SECONDS.
        self.crawl = anyio.CancelScope()
        #: Cancelled by a second signal or an output failure: stop at once.
        self.work = anyio.CancelScope()
        self.output_error: OSError | None = None


async def _crawl(
    config: CrawlConfig,
    endpoint: str,
    out_dir: Path,
    items: Iterable[Target | InvalidTarget] | None,
    client: SwrClient,
    auth: Any,
    session: Any,
    signals: AsyncIterator[int] | None,
    checkpoint: Checkpoint,
    fingerprint: str | None,
) -> RunResult:
    run_id = new_run_id()
    stats = RunStats()
    report = RunReport(
        run_id=run_id,
        config=config,
        endpoint=endpoint,
        auth_method=auth.method,
        started_at=datetime.now(UTC),
        stats=stats,
        previous=checkpoint.previous,
        targets_sha256=fingerprint,
        run_file=run_file_name(config.shard),
    )
    writer = OutputWriter(
        out_dir,
        run_id,
        file_stem=_file_stem(run_id, config.shard),
        commit_seconds=config.commit_seconds,
        file_rows=config.file_rows,
    )
    control = RunControl()
    stops = _Stops()
    attempts = Attempts(
        limiter=RateLimiter(config.rate, config.burst),
        policy=RetryPolicy(config.max_attempts, config.backoff_initial, config.backoff_max),
        concurrency=config.concurrency,
        stats=stats,
        control=control,
        rng=random.Random(config.seed),
    )
    crawler = Crawler(
        fetcher=client,
        sink=writer,
        attempts=attempts,
        concurrency=config.concurrency,
        stats=stats,
    )
    recorded = checkpoint.recorded if config.resume else None
    intake = Intake(items or (), stats, shard=config.shard, recorded=recorded)
    source: Source = intake
    discovery: DiscoverySource | None = None
    if config.discover:
        discoverer = Discoverer(client, attempts, concurrency=min(4, config.concurrency))
        source = discovery = DiscoverySource(discoverer, intake, control, config.namespaces)
    started = report.monotonic_start = anyio.current_time()
    try:
        report.totals = await anyio.to_thread.run_sync(count_rows, out_dir, config.shard)
        report.write(out_dir)
        log.info(
            "crawl.started",
            run_id=run_id,
            resumed=checkpoint.previous is not None,
            endpoint=endpoint,
            auth_method=auth.method,
            out=str(out_dir),
            concurrency=config.concurrency,
            rate=config.rate,
        )
        async with anyio.create_task_group() as services:
            if signals is not None:
                services.start_soon(_watch_signals, signals, control, stops)
            services.start_soon(_write, writer, control, stops)
            services.start_soon(_keep_report_current, report, out_dir, config.commit_seconds)
            if wanted(config.progress):
                services.start_soon(_progress, stats, config.targets)
            with stops.work:
                with stops.crawl:
                    await crawler.run(source)
                try:
                    await writer.flush(force=True)  # not shielded: a second signal cuts it short
                except OSError as exc:
                    _output_failed(exc, control, stops)
            services.cancel_scope.cancel()
        if discovery is not None:
            stats.discovery = discovery.discoverer.stats.as_dict()
            failures = discovery.discoverer.stats.failures
            if failures and control.stop_reason is None:
                # Some listings could not be read: targets may be missing, so the
                # run is not complete; --resume discovers again.
                control.stop_reason = f"discovery incomplete ({failures} listings failed)"
        # No writer thread runs any more: dropping the open files is safe.
        if stops.work.cancelled_caught or stops.output_error is not None:
            # On a failure the temporary file stays hidden; the next --resume removes it.
            with suppress(OSError):
                writer.abort()
    finally:
        with anyio.CancelScope(shield=True):
            await auth.aclose()
            await session.close()
            report.elapsed_seconds = anyio.current_time() - started
            report.ended_at = datetime.now(UTC)
            report.stop_reason = control.stop_reason
            report.error = _describe(stops.output_error)
            report.files = {
                "tags": [p.name for p in writer.tags.files],
                "errors": [p.name for p in writer.errors.files],
            }
            await _finish_report(report, out_dir, config.shard)
    log.info(
        "crawl.finished",
        run_id=run_id,
        complete=report.complete,
        stop_reason=report.stop_reason,
        exit_code=report.exit_code,
        **stats.as_dict(),
        elapsed_seconds=round(report.elapsed_seconds, 3),
    )
    return RunResult(report, out_dir)


async def _finish_report(report: RunReport, out_dir: Path, shard: tuple[int, int]) -> None:
    """Count what every segment published and write run.json (best effort on a full disk)."""
    try:
        report.totals = await anyio.to_thread.run_sync(count_rows, out_dir, shard)
        report.run_files = {
            name: [p.name for p in own_parts(out_dir / name, shard)] for name in DATASETS
        }
        report.write(out_dir)
    except OSError as exc:
        if report.error is None:
            report.error = _describe(exc)
        log.error("crawl.run_file_not_written", error=_describe(exc))


def _describe(exc: OSError | None) -> str | None:
    if exc is None:
        return None
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def _output_failed(exc: OSError, control: RunControl, stops: _Stops) -> None:
    """The output cannot be written (a full disk): stop at once, nothing half-written stays."""
    if stops.output_error is None:
        stops.output_error = exc
        log.error("crawl.output_failed", error=_describe(exc))
    control.stop("output error")
    stops.work.cancel()


async def _write(writer: OutputWriter, control: RunControl, stops: _Stops) -> None:
    try:
        await writer.run()
    except OSError as exc:
        _output_failed(exc, control, stops)


#: Fewest seconds between two interim writes of the run file.
REPORT_INTERVAL_MIN = 5.0


async def _keep_report_current(report: RunReport, out_dir: Path, commit_seconds: float) -> None:
    """Rewrite the run file now and then, so a segment that is SIGKILLed still
    leaves its request/retry/429 counts (as of its last write) for the next one."""
    while True:
        await anyio.sleep(max(commit_seconds, REPORT_INTERVAL_MIN))
        report.elapsed_seconds = anyio.current_time() - report.monotonic_start
        try:
            await anyio.to_thread.run_sync(report.write, out_dir, report.document())
        except OSError as exc:  # the writer task reports a full disk; this is best effort
            log.warning("crawl.run_file_not_written", error=_describe(exc))


async def _progress(stats: RunStats, targets: str | None) -> None:
    total: int | None = None
    if targets is not None:  # counted in a thread: a big file must not stall the event loop
        total = await anyio.to_thread.run_sync(count_lines, targets, abandon_on_cancel=True)
    await show_progress(stats, lambda: total)


async def _watch_signals(signals: AsyncIterator[int], control: RunControl, stops: _Stops) -> None:
    """First SIGINT/SIGTERM: stop taking work, give requests in flight a grace period.

    Second: stop at once (rows not yet published are dropped, never half-written).
    """
    first = True
    async for signum in signals:
        if first:
            first = False
            control.stop(f"signal {signal.Signals(signum).name}")
            log.warning("crawl.stopping", reason=control.stop_reason, grace=GRACE_SECONDS)
            stops.crawl.deadline = min(stops.crawl.deadline, anyio.current_time() + GRACE_SECONDS)
        else:
            control.stop_reason = "second signal"
            log.warning("crawl.stopping_now", reason="second signal")
            stops.work.cancel()
