"""``swr-crawler discover``: list the registry (with the filters) into a targets file.

The same walk as ``crawl --discover`` (:class:`~crawler.crawl.discover.Discoverer`,
tag pages without manifests), through the same attempt loop (request slots,
rate limiter, retries), credentials and filters; what it finds is written by
:class:`~crawler.output.target_list.TargetListWriter` instead of crawled.
The file is usable as ``crawl --targets`` later.

Exit status: 0 when everything matching was listed; 1 when a listing failed
for good (the file is still written, with what could be listed, and the
last stderr line says how many listings are missing) or the run was stopped
(a refused credential, a signal: no file is written); 2 for a usage or
configuration problem.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from contextlib import AsyncExitStack, nullcontext
from dataclasses import dataclass, field

import anyio
import structlog
from anyio.abc import ObjectReceiveStream

from crawler.config import CrawlConfig
from crawler.crawl.control import RunControl
from crawler.crawl.discover import Discoverer, Found, Named, discover_or_stop, discoverer_for
from crawler.crawl.intake import ListingError
from crawler.errors import ConfigError
from crawler.output.target_list import TargetListWriter
from crawler.run.attempts import attempts_for
from crawler.run.client import open_client
from crawler.run.stats import RunStats
from crawler.targets import SeenSet

log = structlog.get_logger("crawler")


@dataclass(slots=True)
class DiscoverResult:
    """What the CLI reports after ``discover``."""

    targets: int = 0
    """Lines written."""
    failures: int = 0
    """Listings that failed for good."""
    stop_reason: str | None = None
    requests: int = 0
    elapsed_seconds: float = 0.0
    listing: dict[str, object] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 complete, 1 incomplete or stopped."""
        return 0 if self.failures == 0 and self.stop_reason is None else 1

    def summary(self, output: str) -> str:
        """One line for stderr."""
        where = "stdout" if output == "-" else output
        if self.stop_reason is not None:
            return f"swr-crawler: discover stopped ({self.stop_reason}); nothing written to {where}"
        line = (
            f"swr-crawler: discovered {self.targets} targets with {self.requests} requests"
            f" in {self.elapsed_seconds:.1f}s; wrote {where}"
        )
        if self.failures:
            line += f"; {self.failures} listings failed: their tags are missing (exit 1)"
        return line


async def run_discover(
    config: CrawlConfig,
    output: str,
    fmt: str,
    *,
    environ: Mapping[str, str] | None = None,
    handle_signals: bool = True,
) -> DiscoverResult:
    """List what the filters select; write it to ``output`` (``-`` = stdout) as ``fmt``.

    Raises :class:`ConfigError` before any request for a usage problem
    (no credentials, an output that cannot be created).
    """
    environ = os.environ if environ is None else environ
    started = anyio.current_time()
    result = DiscoverResult()
    stats = RunStats()
    control = RunControl()
    async with AsyncExitStack() as stack:
        client = await open_client(config, environ, stack)
        attempts = attempts_for(config, stats=stats, control=control)
        discoverer = discoverer_for(config, client, attempts, mode="names")
        try:
            writer = TargetListWriter(output, fmt)
        except OSError as exc:
            raise ConfigError(f"output {output}: {exc.strerror or exc}") from None
        with writer:
            await _walk(discoverer, writer, control, result, handle_signals)
            if result.stop_reason is None:
                await anyio.to_thread.run_sync(writer.commit)
    result.requests = stats.requests
    result.elapsed_seconds = anyio.current_time() - started
    result.listing = discoverer.stats.as_dict()
    log.info(
        "discover.command_finished",
        targets=result.targets,
        failures=result.failures,
        stop_reason=result.stop_reason,
        requests=result.requests,
        elapsed_seconds=round(result.elapsed_seconds, 3),
    )
    return result


async def _walk(
    discoverer: Discoverer,
    writer: TargetListWriter,
    control: RunControl,
    result: DiscoverResult,
    handle_signals: bool,
) -> None:
    send, receive = anyio.create_memory_object_stream[Found](256)
    receiver = (
        anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        if handle_signals
        else nullcontext(None)
    )
    with receiver as signals:
        async with anyio.create_task_group() as tg:
            if signals is not None:
                tg.start_soon(_watch_signals, signals, control, tg.cancel_scope)
            tg.start_soon(discover_or_stop, discoverer, send, control)
            await _write(receive, writer, result)
            tg.cancel_scope.cancel()
    result.stop_reason = control.stop_reason


async def _write(
    receive: ObjectReceiveStream[Found], writer: TargetListWriter, result: DiscoverResult
) -> None:
    seen = SeenSet()  # a tag that moved between two pages is listed twice: written once
    async with receive:
        async for item in receive:
            if isinstance(item, Named):
                if seen.add(item.target.key):
                    writer.write(item.target, item.item)
                    result.targets += 1
            elif isinstance(item, ListingError):
                result.failures += 1


async def _watch_signals(signals: object, control: RunControl, scope: anyio.CancelScope) -> None:
    async for signum in signals:  # type: ignore[attr-defined]
        control.stop(f"signal {signal.Signals(signum).name}")
        scope.cancel()
        return
