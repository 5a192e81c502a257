"""A progress bar on a terminal (rich), fed from the run counters, never from the hot path."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

import anyio

from crawler.run.stats import RunStats

REFRESH_SECONDS = 0.25


def wanted(enabled: bool, stream: TextIO | None = None) -> bool:
    """A bar only when asked for and stderr is a terminal."""
    return enabled and (stream or sys.stderr).isatty()


async def show_progress(stats: RunStats, total: Callable[[], int | None]) -> None:
    """Redraw the bar from ``stats`` every quarter second until cancelled."""
    # Imported here: rich.progress costs ~50 ms of start-up, and most runs have no bar.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(file=sys.stderr)
    columns = (
        TextColumn("[bold]crawl"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7.1f} rows/s"),
        TextColumn("ok {task.fields[ok]} · errors {task.fields[errors]} · 429 {task.fields[t429]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("crawl", total=None, rate=0.0, ok=0, errors=0, t429=0)
        start = anyio.current_time()

        def redraw() -> None:
            elapsed = max(anyio.current_time() - start, 1e-9)
            progress.update(
                task,
                # Lines that need no request (duplicates, other shards, already
                # recorded) count as done: the total is the file's line count.
                completed=stats.done
                + stats.duplicates
                + stats.skipped_resume
                + stats.skipped_shard,
                total=total(),
                rate=stats.done / elapsed,
                ok=stats.ok,
                errors=sum(stats.errors.values()),
                t429=stats.throttled,
            )

        try:
            while True:
                redraw()
                await anyio.sleep(REFRESH_SECONDS)
        finally:
            redraw()  # the final state, not the one a quarter second before the end


def count_lines(path: str) -> int | None:
    """How many targets a file holds, roughly (non-blank, non-comment lines); None for stdin."""
    if path == "-":
        return None
    count = 0
    try:
        with open(path, "rb") as fh:
            for line in fh:
                stripped = line.strip()
                if stripped and not stripped.startswith(b"#"):
                    count += 1
    except OSError:
        return None
    if path.endswith(".csv") and count:
        count -= 1  # the header
    return count
