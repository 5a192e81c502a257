"""Typed output rows: their fields are the Arrow schema's columns, and they convert to it."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from crawler.errors import ErrorKind
from crawler.output.rows import ErrorRow, TagRow, error_row
from crawler.output.schema import ERRORS_SCHEMA, TAGS_SCHEMA
from crawler.output.sink import Dataset
from crawler.targets import InvalidTarget, Target

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("row_type", "schema"), [(TagRow, TAGS_SCHEMA), (ErrorRow, ERRORS_SCHEMA)])
def test_row_fields_are_the_schema_columns_in_order(row_type: type, schema: pa.Schema) -> None:
    """Each row type names exactly its schema's columns, in the schema's order."""
    assert row_type._fields == tuple(schema.names)


def test_rows_convert_to_their_schema_with_non_nullable_columns_set() -> None:
    """A minimal row of each kind converts to its Arrow schema (no missing required value)."""
    tag = TagRow("ns", "repo", "v1", *([None] * 19), NOW, 1, None)
    error = error_row(Target("ns", "repo", "v1"), ErrorKind.TIMEOUT, attempts=3, failed_at=NOW)
    tags = pa.Table.from_pylist([tag._asdict()], schema=TAGS_SCHEMA)
    errors = pa.Table.from_pylist([error._asdict()], schema=ERRORS_SCHEMA)
    assert tags.column("fetched_at").to_pylist() == [NOW]
    assert errors.to_pylist()[0]["error_kind"] == "timeout"
    assert errors.to_pylist()[0]["attempts"] == 3


def test_error_row_of_an_invalid_line_keeps_what_was_parsed() -> None:
    """An invalid input line's row carries its parsed parts, the kind's value and the message."""
    line = InvalidTarget("ns", None, None, "missing tag", "ns/")
    row = error_row(
        line, ErrorKind.INVALID_TARGET, attempts=0, failed_at=NOW, error_msg=line.reason
    )
    assert row == ErrorRow("ns", None, None, "invalid_target", None, None, "missing tag", 0, NOW)


def test_a_dataset_refuses_a_row_type_that_is_not_its_schema() -> None:
    """Pairing tags rows with the errors schema is caught at the first write, before any file."""
    dataset = Dataset("unused", TagRow, lambda: ERRORS_SCHEMA, "p", file_rows=1)
    dataset.add(TagRow("ns", "repo", "v1", *([None] * 19), NOW, 1, None))
    rows, since = dataset.take()
    with pytest.raises(ValueError, match="not the columns"):
        dataset.write(rows, since, commit=True)
    assert dataset.files == []


@pytest.mark.parametrize(("row_type", "schema"), [(TagRow, TAGS_SCHEMA), (ErrorRow, ERRORS_SCHEMA)])
def test_the_text_fields_are_the_string_columns(row_type: type, schema: pa.Schema) -> None:
    """The fields the sink counts as text (typed str) are exactly the schema's string columns."""
    strings = tuple(i for i, f in enumerate(schema) if pa.types.is_string(f.type))
    assert Dataset("unused", row_type, lambda: schema, "p", file_rows=1)._text_positions == strings
