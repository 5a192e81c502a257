"""One crawl run, wired together: config -> auth -> client -> pool -> sink -> run.json.

This is the only module that knows every other one. :func:`run_crawl` builds
the run's parts once (:func:`_open_run`, whose clean-ups go on one
``AsyncExitStack``), runs the pool beside the services a run needs (signals,
the writer task, interim run files, the progress bar), and writes the run
file once at the end from what happened (:meth:`_Run.report`). Every stop
goes through one :class:`~crawler.crawl.control.RunControl`.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import structlog

from crawler.config import CrawlConfig, discover_mode, effective_endpoint
from crawler.crawl.control import RunControl
from crawler.crawl.discover import DiscoverySource, discoverer_for
from crawler.crawl.intake import Intake, Source
from crawler.crawl.limits import RateLimiter
from crawler.crawl.lister import Lister
from crawler.crawl.planned import PlannedSource
from crawler.crawl.pool import Crawler
from crawler.errors import ConfigError
from crawler.http.credentials import Auth
from crawler.output.compat import (
    check_compatible,
    check_layout,
    has_run,
    load_run_file,
    targets_fingerprint,
)
from crawler.output.counts import DatasetCounts, count_rows
from crawler.output.layout import DATASETS, Layout, new_run_id, shard_suffix
from crawler.output.lock import RunLock
from crawler.output.sink import OutputWriter
from crawler.output.storage import is_object_store
from crawler.run.attempts import attempts_for
from crawler.run.client import open_client
from crawler.run.progress import count_lines, show_progress, wanted
from crawler.run.report import RunReport
from crawler.run.stats import RunStats
from crawler.targets import InvalidTarget, Target, iter_targets

if TYPE_CHECKING:
    # Imported where they are needed (a resume, an s3:// output, --metrics-file): pyarrow
    # and prometheus_client, which they import, cost a crawl ~100 ms before its first request.
    from crawler.output.checkpoint import Checkpoint
    from crawler.output.objectstore import ObjectRunLock
    from crawler.run.metrics import RunMetrics

log = structlog.get_logger("crawler")
T = TypeVar("T")
R = TypeVar("R")

#: Seconds requests in flight get to finish after a stop (a signal, a refused credential).
GRACE_SECONDS = 5.0
#: How often the grace period looks whether anything is still in flight.
GRACE_POLL_SECONDS = 0.02
#: Signals that stop a run gracefully (a second one stops it at once).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Fewest seconds between two interim writes of the run file.
REPORT_INTERVAL_MIN = 5.0
#: Seconds between two writes of --metrics-file (the contract says at most 5).
METRICS_INTERVAL = 2.0
#: Seconds between two crawl.activity log lines (rows/s, in flight, rate, retries, 429s).
ACTIVITY_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class RunResult:
    """What the CLI needs after a run."""

    report: RunReport
    out_dir: Path

    @property
    def exit_code(self) -> int:
        """The process exit status (0 or 1)."""
        return self.report.exit_code


class Interrupted(Exception):
    """A stop arrived while the run was being set up: nothing was crawled or written."""


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
    locked output, or an output that cannot be resumed, and
    :class:`Interrupted` for a signal during set-up.
    """
    # Installed first: from here on SIGINT/SIGTERM/SIGHUP are queued and handled
    # by _watch_signals, never raised as KeyboardInterrupt in the middle of set-up.
    receiver = anyio.open_signal_receiver(*STOP_SIGNALS) if handle_signals else nullcontext(None)
    control = RunControl()
    with receiver as signals:
        outcome: RunResult | Exception
        async with anyio.create_task_group() as watcher:
            if signals is not None:
                watcher.start_soon(_watch_signals, signals, control)
            try:
                outcome = await _set_up_and_run(config, environ, items, control)
            except Exception as exc:  # raised below, outside the task group: not in a group
                outcome = exc
            finally:
                watcher.cancel_scope.cancel()
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


async def _set_up_and_run(
    config: CrawlConfig,
    environ: Mapping[str, str] | None,
    items: Iterable[Target | InvalidTarget] | None,
    control: RunControl,
) -> RunResult:
    async with AsyncExitStack() as stack:
        with control.cancel_on_stop(anyio.CancelScope()) as setup:
            run = await _open_run(stack, config, environ, items, control)
        if setup.cancelled_caught:
            raise Interrupted(control.stop_reason)
        return await run.execute()


