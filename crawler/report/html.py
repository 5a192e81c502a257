"""The HTML form of a :class:`~crawler.report.summary.Summary`: one self-contained page.

Everything is inside the one file: the CSS in a ``<style>`` element, the
charts as inline SVG drawn by leather (pure Python, no script in its output).
The page loads nothing, so it can be mailed, archived or opened offline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from html import escape

import leather

from crawler import __version__
from crawler.report.model import Image, Summary
from crawler.report.text import IMAGE_HEADERS, human_bytes, image_rows, short_digest

# leather is styled through its theme module; only this module draws with it.
for _name in ("title", "legend", "axis_title", "tick"):
    setattr(leather.theme, f"{_name}_font_family", "system-ui, sans-serif")
leather.theme.background_color = "#ffffff"
leather.theme.default_series_colors = ["#3b6ea8", "#d9822b", "#4f9a55", "#b5473a"]

_CSP = "default-src 'none'; style-src 'unsafe-inline'"

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222;
       padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.totals { display: flex; gap: 1.5rem; flex-wrap: wrap; }
.totals div { background: #f3f5f8; padding: .6rem 1rem; border-radius: .4rem; }
.totals b { display: block; font-size: 1.3rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { padding: .25rem .75rem; border-bottom: 1px solid #e3e6ea; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: .85rem; }
figure { margin: 1rem 0; } figure svg { width: 100%; height: auto; max-width: 60rem; }
footer { margin-top: 3rem; color: #777; font-size: .8rem; }
"""


def _count(value: float, index: int, count: int) -> str:
    return f"{value:,.0f}"


def _bytes(value: float, index: int, count: int) -> str:
    return human_bytes(int(value))


def _small_ticks(values: Iterable[int]) -> list[int] | None:
    """Whole-number ticks when the counts are small (leather would draw 0.5 steps)."""
    top = max(values, default=0)
    return list(range(top + 1)) if top <= 5 else None


def _bar_chart(
    title: str, values: Mapping[str, int], formatter: Callable[[float, int, int], str] = _count
) -> str:
    """Horizontal bars of the 15 largest values (largest on top), as an inline ``<svg>``."""
    items = list(values.items())[:15]
    chart = leather.Chart(title)
    chart.add_x_axis(ticks=_small_ticks(values.values()), tick_formatter=formatter)
    chart.add_bars([(n, name) for name, n in reversed(items)] or [(0, "(none)")])
    width = 900
    height = 120 + 30 * max(len(items), 2)
    svg: str = chart.to_svg(width=width, height=height)
    return svg


def _column_chart(title: str, values: Mapping[str, int]) -> str:
    """Columns in the given order (a histogram), as an inline ``<svg>``."""
    chart = leather.Chart(title)
    chart.add_y_axis(ticks=_small_ticks(values.values()), tick_formatter=_count)
    chart.add_columns([(name, n) for name, n in values.items()])
    svg: str = chart.to_svg(width=900, height=360)
    return svg


def _table(headers: tuple[str, ...], rows: Iterable[tuple[str, ...]], numeric: set[int]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{escape(c)}</td>' if i in numeric else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}">(none)</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _counts_table(header: str, counts: Mapping[str, int], unit: str = "tags") -> str:
    return _table((header, unit), ((k, f"{n:,}") for k, n in counts.items()), {1})


def _images_table(images: list[Image]) -> str:
    return _table(IMAGE_HEADERS, image_rows(images), {1, 2, 3})


def render_html(summary: Summary, *, title: str = "SWR inventory") -> str:
    """The report page: totals, tables and three charts (bytes per namespace, tag
    age, error kinds)."""
    namespace_bytes = {n.namespace: n.bytes for n in summary.namespaces}
    charts = [
        _bar_chart("Bytes per namespace", namespace_bytes, _bytes),
        _column_chart("Tag age (by created)", summary.ages),
        _bar_chart("Error rows by kind", summary.error_kinds),
    ]
    totals = [
        ("tags", f"{summary.tags:,}"),
        ("images (distinct digests)", f"{summary.images:,}"),
        ("bytes", human_bytes(summary.bytes)),
        ("namespaces", f"{len(summary.namespaces):,}"),
        ("manifest lists", f"{summary.manifest_lists:,}"),
        ("error rows", f"{summary.errors:,}"),
    ]
    namespaces = _table(
        ("namespace", "tags", "repositories", "bytes"),
        (
            (n.namespace, f"{n.tags:,}", f"{n.repositories:,}", human_bytes(n.bytes))
            for n in summary.namespaces
        ),
        {1, 2, 3},
    )
    shared = _table(
        ("digest", "tags", "for example"),
        ((short_digest(s.digest), str(s.tags), ", ".join(s.references)) for s in summary.shared),
        {1},
    )
    sections = [
        f"<h1>{escape(title)}</h1>",
        f"<p>As of {escape(summary.as_of.isoformat(timespec='seconds'))}.</p>",
        '<div class="totals">'
        + "".join(f"<div><b>{escape(v)}</b>{escape(k)}</div>" for k, v in totals)
        + "</div>",
        f"<h2>Namespaces</h2><figure>{charts[0]}</figure>{namespaces}",
        "<h2>Schema and tag type</h2>" + _counts_table("kind", summary.by_schema),
        "<h2>Manifest media types</h2>" + _counts_table("media type", summary.media_types),
        "<h2>Platforms in manifest lists</h2>"
        + _counts_table("platform", summary.platforms, "lists"),
        f"<h2>Tag age</h2><figure>{charts[1]}</figure>",
        "<h2>Oldest images</h2>" + _images_table(summary.oldest),
        "<h2>Largest images</h2>" + _images_table(summary.largest),
        f"<h2>Digests shared by several tags ({summary.shared_total:,})</h2>{shared}",
        f"<h2>Errors</h2><figure>{charts[2]}</figure>"
        + _counts_table("kind", summary.error_kinds, "rows")
        + _counts_table("HTTP status", summary.error_statuses, "rows"),
        f"<footer>swr-crawler {escape(__version__)} report</footer>",
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        # Belt and braces: the browser itself refuses to fetch anything for this page.
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )
