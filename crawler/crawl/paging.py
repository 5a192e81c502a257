"""The list APIs' pagination, pure: the page sizes, and the marker and offset paginators.

A paginator is a small state machine: ``params()`` is the query of the next
page, ``update(...)`` takes what the answer said; :mod:`crawler.crawl.lister`
does the requests. A marker sent is always the one the previous answer sent,
never computed. No I/O here, so :mod:`crawler.crawl.plan` can import the page
size without the HTTP code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PAGE_SIZE = 1000  # the largest page the list APIs allow (their default is 100)
#: The smallest page asked for when pages of manifests are over --max-body-bytes.
MIN_PAGE_SIZE = 10


@dataclass(slots=True)
class MarkerPager:
    """Marker pagination: ``limit`` + ``marker``; done when the next marker is
    absent, an end marker, repeats, or ``has_more`` is false."""

    limit: int = PAGE_SIZE
    end_markers: tuple[str, ...] = ("", "0")
    """Markers that mean "no more" (repositories end with ``0``, tags with ``""``)."""
    marker: str | None = None
    done: bool = False
    _seen: set[str] = field(default_factory=set)

    def params(self) -> list[tuple[str, str]]:
        """The query of the next page."""
        query = [("limit", str(self.limit))]
        if self.marker is not None:
            query.append(("marker", self.marker))
        return query

    anomaly: str | None = None
    """Why the walk ended although the service did not say it was over, if it did."""

    def update(self, body: dict[str, Any], items: int) -> None:
        """Advance after a page of ``items`` entries."""
        raw = body.get("nextMarker")
        marker = None if raw is None else str(raw)
        if items == 0 or body.get("has_more") is False:
            self.done = True
        elif marker is None or marker in self.end_markers:
            self.done = True
            if body.get("has_more") is True:
                self.anomaly = "has_more without a next marker"
        elif marker in self._seen:
            self.done = True  # following it would loop forever
            self.anomaly = "a marker repeated"
        else:
            self._seen.add(marker)
            self.marker = marker


@dataclass(slots=True)
class OffsetPager:
    """Offset pagination (v2 tags): done on a short page, or one with nothing new."""

    limit: int = PAGE_SIZE
    offset: int = 0
    done: bool = False

    def params(self) -> list[tuple[str, str]]:
        """The query of the next page (``offset`` and ``limit`` go together)."""
        return [("offset", str(self.offset)), ("limit", str(self.limit))]

    def update(self, items: int, new: int) -> None:
        """Advance after a page of ``items`` entries, ``new`` of them not seen before."""
        self.offset += items
        if items < self.limit or new == 0:
            self.done = True