# --------------------------------------------------------------------------- set-up


async def _open_run(
    stack: AsyncExitStack,
    config: CrawlConfig,
    environ: Mapping[str, str] | None,
    items: Iterable[Target | InvalidTarget] | None,
    control: RunControl,
) -> _Run:
    """Build every part of the run once; each clean-up goes on ``stack``."""
    targets_path: str | None = None
    interrupt: Callable[[], None] = _nothing
    if items is None and not config.discover:
        targets_path = _check_targets_readable(config.targets)
        reader = iter_targets(targets_path, config.targets_format)
        stack.callback(reader.close)
        items, interrupt = reader, reader.interrupt
    out_dir = Path(config.out)
    client = await open_client(config, os.environ if environ is None else environ, stack)
    auth = client.auth
    layout, lock = _output(config, os.environ if environ is None else environ)
    try:
        if not is_object_store(config.out):
            out_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before any task
        lock.acquire()
    except OSError as exc:
        raise ConfigError(f"out {config.out}: {exc.strerror or exc}") from None
    stack.callback(lock.release)
    checkpoint, fingerprint = await _open_output(config, layout, targets_path)
    endpoint = effective_endpoint(config)
    run_id = new_run_id()
    stats = RunStats()
    writer = OutputWriter(
        layout,
        run_id,
        commit_seconds=config.commit_seconds,
        file_rows=config.file_rows,
    )
    limiter = RateLimiter(config.rate, config.burst)
    attempts = attempts_for(config, stats=stats, control=control, limiter=limiter)
    crawler = Crawler(
        fetcher=client,
        sink=writer,
        attempts=attempts,
        concurrency=config.concurrency,
        stats=stats,
    )
    recorded = checkpoint.recorded if checkpoint is not None else None
    intake = Intake(items or (), stats, shard=config.shard, recorded=recorded, interrupt=interrupt)
    discovery = None
    if config.discover:
        discoverer = discoverer_for(config, client, attempts, mode=discover_mode(config))
        discovery = DiscoverySource(discoverer, intake, control)
    planned = None
    if not config.discover and config.mode == "auto":
        spill_tag = shard_suffix(config.shard).lstrip("-") or "run"
        spill_parent = out_dir
        if is_object_store(config.out):
            # The plan's spill is local scratch: the temporary directory, tagged by output.
            spill_parent = Path(tempfile.gettempdir())
            digest = hashlib.blake2b(config.out.encode(), digest_size=6).hexdigest()
            spill_tag = f"{spill_tag}-{digest}"
        planned = PlannedSource(
            intake,
            Lister(client, attempts),
            control,
            spill_parent,
            spill_tag=spill_tag,
            concurrency=1,
        )
    last_success = 0.0
    if config.metrics_file:
        from crawler.run.metrics import previous_last_success

        last_success = await anyio.to_thread.run_sync(
            previous_last_success, Path(config.metrics_file)
        )
    return _Run(
        last_success=last_success,
        config=config,
        endpoint=endpoint,
        out_dir=out_dir,
        layout=layout,
        auth=auth,
        control=control,
        stats=stats,
        writer=writer,
        crawler=crawler,
        limiter=limiter,
        source=discovery or planned or intake,
        discovery=discovery,
        planned=planned,
        previous=checkpoint.previous if checkpoint is not None else None,
        fingerprint=fingerprint,
        run_id=run_id,
    )


def _output(
    config: CrawlConfig, environ: Mapping[str, str]
) -> tuple[Layout, RunLock | ObjectRunLock]:
    """The layout and lock of ``--out``: a local directory, or an ``s3://`` prefix."""
    if not is_object_store(config.out):
        layout = Layout(config.out, config.shard)
        return layout, RunLock(layout)
    from crawler.output.objectstore import ObjectRunLock, ObjectStorage, open_location

    fs, root = open_location(config.out, environ)
    storage = ObjectStorage(fs)
    layout = Layout(root, config.shard, storage)
    leases = [path for path, exclusive in layout.lock_files() if exclusive]
    return layout, ObjectRunLock(storage, leases)


def _nothing() -> None:
    """Interrupting items given in memory: nothing to do."""


