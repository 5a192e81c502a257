"""``crawl --dataset ROOT``: one run as the snapshot of its date, published only when complete.

The run itself is an ordinary run into a staging directory
(:func:`crawler.output.dataset.staging_dir`), so ``--resume``, shards,
signals and the run file behave exactly as with ``--out``; what this adds is
the date, one lock for the date from start to published, and the commit of
:mod:`crawler.output.commit` once the run is complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path

import anyio
import orjson
import pyarrow.fs as pafs
import structlog

from crawler.config import CrawlConfig
from crawler.output.commit import Place, Sizes, commit, finish, pending_commit
from crawler.output.dataset import (
    date_lock_path,
    parse_snapshot_date,
    partition_dir,
    staging_dir,
)
from crawler.output.layout import Layout, shard_suffix
from crawler.output.lock import OutputLock
from crawler.output.objectstore import open_location, read_whole
from crawler.output.storage import is_object_store
from crawler.run.runner import RunResult, run_crawl
from crawler.targets import InvalidTarget, Target

log = structlog.get_logger("crawler")

#: The ``-sIofN`` at the end of a shard's run record name.
_SHARD_MARK = re.compile(r"-s\d+of\d+$")


def snapshot_day(config: CrawlConfig, now: datetime | None = None) -> date:
    """``--snapshot-date``, else the UTC date the run starts."""
    if config.snapshot_date:
        return parse_snapshot_date(config.snapshot_date)
    return (now or datetime.now(UTC)).astimezone(UTC).date()


async def run_dataset(
    config: CrawlConfig,
    *,
    environ: Mapping[str, str] | None = None,
    items: Iterable[Target | InvalidTarget] | None = None,
    handle_signals: bool = True,
    now: datetime | None = None,
) -> RunResult | None:
    """Crawl the snapshot of one date into ``config.dataset``; None if it was already published.

    With ``--resume`` a date already published (and nothing staged) is left as
    it is: a cron job run twice does the work once. Without it, a new run
    replaces the date's rows when it completes.
    """
    env = os.environ if environ is None else environ
    fs, root_path = open_location(config.dataset, env)
    root = Place(fs, root_path)
    # On an object store a run is staged on a local disk (the spool) and its
    # files are uploaded when it is published; locally it is staged in ROOT.
    remote = is_object_store(config.dataset)
    stage_root = spool_root(config, env) if remote else root_path
    day = snapshot_day(config, now)
    mark = shard_suffix(config.shard)
    staging = Place(pafs.LocalFileSystem() if remote else fs, staging_dir(stage_root, day, mark))
    lock_path = Path(date_lock_path(stage_root, day, mark))
    await anyio.to_thread.run_sync(lambda: lock_path.parent.mkdir(parents=True, exist_ok=True))
    with OutputLock(lock_path):
        if await anyio.to_thread.run_sync(pending_commit, staging.fs, staging.path):
            log.info("dataset.commit_resumed", snapshot_date=day.isoformat())
            await anyio.to_thread.run_sync(finish, staging, root, day, config.shard)
        staged = await anyio.to_thread.run_sync(os.path.exists, staging.path)
        if config.resume and not staged:
            published = await anyio.to_thread.run_sync(_published, fs, root_path, day, mark)
            if published:
                log.info("dataset.already_published", snapshot_date=day.isoformat())
                return None
        run_config = dataclasses.replace(config, out=staging.path)
        result = await run_crawl(
            run_config, environ=env, items=items, handle_signals=handle_signals
        )
        if result.report.complete:
            run_file = Path(Layout(staging.path, config.shard).run_file())
            run_id = orjson.loads(await anyio.to_thread.run_sync(run_file.read_bytes))["run_id"]
            sizes = Sizes(config.file_rows, config.row_group_rows)
            await anyio.to_thread.run_sync(commit, staging, root, day, config.shard, run_id, sizes)
        return result


def spool_root(config: CrawlConfig, environ: Mapping[str, str]) -> str:
    """The local directory where runs for an object-store dataset are staged.

    ``--spool DIR``, else ``$XDG_CACHE_HOME/swr-crawler/spool`` (``~/.cache/...``);
    one sub-directory per dataset location, so one spool serves many datasets.
    """
    base = config.spool or os.path.join(
        environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "swr-crawler", "spool"
    )
    digest = hashlib.blake2b(config.dataset.rstrip("/").encode(), digest_size=8).hexdigest()
    return os.path.join(base, digest)


def _published(fs: pafs.FileSystem, root: str, day: date, mark: str) -> bool:
    """Whether a complete run of this date (and shard) is recorded under ``ROOT/runs``."""
    selector = pafs.FileSelector(partition_dir(root, "runs", day), allow_not_found=True)
    for info in fs.get_file_info(selector):
        name = info.base_name.removesuffix(".json")
        shard = _SHARD_MARK.search(name)
        if (
            info.base_name.endswith(".json")
            and (shard[0] if shard else "") == mark
            and orjson.loads(read_whole(fs, info.path)).get("complete") is True
        ):
            return True
    return False
