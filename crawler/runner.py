"""One crawl run, wired together: config -> auth -> client -> pool -> sink -> run.json.

This is the only module that knows every other one; it owns the lifetime of
the run (signals, the writer task, the progress bar) and turns the outcome
into an exit status.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import structlog

from crawler.auth import auth_from_env
from crawler.client import SwrClient, new_session
from crawler.config import CrawlConfig, effective_endpoint
from crawler.errors import ConfigError
from crawler.limits import RateLimiter
from crawler.pool import Crawler, Intake, RetryPolicy, RunControl
from crawler.progress import count_lines, show_progress, wanted
from crawler.report import RunReport, new_run_id
from crawler.sink import OutputWriter
from crawler.stats import RunStats
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
    """Run one crawl to its end (or its stop) and write ``run.json``.

    ``items`` replaces reading ``config.targets`` (used by the demo and tests).
    Raises :class:`ConfigError` before any request for a usage problem.
    """
    environ = os.environ if environ is None else environ
    if items is None:
        path = _check_targets_readable(config.targets)
        items = iter_targets(path, config.targets_format)
    endpoint = effective_endpoint(config)
    out_dir = Path(config.out)
    session = new_session(timeout=config.timeout, max_connections=config.concurrency)
    try:
        auth = auth_from_env(environ, region=config.region, session=session)
    except BaseException:
        await session.close()
        raise
    client = SwrClient(
        endpoint,
        auth,
        timeout=config.timeout,
        max_connections=config.concurrency,
        session=session,
    )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before any task
    except OSError as exc:
        await session.close()
        raise ConfigError(f"out {out_dir}: {exc.strerror or exc}") from None

    run_id = new_run_id()
    stats = RunStats()
    report = RunReport(
        run_id=run_id,
        config=config,
        endpoint=endpoint,
        auth_method=auth.method,
        started_at=datetime.now(UTC),
        stats=stats,
    )
    report.write(out_dir)
    writer = OutputWriter(
        out_dir,
        run_id,
        file_stem=_file_stem(run_id, config.shard),
        commit_seconds=config.commit_seconds,
        file_rows=config.file_rows,
    )
    control = RunControl()
    crawler = Crawler(
        fetcher=client,
        sink=writer,
        limiter=RateLimiter(config.rate, config.burst),
        policy=RetryPolicy(config.max_attempts, config.backoff_initial, config.backoff_max),
        concurrency=config.concurrency,
        stats=stats,
        control=control,
        rng=random.Random(config.seed),
    )
    intake = Intake(items, stats, shard=config.shard)
    log.info(
        "crawl.started",
        run_id=run_id,
        endpoint=endpoint,
        auth_method=auth.method,
        out=str(out_dir),
        concurrency=config.concurrency,
        rate=config.rate,
    )
    started = anyio.current_time()
    hard_stop = False
    try:
        async with anyio.create_task_group() as services:
            services.start_soon(writer.run)
            if wanted(config.progress):
                total = None if config.targets is None else count_lines(config.targets)
                services.start_soon(show_progress, stats, lambda: total)
            with anyio.CancelScope() as crawl_scope:
                if handle_signals:
                    services.start_soon(_watch_signals, control, crawl_scope)
                await crawler.run(intake)
            hard_stop = crawl_scope.cancelled_caught and control.stop_reason == "second signal"
            services.cancel_scope.cancel()
    finally:
        if hard_stop:
            writer.abort()
        else:
            await writer.close()
        with anyio.CancelScope(shield=True):
            await auth.aclose()
            await session.close()
        report.elapsed_seconds = anyio.current_time() - started
        report.ended_at = datetime.now(UTC)
        report.stop_reason = control.stop_reason
        report.files = {
            "tags": [p.name for p in writer.tags.files],
            "errors": [p.name for p in writer.errors.files],
        }
        report.write(out_dir)
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


async def _watch_signals(control: RunControl, crawl_scope: anyio.CancelScope) -> None:
    """First SIGINT/SIGTERM: stop taking work, give requests in flight a grace period.

    Second: stop at once (buffered rows are dropped, never half-written).
    """
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if not control.stopping():
                control.stop(f"signal {signal.Signals(signum).name}")
                log.warning("crawl.stopping", reason=control.stop_reason, grace=GRACE_SECONDS)
                crawl_scope.deadline = anyio.current_time() + GRACE_SECONDS
            else:
                control.stop_reason = "second signal"
                crawl_scope.cancel()
                return