def _check_targets_readable(path: str | None) -> str:
    if path is None:
        raise ConfigError("--targets is required (a file, or - for stdin)")
    if path != "-" and not os.access(path, os.R_OK):
        reason = "no such file" if not os.path.exists(path) else "not readable"
        raise ConfigError(f"targets {path}: {reason}")
    if path != "-" and os.path.isdir(path):
        raise ConfigError(f"targets {path}: is a directory")
    return path


def _is_regular_file(path: str) -> bool:
    """False for stdin, pipes, FIFOs and devices: they can be read only once, by the crawl."""
    if path == "-":
        return False
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


async def _stoppable(read: Callable[[T, threading.Event], R], argument: T) -> R:
    """``read(argument, stop)`` in a worker thread that a stop abandons at once and
    that then ends itself soon after (``stop`` set), so no thread outlives the run."""
    stop = threading.Event()
    try:
        return await anyio.to_thread.run_sync(read, argument, stop, abandon_on_cancel=True)
    finally:
        stop.set()


async def _open_output(
    config: CrawlConfig, layout: Layout, targets_path: str | None
) -> tuple[Checkpoint | None, str | None]:
    """Refuse an output that holds another run; on --resume, read what it recorded
    (None without --resume)."""
    check_layout(layout)
    if not config.resume and has_run(layout):
        raise ConfigError(
            f"out {layout.root} already holds a run: add --resume to continue it, "
            "or give another --out"
        )
    fingerprint = None
    if targets_path is not None and _is_regular_file(targets_path):
        fingerprint = await _stoppable(targets_fingerprint, targets_path)
    if not config.resume:
        return None, fingerprint
    from crawler.output.checkpoint import read_checkpoint

    previous = load_run_file(layout)
    unchecked = (
        "targets from the registry (--discover)"
        if config.discover
        else (
            f"targets from {targets_path}, which can be read only once"
            if targets_path and fingerprint is None
            else None
        )
    )
    check_compatible(previous, layout.run_file(), fingerprint, unchecked)
    started = anyio.current_time()
    checkpoint = await _stoppable(read_checkpoint, layout)
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


# --------------------------------------------------------------------------- the run


