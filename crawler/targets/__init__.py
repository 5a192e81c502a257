"""Targets: ``namespace/repository:tag`` names, the files they are read from, dedup and shards.

* :mod:`crawler.targets.names`: parse and validate a reference (pure);
* :mod:`crawler.targets.readers`: read text, CSV or JSON-lines files (or stdin)
  one record at a time;
* :mod:`crawler.targets.dedup`: a stable hash for dedup and sharding, and the
  compact set of hashes seen (pure).
"""

from crawler.targets.dedup import SeenSet, in_shard, target_hash
from crawler.targets.names import (
    InvalidTarget,
    ParsedTarget,
    Target,
    api_repository,
    parse_reference,
    validate,
)
from crawler.targets.readers import FORMATS, TargetReader, iter_targets

__all__ = [
    "FORMATS",
    "InvalidTarget",
    "ParsedTarget",
    "SeenSet",
    "Target",
    "TargetReader",
    "api_repository",
    "in_shard",
    "iter_targets",
    "parse_reference",
    "target_hash",
    "validate",
]
