"""``crawl --dry-run``: what a crawl would do, without a tag request and without writing.

With a targets file it reads and checks every line (valid, invalid with the
physical line number and the reason, duplicates, other shards' lines) and
sends nothing at all. With ``--discover`` it lists the registry, which costs
list requests only (it says how many), and sends no tag-details request.
Either way it prints how many requests each ``--mode`` would make and how
long that takes at ``--rate``; nothing is written under ``--out`` and no
lock is taken.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import anyio
import click

from crawler.config import CrawlConfig
from crawler.crawl.control import RunControl
from crawler.crawl.discover import Found, Named, discover_or_stop, discoverer_for
from crawler.crawl.intake import Intake, ListingError
from crawler.errors import ConfigError
from crawler.run.attempts import attempts_for
from crawler.run.client import open_client
from crawler.run.stats import RunStats
from crawler.targets import InvalidTarget, Target, iter_targets

#: Invalid lines printed one by one; the rest are only counted.
SHOWN_INVALID = 20


@dataclass(slots=True)
class Plan:
    """What a crawl of these targets would do."""

    valid: int = 0
    """Distinct valid targets this run (this shard) would request."""
    invalid: int = 0
    invalid_shown: list[InvalidTarget] = field(default_factory=list)
    duplicates: int = 0
    other_shards: int = 0
    listing_requests: int | None = None
    """List requests the dry run itself made (--discover only)."""
    listing_failures: int = 0
    stop_reason: str | None = None
    """Why the listing stopped before its end (a refused credential: ``unauthorized``)."""


def plan_targets(items: Iterable[Target | InvalidTarget], shard: tuple[int, int]) -> Plan:
    """Count the targets of a file through the crawl's own intake. Pure (but for reading)."""
    plan = Plan()
    stats = RunStats()
    admit = Intake((), stats, shard=shard).admit
    for item in filter(admit, items):
        if isinstance(item, InvalidTarget):
            plan.invalid += 1
            if len(plan.invalid_shown) < SHOWN_INVALID:
                plan.invalid_shown.append(item)
        else:
            plan.valid += 1
    return _not_admitted(plan, stats)


def _not_admitted(plan: Plan, stats: RunStats) -> Plan:
    """``plan`` with the intake's counts of what it did not admit."""
    plan.duplicates = stats.duplicates
    plan.other_shards = stats.skipped_shard
    return plan


async def plan_discovery(config: CrawlConfig, environ: Mapping[str, str]) -> Plan:
    """List the registry as ``--discover`` would (list requests only) and count its tags."""
    plan = Plan()
    control = RunControl()
    async with AsyncExitStack() as stack:
        client = await open_client(config, environ, stack)
        stats = RunStats()
        attempts = attempts_for(config, stats=stats, control=control)
        # names mode: the tag lists are read without manifests; only names are needed.
        discoverer = discoverer_for(config, client, attempts, mode="names")
        send, receive = anyio.create_memory_object_stream[Found](64)
        # The crawl's admission: a tag listed twice, or another shard's, is not counted.
        admit = Intake((), stats, shard=config.shard).admit

        async def count() -> None:
            async with receive:
                async for item in receive:
                    if isinstance(item, ListingError):
                        plan.listing_failures += 1
                    elif isinstance(item, Named) and admit(item.target):  # names mode
                        plan.valid += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(count)
            await discover_or_stop(discoverer, send, control)
        plan.listing_requests = stats.requests
        plan.stop_reason = control.stop_reason
    return _not_admitted(plan, stats)


def _duration(requests: int, rate: float) -> str:
    if rate <= 0:
        return "no --rate limit: bounded by latency and --concurrency"
    seconds = requests / rate
    if seconds < 120:
        return f"about {seconds:.0f} s at --rate {rate:g}"
    if seconds < 7200:
        return f"about {seconds / 60:.0f} min at --rate {rate:g}"
    return f"about {seconds / 3600:.1f} h at --rate {rate:g}"


def plan_lines(plan: Plan, config: CrawlConfig) -> list[str]:
    """The dry run's report (stdout). Pure."""
    lines = [f"valid targets: {plan.valid:,}"]
    if plan.listing_requests is None:
        lines.append(f"invalid lines: {plan.invalid:,}")
        for item in plan.invalid_shown:
            where = f"line {item.line}" if item.line else "line ?"
            lines.append(f"  {where}: {item.reason}: {item.source!r}")
        if plan.invalid > len(plan.invalid_shown):
            lines.append(f"  ... and {plan.invalid - len(plan.invalid_shown):,} more")
    lines.append(f"duplicates: {plan.duplicates:,}")
    if config.shard[1] > 1:
        lines.append(f"other shards' targets (skipped): {plan.other_shards:,}")
    rate = config.rate
    if plan.listing_requests is None:
        requests = plan.valid
        lines.append(
            f"requests: {requests:,} tag-details requests (one per valid target, retries "
            f"extra); {_duration(requests, rate)}"
        )
        lines.append(
            f"requests in --mode detail: {requests:,}; in --mode auto: at most {requests:,} "
            "(a repository is listed instead where that takes fewer requests)"
        )
    else:
        listing = plan.listing_requests
        lines.append(f"list requests made by this dry run: {listing:,} (no tag-details request)")
        if plan.stop_reason is not None:
            lines.append(f"listing stopped ({plan.stop_reason}): the counts here are incomplete")
        if plan.listing_failures:
            lines.append(f"listings that failed: {plan.listing_failures:,} (tags may be missing)")
        lines.append(
            f"requests in --mode list: about {listing:,} (the tag list pages carry the rows); "
            f"{_duration(listing, rate)}"
        )
        detail = listing + plan.valid
        lines.append(
            f"requests in --mode detail: about {detail:,} ({listing:,} list + {plan.valid:,} "
            f"tag-details); {_duration(detail, rate)}"
        )
    lines.append(f"nothing was written under {config.out or config.dataset}")
    return lines


def dry_run(config: CrawlConfig, environ: Mapping[str, str] | None = None) -> int:
    """Run the dry run, print its report on stdout; the exit status (0, or 1 when a
    listing failed or was stopped)."""
    if config.discover:
        plan = anyio.run(plan_discovery, config, os.environ if environ is None else environ)
    else:
        if config.targets is None:
            raise ConfigError("--targets is required (a file, or - for stdin)")
        if config.targets != "-" and not os.path.isfile(config.targets):
            raise ConfigError(f"targets {config.targets}: no such file")
        with iter_targets(config.targets, config.targets_format) as items:
            plan = plan_targets(items, config.shard)
    for line in plan_lines(plan, config):
        click.echo(line)
    return 1 if plan.listing_failures or plan.stop_reason is not None else 0
