"""Resume: what an earlier run into the same ``--out`` already recorded, and what it did not.

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
      1. write .part-R-00001.kept.parquet.tmp   (definitive rows only), fsync
      2. rename to part-R-00001.kept.parquet, fsync the directory
      3. delete part-R-00001.parquet, fsync the directory

A crash between 2 and 3 leaves both files; the next resume sees the
``.kept`` twin and deletes the stale original first (idempotent). A file
with no definitive row is just deleted. Temporary files of a killed run
(``.part-*.parquet.tmp``) are deleted.

Only the key columns are read (Parquet column projection, in batches), and
keys are built with Arrow compute kernels; see :func:`read_checkpoint`.

Each shard of a sharded run (``--shard I/N``) has its own files
(``part-<run>-sIofN-*.parquet``), its own ``run-sIofN.json`` and its own
lock, so shards may share one ``--out`` and resume independently.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import Any, Protocol

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import structlog

from crawler.errors import DEFINITIVE_KINDS, ConfigError, ErrorKind
from crawler.output.schema import KEY_COLUMNS, META_SCHEMA_VERSION, SCHEMA_VERSION
from crawler.output.sink import TMP_SUFFIX, fsync_dir, publish
from crawler.targets import InvalidTarget, SeenSet

log = structlog.get_logger("crawler")

DATASETS = ("tags", "errors")
KEPT = ".kept"
READ_BATCH_ROWS = 65_536

#: ``part-<run id>[-sIofN]-<seq>[.kept].parquet``; run ids look like ``20261127T073100Z-3fa9c1``.
PART_RE = re.compile(
    r"^part-(?P<run>\d{8}T\d{6}Z-[0-9a-f]+)(?P<shard>-s\d+of\d+)?-(?P<seq>\d+)"
    r"(?P<kept>\.kept)?\.parquet$"
)
_DEFINITIVE = pa.array(sorted(kind.value for kind in DEFINITIVE_KINDS))


def shard_suffix(shard: tuple[int, int]) -> str:
    """``""`` for an unsharded run, else ``-sIofN``: the mark of a shard's files."""
    index, count = shard
    return f"-s{index}of{count}" if count > 1 else ""


def run_file_name(shard: tuple[int, int]) -> str:
    """``run.json``, or ``run-sIofN.json`` for one shard of a sharded run."""
    suffix = shard_suffix(shard)
    return f"run{suffix}.json"


def lock_file_name(shard: tuple[int, int]) -> str:
    """The lock file of a run (or of one shard) inside ``--out``."""
    return f".lock{shard_suffix(shard)}"


def own_parts(directory: Path, shard: tuple[int, int]) -> list[Path]:
    """The published part files of this shard in ``directory``, sorted by name."""
    suffix = shard_suffix(shard)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(
        directory / name
        for name in names
        if (match := PART_RE.match(name)) and (match["shard"] or "") == suffix
    )


