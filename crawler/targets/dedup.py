"""Dedup and sharding of target keys: a stable 64-bit hash, a compact set of hashes. Pure."""

from __future__ import annotations

from array import array
from hashlib import blake2b
from typing import Final

__all__ = ["SeenSet", "in_shard", "target_hash"]


def target_hash(key: str) -> int:
    """A stable, nonzero, unsigned 64-bit hash of ``key``.

    BLAKE2b of the UTF-8 bytes: the same in every process and every run
    (unlike ``hash()``, which PYTHONHASHSEED salts), so shards and dedup agree
    across machines and restarts. 0 is mapped to 1 (0 marks an empty slot in
    :class:`SeenSet`).
    """
    try:
        data = key.encode()
    except UnicodeEncodeError:  # a lone surrogate: still hashable, never a valid name
        data = key.encode("utf-8", "surrogatepass")
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little") or 1


def in_shard(key: str, index: int, count: int) -> bool:
    """Whether ``key`` belongs to shard ``index`` of ``count`` (0 <= index < count).

    ``target_hash(key) % count == index``: every key is in exactly one shard,
    the same one on every machine.
    """
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index} of {count}: need count >= 1 and 0 <= index < count")
    return target_hash(key) % count == index


class SeenSet:
    """Dedup of millions of keys in about 16-32 bytes each: a set of 64-bit hashes.

    An open-addressing table in one ``array('Q')`` (0 = empty slot, see
    :func:`target_hash`), linear probing, doubled when more than half full;
    the key strings themselves are never kept. The slot comes from the high
    bits of the hash while :func:`in_shard` uses ``% count`` (the low bits
    when count is a power of two), so a shard's keys still spread over the
    whole table.

    The price is that two distinct keys with the same 64-bit hash count as one:
    for n distinct keys the chance of any collision is about n**2 / 2**65,
    ~3e-8 for a million keys and ~3e-6 for ten million. A collision would
    drop a target as a "duplicate"; at these odds that is accepted.
    """

    __slots__ = ("_len", "_limit", "_mask", "_shift", "_table")

    _MIN_BITS: Final = 4

    def __init__(self, expected: int = 0) -> None:
        """``expected``: keys to come, to size the table once (0: grow as needed)."""
        bits = self._MIN_BITS
        while (1 << bits) < 2 * expected:
            bits += 1
        self._len = 0
        self._allocate(bits)

    def _allocate(self, bits: int) -> None:
        self._table = array("Q", [0]) * (1 << bits)
        self._mask = (1 << bits) - 1
        self._shift = 64 - bits
        self._limit = 1 << (bits - 1)

    def add(self, key: str) -> bool:
        """Record ``key``; True if it is new, False if it was seen before."""
        return self.add_hash(target_hash(key))

    def add_hash(self, hashed: int) -> bool:
        """:meth:`add` of a precomputed :func:`target_hash` (nonzero, < 2**64)."""
        table = self._table
        mask = self._mask
        slot = hashed >> self._shift
        while True:
            found = table[slot]
            if found == 0:
                break
            if found == hashed:
                return False
            slot = (slot + 1) & mask
        table[slot] = hashed
        self._len += 1
        if self._len > self._limit:
            self._grow()
        return True

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.slot(key) is not None

    def slot(self, key: str) -> int | None:
        """Where ``key`` sits in the table (0 <= slot < :attr:`slots`), or None if it was
        never added. A slot stays put until the table grows, which it never does while
        it holds at most the ``expected`` keys it was made for: a caller may keep a fact
        per key in an array of :attr:`slots` entries."""
        hashed = target_hash(key)
        table = self._table
        mask = self._mask
        slot = hashed >> self._shift
        while True:
            found = table[slot]
            if found == hashed:
                return slot
            if found == 0:
                return None
            slot = (slot + 1) & mask

    @property
    def slots(self) -> int:
        """The table's size in slots (a power of two)."""
        return len(self._table)

    def __len__(self) -> int:
        return self._len

    @property
    def nbytes(self) -> int:
        """Bytes held by the table (the bulk of the memory used)."""
        return self._table.buffer_info()[1] * self._table.itemsize

    def _grow(self) -> None:
        old = self._table
        self._allocate(len(old).bit_length())  # len is a power of two: bits + 1
        table = self._table
        mask = self._mask
        shift = self._shift
        for hashed in old:
            if hashed:
                slot = hashed >> shift
                while table[slot]:
                    slot = (slot + 1) & mask
                table[slot] = hashed