@dataclass(slots=True, kw_only=True)
class _Run:
    """The parts of one run, built by :func:`_open_run`, and what happened to it."""

    config: CrawlConfig
    endpoint: str
    out_dir: Path
    layout: Layout
    auth: Auth
    control: RunControl
    stats: RunStats
    writer: OutputWriter
    crawler: Crawler
    limiter: RateLimiter
    source: Source
    discovery: DiscoverySource | None
    planned: PlannedSource | None
    previous: dict[str, Any] | None
    fingerprint: str | None
    run_id: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    clock_start: float = field(default_factory=anyio.current_time)
    output_error: OSError | None = None
    """Why the output could not be written (a full disk), if that stopped the run."""
    notices: list[str] = field(default_factory=list)
    """Warnings found on the way (a --namespace that matched nothing)."""
    last_success: float = 0.0
    """When the last run that exited 0 ended, from the previous --metrics-file (Unix time)."""

    def report(
        self,
        *,
        ended_at: datetime | None = None,
        totals: DatasetCounts | None = None,
        run_files: dict[str, list[str]] | None = None,
    ) -> RunReport:
        """The run file's content as of now (interim while ``ended_at`` is None)."""
        return RunReport(
            run_id=self.run_id,
            config=self.config,
            endpoint=self.endpoint,
            auth_method=self.auth.method,
            started_at=self.started_at,
            stats=self.stats,
            ended_at=ended_at,
            elapsed_seconds=anyio.current_time() - self.clock_start,
            stop_reason=self.control.stop_reason,
            error=_describe(self.output_error),
            files={"tags": self.writer.tags.files, "errors": self.writer.errors.files},
            published=(self.writer.tags.rows_committed, self.writer.errors.rows_committed),
            previous=self.previous,
            targets_sha256=self.fingerprint,
            totals=totals,
            run_files=run_files,
            gateway_limit=self.limiter.stated_limit,
            notices=self.notices,
        )

    async def execute(self) -> RunResult:
        """Crawl to the end or to a stop; write the final run file whatever happens."""
        try:
            totals = await anyio.to_thread.run_sync(count_rows, self.layout)
            self.report(totals=totals).write(self.layout)
            log.info(
                "crawl.started",
                run_id=self.run_id,
                resumed=self.previous is not None,
                endpoint=self.endpoint,
                auth_method=self.auth.method,
                out=self.config.out,
                concurrency=self.config.concurrency,
                rate=self.config.rate,
            )
            await self._crawl()
        except Exception as exc:
            self._crashed(exc)
        except BaseException:
            self.control.halt("cancelled")
            raise
        finally:
            if self.control.halted:
                # No writer thread runs any more: dropping the open files is safe. The
                # temporary file stays hidden; the next --resume removes it.
                with suppress(OSError):
                    self.writer.abort()
            with anyio.CancelScope(shield=True):
                report = await self._finish()
                await self._write_metrics(report)
        for warning in report.warnings():
            log.warning("crawl.warning", warning=warning)
        log.info(
            "crawl.finished",
            run_id=self.run_id,
            complete=report.complete,
            stop_reason=report.stop_reason,
            exit_code=report.exit_code,
            **self.stats.as_dict(),
            elapsed_seconds=round(report.elapsed_seconds, 3),
        )
        return RunResult(report, self.out_dir)

    async def _crawl(self) -> None:
        control = self.control
        async with anyio.create_task_group() as services:
            services.start_soon(self._write)
            services.start_soon(self._keep_report_current)
            services.start_soon(self._log_activity)
            if self.config.metrics_file:
                services.start_soon(self._keep_metrics_current)
            if wanted(self.config.progress):
                services.start_soon(_progress, self.stats, self.config.targets)
            with control.cancel_on_halt(anyio.CancelScope()):
                with anyio.CancelScope() as crawl:
                    services.start_soon(_grace, control, self.stats, crawl)
                    await self.crawler.run(self.source)
                try:
                    await self.writer.flush(force=True)  # not shielded: a halt cuts it short
                except OSError as exc:
                    self._output_failed(exc)
            services.cancel_scope.cancel()
        if self.planned is not None:
            self.stats.plan = self.planned.stats.as_dict()
        if self.discovery is not None:
            self.stats.discovery = self.discovery.discoverer.stats.as_dict()
            found = [
                n for n, tags in self.discovery.discoverer.stats.tags_by_namespace.items() if tags
            ]
            self.notices.extend(
                f"--namespace {pattern!r} matched no namespace holding a tag (none by that "
                "name, or it is empty)"
                for pattern in self.config.namespaces
                if not any(fnmatchcase(name, pattern) for name in found)
            )
            failures = self.discovery.discoverer.stats.failures
            if failures:
                # Some listings could not be read: tags may be missing, so the run
                # is not complete; --resume lists them again.
                control.stop(f"discovery incomplete ({failures} listings failed)")
        unfinished = self.stats.targets - self.stats.done
        if unfinished:  # a stop explains it; without one this is a bug, never "complete"
            control.stop(f"unfinished: {unfinished} admitted targets have no row")

    def _crashed(self, exc: Exception) -> None:
        """An error nobody expected: the run is not complete, and says why."""
        while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        what = f"{type(exc).__name__}: {exc}"[:300]
        log.error("crawl.crashed", error=what, exc_info=exc)
        self.control.halt(f"unexpected error ({what})")

    async def _finish(self) -> RunReport:
        """Count what every segment published; write the final run file (best effort)."""
        totals = run_files = None
        try:
            layout = self.layout
            totals = await anyio.to_thread.run_sync(count_rows, layout)
            run_files = {
                name: [os.path.basename(p) for p in layout.own_parts(name)] for name in DATASETS
            }
            report = self.report(ended_at=datetime.now(UTC), totals=totals, run_files=run_files)
            report.write(layout)
        except OSError as exc:
            if self.output_error is None:
                self.output_error = exc
            log.error("crawl.run_file_not_written", error=_describe(exc))
            report = self.report(ended_at=datetime.now(UTC), totals=totals, run_files=run_files)
        return report

    def _output_failed(self, exc: OSError) -> None:
        """The output cannot be written (a full disk): stop at once, nothing half-written stays."""
        if self.output_error is None:
            self.output_error = exc
            log.error("crawl.output_failed", error=_describe(exc))
        self.control.halt("output error")

    async def _write(self) -> None:
        try:
            await self.writer.run()
        except OSError as exc:
            self._output_failed(exc)

    async def _keep_report_current(self) -> None:
        """Rewrite the run file now and then, so a segment that is SIGKILLed still
        leaves its request/retry/429 counts (as of its last write) for the next one."""
        while True:
            await anyio.sleep(max(self.config.commit_seconds, REPORT_INTERVAL_MIN))
            report = self.report()
            document = report.document()  # built here: it reads live counters
            try:
                await anyio.to_thread.run_sync(report.write, self.layout, document)
            except OSError as exc:  # the writer task reports a full disk; this is best effort
                log.warning("crawl.run_file_not_written", error=_describe(exc))

    def _metrics(self, report: RunReport | None = None) -> RunMetrics:
        """The metrics as of now; at the end, with the run's outcome."""
        from crawler.run.metrics import snapshot

        ended = report is not None and report.ended_at is not None
        succeeded = ended and report is not None and report.exit_code == 0
        if succeeded:
            self.last_success = time.time()
        return snapshot(
            self.stats,
            complete=bool(ended and report is not None and report.complete),
            duration_seconds=anyio.current_time() - self.clock_start,
            rate_limit=self.limiter.current_rate,
            last_success=self.last_success,
        )

    async def _write_metrics(self, report: RunReport | None = None) -> None:
        """Write --metrics-file (best effort: monitoring must not break a crawl)."""
        if not self.config.metrics_file:
            return
        from crawler.run.metrics import write_metrics

        metrics = self._metrics(report)  # copied here, on the event loop
        path = Path(self.config.metrics_file)
        try:
            await anyio.to_thread.run_sync(write_metrics, path, metrics)
        except OSError as exc:
            log.warning("crawl.metrics_not_written", path=str(path), error=_describe(exc))

    async def _keep_metrics_current(self) -> None:
        while True:
            await self._write_metrics()
            await anyio.sleep(METRICS_INTERVAL)

    async def _log_activity(self) -> None:
        """One info line every ACTIVITY_INTERVAL: what the debug-level retry lines add up to."""
        stats = self.stats
        last = (anyio.current_time(), stats.done, stats.retries, stats.throttled)
        while True:
            await anyio.sleep(ACTIVITY_INTERVAL)
            now = (anyio.current_time(), stats.done, stats.retries, stats.throttled)
            seconds = now[0] - last[0]
            log.info(
                "crawl.activity",
                rows=stats.done,
                rows_per_second=round((now[1] - last[1]) / seconds, 1) if seconds > 0 else 0.0,
                in_flight=stats.in_flight,
                rate=round(self.limiter.current_rate, 3),
                retries=now[2] - last[2],
                throttled_429=now[3] - last[3],
            )
            last = now