def targets_fingerprint(path: str) -> str:
    """sha256 of a targets file's bytes, read in chunks (call it in a worker thread)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class Recorded:
    """The targets an earlier segment of the run already has a final row for.

    Valid targets are kept as 64-bit hashes of their key in a :class:`SeenSet`.
    An invalid input line has no key in its row (its source text is not
    stored), so invalid rows are counted by (namespace, repository, tag,
    reason) and that many such lines are skipped: invalid rows are written in
    input order by one producer, so the ones recorded are always the first ones.
    """

    def __init__(self) -> None:
        self.keys = SeenSet()
        self.invalid: Counter[int] = Counter()

    def __len__(self) -> int:
        return len(self.keys) + sum(self.invalid.values())

    def holds(self, item: Keyed) -> bool:
        """True if ``item`` already has a row (consumes one invalid-row credit)."""
        if not isinstance(item, InvalidTarget):
            return item.key in self.keys
        hashed = invalid_hash(item.namespace, item.repository, item.tag, item.message)
        if self.invalid[hashed] > 0:
            self.invalid[hashed] -= 1
            return True
        return False


class Keyed(Protocol):
    """Anything recorded by its key: a target, a listing, an invalid line (by its hash)."""

    @property
    def key(self) -> str: ...


def invalid_hash(
    namespace: str | None, repository: str | None, tag: str | None, reason: str | None
) -> int:
    """The identity of an ``invalid_target`` row (None and "" kept apart)."""
    data = orjson.dumps([namespace, repository, tag, reason])
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little")


def _add_keys(seen: SeenSet, batch: pa.RecordBatch | pa.Table) -> None:
    """Add ``namespace/repository:tag`` of every row to ``seen``.

    The keys are joined by Arrow kernels and handed over as bytes; the 64-bit
    hash is :func:`crawler.targets.target_hash`, inlined (the per-row cost here
    is the whole cost of reading a checkpoint).
    """
    # A listing's errors row has a null tag (and a namespace's, a null repository):
    # its key is "namespace/repository:" with the nulls as "", never a tag's key.
    namespace, repository, tag = (pc.fill_null(batch.column(name), "") for name in KEY_COLUMNS)
    keys = pc.binary_join_element_wise(
        pc.binary_join_element_wise(namespace, repository, "/"), tag, ":"
    )
    add_hash = seen.add_hash
    from_bytes = int.from_bytes
    for key in keys.cast(pa.binary()).to_pylist():
        if key is not None:
            add_hash(from_bytes(blake2b(key, digest_size=8).digest(), "little") or 1)


@dataclass(slots=True)
class Checkpoint:
    """What :func:`read_checkpoint` found in ``--out``."""

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


def has_run(out_dir: Path, shard: tuple[int, int]) -> bool:
    """Whether ``out_dir`` already holds (this shard of) a run: its run file or any part file."""
    if (out_dir / run_file_name(shard)).exists():
        return True
    for dataset in DATASETS:
        directory = out_dir / dataset
        if shard[1] == 1:
            if directory.is_dir() and any(PART_RE.match(n) for n in os.listdir(directory)):
                return True
        elif own_parts(directory, shard):
            return True
    return False


def load_run_file(out_dir: Path, shard: tuple[int, int]) -> dict[str, Any] | None:
    """The run file of an earlier segment, or None when there is none."""
    path = out_dir / run_file_name(shard)
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); move it away to start afresh") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not a run file; move it away to start afresh")
    return doc


def check_compatible(
    previous: dict[str, Any] | None,
    path: Path,
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


def read_checkpoint(out_dir: Path, shard: tuple[int, int]) -> Checkpoint:
    """Read what this shard's earlier segments recorded, and make the output resumable.

    Removes temporary files of a killed segment and the transient ``errors``
    rows (see the module docstring). Blocking: call it in a worker thread,
    holding the output's lock.
    """
    checkpoint = Checkpoint()
    checkpoint.tmp_removed = remove_stale_tmp(out_dir, shard)
    errors_dir = out_dir / "errors"
    _settle_kept_twins(errors_dir, shard)
    for path in own_parts(out_dir / "tags", shard):
        parquet = _open(path)
        for batch in parquet.iter_batches(READ_BATCH_ROWS, columns=list(KEY_COLUMNS)):
            _add_keys(checkpoint.recorded.keys, batch)
            checkpoint.tags_rows += batch.num_rows
    for path in own_parts(errors_dir, shard):
        _read_errors_file(path, checkpoint)
    return checkpoint


def remove_stale_tmp(out_dir: Path, shard: tuple[int, int]) -> int:
    """Delete this shard's temporary files left by a killed segment; how many."""
    removed = 0
    suffix = shard_suffix(shard)
    run_tmp = f".{run_file_name(shard)}{TMP_SUFFIX}"
    candidates = [out_dir / run_tmp]
    for dataset in DATASETS:
        directory = out_dir / dataset
        if directory.is_dir():
            candidates += [directory / n for n in os.listdir(directory) if n.endswith(TMP_SUFFIX)]
    for path in candidates:
        name = path.name
        if name != run_tmp:
            match = PART_RE.match(name[1 : -len(TMP_SUFFIX)]) if name.startswith(".") else None
            if match is None or (match["shard"] or "") != suffix:
                continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
        fsync_dir(path.parent)
    if removed:
        log.info("crawl.resume_tmp_removed", files=removed)
    return removed


