"""The terminal form of a :class:`~crawler.report.summary.Summary`: plain lines. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from crawler.report.model import Image, Summary

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def human_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``; exact below 1 KiB; any size, however large."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in _UNITS[1:]:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def short_digest(digest: str) -> str:
    """``sha256:0123456789ab...`` -> ``sha256:0123456789ab``."""
    algorithm, _, hexdigits = digest.partition(":")
    return f"{algorithm}:{hexdigits[:12]}" if hexdigits else digest[:19]


def _inline(counts: Mapping[str, int], limit: int = 6) -> str:
    items = list(counts.items())
    text = ", ".join(f"{name}: {n:,}" for name, n in items[:limit])
    if len(items) > limit:
        text += f", ... ({len(items) - limit} more)"
    return text or "none"


def short_lines(summary: Summary) -> list[str]:
    """The few lines the end of a crawl prints: what the output holds now."""
    top = summary.namespaces[:3]
    namespaces = ", ".join(f"{line.namespace} {human_bytes(line.bytes)}" for line in top)
    if len(summary.namespaces) > len(top):
        namespaces += f", ... ({len(summary.namespaces) - len(top)} more)"
    lines = [
        f"output: {summary.tags:,} tags, {summary.images:,} images, "
        f"{human_bytes(summary.bytes)} in {len(summary.namespaces)} namespaces"
        + (f" ({namespaces})" if namespaces else ""),
        f"  {_inline(summary.by_schema)}; {summary.manifest_lists:,} manifest lists",
        f"  error rows {summary.errors:,}: {_inline(summary.error_kinds)}",
    ]
    return lines


def _table(
    headers: tuple[str, ...], rows: Iterable[tuple[str, ...]], indent: str = "  "
) -> list[str]:
    rows = list(rows)
    if not rows:
        return [f"{indent}(none)"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    # Columns of numbers (sizes, counts, dates) are right-aligned, text left-aligned.
    numeric = [
        i > 0 and all(r[i][:1].isdigit() or r[i] == "-" for r in rows) for i in range(len(headers))
    ]

    def line(cells: tuple[str, ...]) -> str:
        parts = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(cells, widths, numeric, strict=True)
        ]
        return (indent + "  ".join(parts)).rstrip()

    return [line(headers), *(line(r) for r in rows)]


#: The columns of an images table, in the terminal and on the HTML page.
IMAGE_HEADERS = ("tag", "size", "created", "tags", "digest")


def image_rows(images: list[Image]) -> list[tuple[str, ...]]:
    """One table row of :data:`IMAGE_HEADERS` per image (sizes human, digests short)."""
    return [
        (
            image.reference,
            human_bytes(image.size),
            image.created.date().isoformat() if image.created else "-",
            str(image.tags),
            short_digest(image.digest),
        )
        for image in images
    ]


def full_lines(summary: Summary) -> list[str]:
    """The whole terminal report."""
    lines = [
        f"{summary.tags:,} tags, {summary.images:,} images (distinct digests), "
        f"{human_bytes(summary.bytes)}; {summary.errors:,} error rows",
        "",
        "Namespaces (by bytes)",
        *_table(
            ("namespace", "tags", "repositories", "bytes"),
            (
                (n.namespace, f"{n.tags:,}", f"{n.repositories:,}", human_bytes(n.bytes))
                for n in summary.namespaces
            ),
        ),
        "",
        "Schema and tag type",
        *_table(("kind", "tags"), ((k, f"{n:,}") for k, n in summary.by_schema.items())),
        "",
        "Manifest media types",
        *_table(("media type", "tags"), ((k, f"{n:,}") for k, n in summary.media_types.items())),
        "",
        f"Manifest lists: {summary.manifest_lists:,}; platforms they carry",
        *_table(("platform", "lists"), ((k, f"{n:,}") for k, n in summary.platforms.items())),
        "",
        f"Tag age (by created, as of {summary.as_of.date().isoformat()})",
        *_table(("age", "tags"), ((k, f"{n:,}") for k, n in summary.ages.items())),
        "",
        "Oldest images",
        *_table(IMAGE_HEADERS, image_rows(summary.oldest)),
        "",
        "Largest images",
        *_table(IMAGE_HEADERS, image_rows(summary.largest)),
        "",
        f"Digests shared by several tags: {summary.shared_total:,}",
        *_table(
            ("digest", "tags", "for example"),
            (
                (short_digest(s.digest), str(s.tags), ", ".join(s.references))
                for s in summary.shared
            ),
        ),
        "",
        "Errors by kind",
        *_table(("kind", "rows"), ((k, f"{n:,}") for k, n in summary.error_kinds.items())),
        "Errors by HTTP status",
        *_table(("status", "rows"), ((k, f"{n:,}") for k, n in summary.error_statuses.items())),
    ]
    return lines