def _describe(exc: OSError | None) -> str | None:
    if exc is None:
        return None
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


async def _grace(control: RunControl, stats: RunStats, crawl: anyio.CancelScope) -> None:
    """After a stop, requests in flight get GRACE_SECONDS; the crawl ends once none is.

    Nothing else needs the grace: a target waiting out a backoff or a
    Retry-After pause is left unrecorded, for --resume to take up.
    """
    await control.wait()
    with anyio.move_on_after(GRACE_SECONDS):
        # Polled, and only during the grace: the counter is a plain int on the hot path.
        while stats.in_flight:  # noqa: ASYNC110
            await anyio.sleep(GRACE_POLL_SECONDS)
    crawl.cancel()


async def _progress(stats: RunStats, targets: str | None) -> None:
    total: int | None = None
    if targets is not None and _is_regular_file(targets):
        # Counted in a thread: a big file must not stall the event loop.
        total = await anyio.to_thread.run_sync(count_lines, targets, abandon_on_cancel=True)
    await show_progress(stats, lambda: total)


async def _watch_signals(signals: AsyncIterator[int], control: RunControl) -> None:
    """First SIGINT/SIGTERM/SIGHUP: stop taking work, give requests in flight a grace period.

    Second: stop at once (rows not yet published are dropped, never half-written).
    """
    first = True
    async for signum in signals:
        if first:
            first = False
            control.stop(f"signal {signal.Signals(signum).name}")
            log.warning("crawl.stopping", reason=control.stop_reason, grace=GRACE_SECONDS)
        else:
            log.warning("crawl.stopping_now", reason="second signal")
            control.halt("second signal")
