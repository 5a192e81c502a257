"""Fakes shared by the unit tests of the crawl: what stands in for the output."""

from __future__ import annotations

from crawler.output.rows import ErrorRow, TagRow


class ListSink:
    """The pool's output, kept in lists."""

    def __init__(self) -> None:
        self.tags: list[dict[str, object]] = []
        self.errors: list[dict[str, object]] = []

    def add_tag(self, row: TagRow) -> None:
        self.tags.append(row._asdict())

    def add_error(self, row: ErrorRow) -> None:
        self.errors.append(row._asdict())

    async def wait_for_room(self) -> None:
        return None
