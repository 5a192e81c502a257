"""Resume: read what an earlier run into the same output recorded, and make it resumable.

The output itself is the checkpoint; there is no separate state file that
could disagree with it. A target is *recorded* when it has a row in a
published file: any row of ``tags``, or an ``errors`` row of a definitive
kind (:data:`crawler.errors.DEFINITIVE_KINDS`). An ``errors`` row of a
transient kind (throttled, server_error, timeout, network, decode,
unauthorized) is not an answer: on ``--resume`` it is removed from its file
and the target is requested again, so the union of ``tags`` + ``errors``
still holds every target exactly once.

Removing rows from a published file is done crash-safely, without ever
modifying a file in place::

    errors/part-R-00001.parquet            holds definitive + transient rows
      1. write part-R-00001.kept.parquet    (definitive rows only; published atomically)
      2. delete part-R-00001.parquet, fsync the directory

A crash between 1 and 2 leaves both files; the next resume sees the
``.kept`` twin and deletes the stale original first (idempotent). A file
with no definitive row is just deleted. Temporary files of a killed process
of this shard are deleted.

Only the key columns are read (Parquet column projection, in batches), and
keys are built with Arrow compute kernels (:func:`crawler.output.recorded.add_keys`).

Each shard of a sharded run (``--shard I/N``) has its own files, run file
and lock (:mod:`crawler.output.layout`), so shards may share one output
and resume independently.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import structlog

from crawler.errors import DEFINITIVE_KINDS, ErrorKind
from crawler.output.compat import ReadStopped
from crawler.output.layout import Layout, kept_name, original_of_kept
from crawler.output.parts import PartFile
from crawler.output.recorded import Recorded, add_keys, invalid_hash
from crawler.output.schema import ERRORS_SCHEMA, KEY_COLUMNS, TAGS_SCHEMA

log = structlog.get_logger("crawler")

__all__ = ["Checkpoint", "read_checkpoint", "remove_stale_tmp"]

READ_BATCH_ROWS = 65_536
_DEFINITIVE = pa.array(sorted(kind.value for kind in DEFINITIVE_KINDS))


@dataclass(slots=True)
class Checkpoint:
    """What :func:`read_checkpoint` found in the output."""

    previous: dict[str, Any] | None = None
    """The earlier ``run.json`` document (None for a fresh output)."""
    recorded: Recorded = field(default_factory=Recorded)
    tags_rows: int = 0
    errors_kept: int = 0
    """Definitive ``errors`` rows kept."""
    transient_dropped: Counter[str] = field(default_factory=Counter)
    """Transient ``errors`` rows removed, by kind: their targets are requested again."""
    files_rewritten: int = 0
    tmp_removed: int = 0


def read_checkpoint(layout: Layout, stop: threading.Event | None = None) -> Checkpoint:
    """Read what this shard's earlier segments recorded, and make the output resumable.

    Removes temporary files of a killed segment and the transient ``errors``
    rows (see the module docstring). Blocking: call it in a worker thread,
    holding the output's lock. A damaged file is a ConfigError naming it.
    Setting ``stop`` ends the read soon after (:class:`ReadStopped`), only
    between files and batches read, never in the middle of a rewrite.
    """
    checkpoint = Checkpoint()
    checkpoint.tmp_removed = remove_stale_tmp(layout)
    _settle_kept_twins(layout)
    for path in layout.own_parts("tags"):
        with PartFile(layout.storage, path, TAGS_SCHEMA) as part:
            for batch in part.batches(READ_BATCH_ROWS, KEY_COLUMNS):
                if stop is not None and stop.is_set():
                    raise ReadStopped(path)
                add_keys(checkpoint.recorded.keys, batch)
                checkpoint.tags_rows += batch.num_rows
    for path in layout.own_parts("errors"):
        if stop is not None and stop.is_set():
            raise ReadStopped(path)
        _read_errors_file(layout, path, checkpoint)
    return checkpoint


def remove_stale_tmp(layout: Layout) -> int:
    """Delete this shard's temporary files left by a killed segment; how many."""
    stale = layout.stale_temps()
    for path in stale:
        layout.storage.delete(path)
    if stale:
        log.info("crawl.resume_tmp_removed", files=len(stale))
    return len(stale)


def _settle_kept_twins(layout: Layout) -> None:
    """Finish a rewrite a crash interrupted: where ``X.kept`` exists, ``X`` is stale."""
    parts = layout.own_parts("errors")
    present = set(parts)
    for path in parts:
        directory, _, name = path.rpartition("/")
        original = original_of_kept(name)
        if original is None:
            continue
        stale = layout.storage.join(directory, original)
        if stale in present:
            layout.storage.delete(stale)
            log.info("crawl.resume_stale_removed", file=original, kept=name)


def _read_errors_file(layout: Layout, path: str, checkpoint: Checkpoint) -> None:
    with PartFile(layout.storage, path, ERRORS_SCHEMA) as part:
        table = part.read([*KEY_COLUMNS, "error_kind", "error_msg"])
        definitive = pc.is_in(table.column("error_kind"), value_set=_DEFINITIVE)
        kept = table.filter(definitive)
        invalid = pc.equal(kept.column("error_kind"), ErrorKind.INVALID_TARGET.value)
        add_keys(checkpoint.recorded.keys, kept.filter(pc.invert(invalid)))
        for row in kept.filter(invalid).to_pylist():
            hashed = invalid_hash(row["namespace"], row["repository"], row["tag"], row["error_msg"])
            checkpoint.recorded.invalid[hashed] += 1
        checkpoint.errors_kept += kept.num_rows
        if kept.num_rows == table.num_rows:
            return
        dropped = table.filter(pc.invert(definitive)).column("error_kind")
        checkpoint.transient_dropped.update(dropped.to_pylist())
        full = part.read() if pc.any(definitive).as_py() else None
    _rewrite_without_transient(layout, path, full, definitive)
    checkpoint.files_rewritten += 1


def _rewrite_without_transient(
    layout: Layout, path: str, full: pa.Table | None, definitive: pa.ChunkedArray
) -> None:
    """Replace ``path`` by its definitive rows only (see the module docstring)."""
    directory, _, name = path.rpartition("/")
    if full is not None:  # the table keeps the file's schema and key-value metadata
        with layout.storage.create(layout.storage.join(directory, kept_name(name))) as file:
            pq.write_table(full.filter(definitive), file.stream, compression="zstd")
    layout.storage.delete(path)
    log.info("crawl.resume_transient_removed", file=name)
