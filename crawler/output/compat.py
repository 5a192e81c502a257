"""Whether this run may write into an output, and whether ``--resume`` may continue it.

Refused, each with exit 2 and a one-line reason:

* an output whose ``tags`` or ``errors`` is a symbolic link or a plain file;
* an output that already holds this run (or this shard of it), without ``--resume``;
* an output that holds a run split another way (an unsharded run beside
  ``--shard I/N``, or ``N`` shards beside ``M``), with or without ``--resume``:
  each would read only its own files and fetch the other's targets again;
* on ``--resume``: a run file that cannot be read, another schema version,
  another targets file (by sha256).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import orjson
import structlog

from crawler.errors import ConfigError
from crawler.output.layout import DATASETS, Layout, Shard
from crawler.output.schema import SCHEMA_VERSION

log = structlog.get_logger("crawler")

__all__ = ["check_compatible", "check_layout", "has_run", "load_run_file", "targets_fingerprint"]


def targets_fingerprint(path: str, stop: threading.Event | None = None) -> str:
    """sha256 of a targets file's bytes, read in chunks (call it in a worker thread).

    Raises :class:`ReadStopped` soon after ``stop`` is set (the run is stopping).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            if stop is not None and stop.is_set():
                raise ReadStopped(path)
            digest.update(chunk)
    return digest.hexdigest()


class ReadStopped(Exception):
    """A long read for set-up was given up: the run stopped before it began."""


def _describe(shard: Shard) -> str:
    index, count = shard
    return "an unsharded run" if count == 1 else f"shard {index}/{count}"


def check_layout(layout: Layout) -> None:
    """Refuse an output whose dataset folders are links or files, or that holds a run
    split another way than this one."""
    for dataset in DATASETS:
        layout.storage.check_dir(layout.dataset_dir(dataset))
    count = layout.shard[1]
    others = sorted(s for s in layout.shards_present() if s[1] != count)
    if others:
        found = ", ".join(_describe(s) for s in others)
        raise ConfigError(
            f"out {layout.root} holds {found}; this crawl is {_describe(layout.shard)} and would "
            "write every target again: give another --out (all shards of a run use one --shard N)"
        )


def has_run(layout: Layout) -> bool:
    """Whether the output already holds (this shard of) a run: its run file or any part file."""
    if layout.storage.exists(layout.run_file()):
        return True
    return any(layout.own_parts(dataset) for dataset in DATASETS)


def load_run_file(layout: Layout) -> dict[str, Any] | None:
    """The run file of an earlier segment, or None when there is none."""
    path = layout.run_file()
    try:
        doc = orjson.loads(layout.storage.read_bytes(path))
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); move it away to start afresh") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not a run file; move it away to start afresh")
    return doc


def check_compatible(
    previous: dict[str, Any] | None,
    path: str,
    targets_sha256: str | None,
    unchecked: str | None = None,
) -> None:
    """Refuse to mix runs: another schema version or another targets file is exit 2.

    ``unchecked`` says why this segment's targets have no fingerprint to compare
    (stdin, discovery): a warning then, not an error.
    """
    if previous is None:
        return
    version = str(previous.get("schema_version", ""))
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"{path}: written with schema version {version or '?'}, this crawler writes "
            f"{SCHEMA_VERSION}; resume with the crawler that started the run, or use another --out"
        )
    before = previous.get("targets_sha256")
    if unchecked or before is None:
        log.warning(
            "crawl.resume_unchecked_targets",
            reason=unchecked or "the earlier run's targets had no fingerprint (stdin, discovery)",
            hint="make sure the targets are the same as the earlier run's",
        )
    elif targets_sha256 is not None and before != targets_sha256:
        raise ConfigError(
            f"{path}: the run was started with another targets file (sha256 {before[:12]}..., "
            f"now {targets_sha256[:12]}...); resume with the same targets, or use another --out"
        )
