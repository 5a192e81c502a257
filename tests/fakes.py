"""Fakes shared by the unit tests of the crawl: what stands in for the output."""

from __future__ import annotations


class ListSink:
    """The pool's output, kept in lists."""

    def __init__(self) -> None:
        self.tags: list[dict[str, object]] = []
        self.errors: list[dict[str, object]] = []

    def add_tag(self, row: dict[str, object]) -> None:
        self.tags.append(row)

    def add_error(self, row: dict[str, object]) -> None:
        self.errors.append(row)

    async def wait_for_room(self) -> None:
        return None
