"""The targets an output already has a final row for, as ``--resume`` needs to know them.

Valid targets are kept as 64-bit hashes of their key (a :class:`SeenSet`).
An invalid input line has no key in its row (its source text is not
stored), so invalid rows are counted by (namespace, repository, tag,
reason) and that many such lines are skipped: invalid rows are written in
input order by one producer, so the ones recorded are always the first ones.
"""

from __future__ import annotations

from collections import Counter
from hashlib import blake2b
from typing import Protocol

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from crawler.output.schema import KEY_COLUMNS
from crawler.targets import InvalidTarget, SeenSet

__all__ = ["Keyed", "Recorded", "add_keys", "invalid_hash"]


class Recorded:
    """The targets an earlier segment of the run already has a final row for."""

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


def add_keys(seen: SeenSet, batch: pa.RecordBatch | pa.Table) -> None:
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
