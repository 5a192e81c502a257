"""Names in a snapshot dataset (``crawl --dataset ROOT``): hive partitions by snapshot date.

::

    ROOT/tags/snapshot_date=YYYY-MM-DD/part-<run id>[-sIofN]-<seq>.parquet
    ROOT/errors/snapshot_date=YYYY-MM-DD/part-<run id>[-sIofN]-<seq>.parquet
    ROOT/runs/snapshot_date=YYYY-MM-DD/<run id>[-sIofN].json
    ROOT/_staging/snapshot_date=YYYY-MM-DD[-sIofN]/   a run in progress (an ordinary --out)
    ROOT/_staging/.lock-snapshot_date=YYYY-MM-DD[-sIofN]   held while a run for the date is on

The date is in the path only, never inside the files, so every hive-aware
reader (DuckDB ``hive_partitioning``, Spark, ``pyarrow.dataset``, BigQuery
external tables) sees one table with a ``snapshot_date`` column.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

from crawler.errors import ConfigError

__all__ = [
    "PARTITION_KEY",
    "STAGING",
    "date_lock_path",
    "parse_snapshot_date",
    "partition_dir",
    "run_record_path",
    "split_snapshot_spec",
    "staging_dir",
]

#: The partition column of every dataset.
PARTITION_KEY: Final = "snapshot_date"
#: Where runs in progress live: outside tags/ and errors/, so no reader's glob sees them.
STAGING: Final = "_staging"
_DATE_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_snapshot_date(text: str) -> date:
    """``YYYY-MM-DD`` as a date; ConfigError for anything else."""
    if not _DATE_RE.fullmatch(text):
        raise ConfigError(f"{text!r}: a snapshot date is YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{text!r}: no such date") from None


def partition_dir(root: str, dataset: str, day: date) -> str:
    """``ROOT/<dataset>/snapshot_date=YYYY-MM-DD``, ``/``-separated (local and s3 alike)."""
    return f"{root.rstrip('/')}/{dataset}/{PARTITION_KEY}={day.isoformat()}"


def split_snapshot_spec(spec: str) -> tuple[str, date | None]:
    """``ROOT@YYYY-MM-DD`` -> (ROOT, date); anything else is a run directory -> (spec, None)."""
    root, at, suffix = spec.rpartition("@")
    if at and _DATE_RE.fullmatch(suffix):
        return root, parse_snapshot_date(suffix)
    return spec, None


def staging_dir(root: str, day: date, shard_mark: str) -> str:
    """The run directory of the ``day`` snapshot (of one shard) while it is crawled."""
    return f"{root.rstrip('/')}/{STAGING}/{PARTITION_KEY}={day.isoformat()}{shard_mark}"


def date_lock_path(root: str, day: date, shard_mark: str) -> str:
    """The lock held by the run of ``day`` (of one shard) from start to published."""
    return f"{root.rstrip('/')}/{STAGING}/.lock-{PARTITION_KEY}={day.isoformat()}{shard_mark}"


def run_record_path(root: str, day: date, name: str) -> str:
    """``ROOT/runs/snapshot_date=D/<name>.json``: the run file of a published run."""
    return f"{partition_dir(root, 'runs', day)}/{name}.json"
