"""Reading a published part file back: its schema checked, its damage a clear error.

What ``--resume`` and the row counts read was written by this crawler, but
it may have been damaged since (a disk error, a copy cut short, another
program's file under our name). Every such case is a
:class:`~crawler.errors.ConfigError` naming the file (exit 2, one line),
never a traceback: an unreadable footer, another schema version, other
columns, and pages that cannot be decoded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from crawler.errors import ConfigError
from crawler.output.schema import META_SCHEMA_VERSION, SCHEMA_VERSION
from crawler.output.storage import Storage

__all__ = ["PartFile"]

_ADVICE = "move it away to start afresh, or use another --out"


class PartFile:
    """One published part file, open for reading; use it as a context manager."""

    def __init__(self, storage: Storage, path: str, schema: pa.Schema) -> None:
        self.path = path
        try:
            self._source: BinaryIO = storage.open_input(path)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        try:
            self.parquet = self._check(schema)
        except BaseException:
            self._source.close()
            raise

    def _check(self, schema: pa.Schema) -> pq.ParquetFile:
        try:
            parquet = pq.ParquetFile(self._source)
        except (OSError, pa.ArrowException) as exc:
            raise ConfigError(
                f"{self.path}: not a readable Parquet file ({exc}); {_ADVICE}"
            ) from None
        found = parquet.schema_arrow
        version = (found.metadata or {}).get(META_SCHEMA_VERSION, b"?").decode(errors="replace")
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"{self.path}: schema version {version}, this crawler writes {SCHEMA_VERSION}; "
                "resume with the crawler that started the run, or use another --out"
            )
        if not found.remove_metadata().equals(schema.remove_metadata()):
            raise ConfigError(
                f"{self.path}: its columns are not this crawler's schema version "
                f"{SCHEMA_VERSION}; {_ADVICE}"
            )
        return parquet

    @property
    def num_rows(self) -> int:
        """Rows in the file, from its footer."""
        return int(self.parquet.metadata.num_rows)

    def batches(self, size: int, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
        """The file's ``columns`` in record batches of ``size`` rows."""
        try:
            yield from self.parquet.iter_batches(size, columns=list(columns))
        except (OSError, pa.ArrowException) as exc:
            raise self._damaged(exc) from None

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The whole file (or its ``columns``), with the file's schema metadata."""
        try:
            return self.parquet.read(columns=None if columns is None else list(columns))
        except (OSError, pa.ArrowException) as exc:
            raise self._damaged(exc) from None

    def _damaged(self, exc: Exception) -> ConfigError:
        return ConfigError(f"{self.path}: damaged, its pages cannot be read ({exc}); {_ADVICE}")

    def close(self) -> None:
        """Close the file."""
        self._source.close()

    def __enter__(self) -> PartFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