def _settle_kept_twins(errors_dir: Path, shard: tuple[int, int]) -> None:
    """Finish a rewrite a crash interrupted: where ``X.kept`` exists, ``X`` is stale."""
    for path in own_parts(errors_dir, shard):
        if path.name.endswith(f"{KEPT}.parquet"):
            stale = path.with_name(path.name.replace(f"{KEPT}.parquet", ".parquet"))
            if stale.exists():
                stale.unlink()
                fsync_dir(errors_dir)
                log.info("crawl.resume_stale_removed", file=stale.name, kept=path.name)


def _open(path: Path) -> pq.ParquetFile:
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"{path}: not a readable Parquet file ({exc})") from None
    metadata = parquet.schema_arrow.metadata or {}
    version = metadata.get(META_SCHEMA_VERSION, b"?").decode(errors="replace")
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"{path}: schema version {version}, this crawler writes {SCHEMA_VERSION}; "
            "resume with the crawler that started the run, or use another --out"
        )
    return parquet


def _read_errors_file(path: Path, checkpoint: Checkpoint) -> None:
    parquet = _open(path)
    columns = [*KEY_COLUMNS, "error_kind", "error_msg"]
    table = parquet.read(columns=columns)
    definitive = pc.is_in(table.column("error_kind"), value_set=_DEFINITIVE)
    kept = table.filter(definitive)
    invalid = pc.equal(kept.column("error_kind"), ErrorKind.INVALID_TARGET.value)
    _add_keys(checkpoint.recorded.keys, kept.filter(pc.invert(invalid)))
    for row in kept.filter(invalid).to_pylist():
        hashed = invalid_hash(row["namespace"], row["repository"], row["tag"], row["error_msg"])
        checkpoint.recorded.invalid[hashed] += 1
    checkpoint.errors_kept += kept.num_rows
    if kept.num_rows == table.num_rows:
        return
    dropped = table.filter(pc.invert(definitive)).column("error_kind")
    checkpoint.transient_dropped.update(dropped.to_pylist())
    parquet.close()
    _rewrite_without_transient(path, definitive)
    checkpoint.files_rewritten += 1


def _rewrite_without_transient(path: Path, definitive: pa.ChunkedArray) -> None:
    """Replace ``path`` by its definitive rows only (see the module docstring)."""
    directory = path.parent
    if pc.any(definitive).as_py():
        full = pq.read_table(path)  # the schema keeps the file's key-value metadata
        kept = full.filter(definitive)
        final = directory / path.name.replace(".parquet", f"{KEPT}.parquet")
        tmp = directory / f".{final.name}{TMP_SUFFIX}"
        try:
            pq.write_table(kept, tmp, compression="zstd")
            publish(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    path.unlink()
    fsync_dir(directory)
    log.info("crawl.resume_transient_removed", file=path.name)


@dataclass(frozen=True, slots=True)
class DatasetCounts:
    """What the published files of a run hold."""

    ok: int
    errors: dict[str, int]

    @property
    def targets(self) -> int:
        """Distinct targets recorded (each is in exactly one row)."""
        return self.ok + sum(self.errors.values())


def count_rows(out_dir: Path, shard: tuple[int, int]) -> DatasetCounts:
    """Rows of ``tags`` (from the footers) and ``errors`` by kind (one column read)."""
    ok = sum(pq.ParquetFile(p).metadata.num_rows for p in own_parts(out_dir / "tags", shard))
    errors: Counter[str] = Counter()
    for path in _error_files(out_dir, shard):
        kinds = pq.ParquetFile(path).read(columns=["error_kind"]).column("error_kind")
        for entry in pc.value_counts(kinds).to_pylist():
            errors[str(entry["values"])] += int(entry["counts"])
    return DatasetCounts(ok, dict(sorted(errors.items())))


def _error_files(out_dir: Path, shard: tuple[int, int]) -> Iterator[Path]:
    parts = own_parts(out_dir / "errors", shard)
    names = {p.name for p in parts}
    for path in parts:
        # mid-rewrite: the original and its .kept twin; count the twin only
        if path.name.replace(".parquet", f"{KEPT}.parquet") not in names:
            yield path
